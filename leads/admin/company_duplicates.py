"""Duplicate companies in the admin: the review queue with its evidence, one merge page
(from a pair, or from the companies list's "merge selected companies") that lets the
reviewer choose the company that stays and each conflicting field, bulk merges of pairs,
and the record of company merges with their undo.

Who may merge is ``leads.permissions.company_merge_refusal``, asked for every company
of every merge here as on the API; the work is ``leads.company_merging``'s and
``leads.company_duplicates``'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from crm.http import signed_in
from crm.models import User

from ..company_duplicates import company_pair_not_duplicate, company_reason_text
from ..company_merging import (
    COMPANY_MERGE_FIELDS,
    companies_merge,
    company_merge_defaults,
    company_merge_preview,
    company_merge_undo,
    company_pairs_merge,
    company_survivor_pick,
)
from ..merging import MergeError
from ..models import Company, CompanyDuplicatePair, CompanyMerge, PairStatus
from ..permissions import companies_merged_by, company_merge_refusal, merges_leads

MERGE_TEMPLATE = "admin/leads/company/merge.html"
MAX_MERGED = 20


def _company_link(pk: int, name: str | None) -> str:
    if name is None:
        return format_html("company {} (merged)", pk)
    url = reverse("admin:leads_company_change", args=[pk])
    return format_html('<a href="{}">{}</a> <small>#{}</small>', url, name, pk)


def _in_reach(user: User, rows: QuerySet, *columns: str) -> QuerySet:
    """The rows whose companies (in ``columns``) ``user`` may merge."""
    if user.sees_all_leads:
        return rows if merges_leads(user) else rows.none()
    companies = companies_merged_by(user).values("pk")
    return rows.filter(**{f"{column}__in": companies for column in columns})


# --- The merge page ------------------------------------------------------------------------


def merge_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    companies: Sequence[Company],
    *,
    pair: CompanyDuplicatePair | None = None,
) -> HttpResponse:
    """The companies side by side, a choice of the survivor and per conflicting field;
    a POST merges them (or answers the pair "not a duplicate"). Refused (to the admin's
    index) unless ``request``'s user may merge them all."""
    user = signed_in(request)
    ids = [c.pk for c in companies]
    if len(companies) < 2 or company_merge_refusal(user=user, company_ids=ids):
        return redirect("admin:index")
    if request.method == "POST":
        return _merge_post(model_admin, request, companies, pair=pair)
    survivor = company_survivor_pick(companies)
    columns = [survivor, *(c for c in companies if c.pk != survivor.pk)]
    leads = dict(
        Company.objects.filter(pk__in=ids).annotate(n=Count("leads")).values_list("pk", "n")
    )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Merge duplicate companies",
        "pair": pair,
        "ids": ",".join(map(str, ids)),
        "survivor": survivor,
        "reasons": [company_reason_text(r) for r in pair.reasons] if pair else [],
        "columns": [{"company": c, "leads": leads.get(c.pk, 0)} for c in columns],
        "conflicts": [
            {
                "field": row["field"],
                "label": getattr(Company._meta.get_field(row["field"]), "verbose_name", ""),
                "cells": [
                    {
                        "company": c.pk,
                        "value": row["values"][c.pk],
                        "checked": c.pk == row["default"],
                    }
                    for c in columns
                ],
            }
            for row in company_merge_preview(survivor, columns[1:])
        ],
    }
    return TemplateResponse(request, MERGE_TEMPLATE, context)


def _merge_post(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    companies: Sequence[Company],
    *,
    pair: CompanyDuplicatePair | None,
) -> HttpResponse:
    user = signed_in(request)
    back = request.get_full_path()
    if pair is not None and "not_duplicate" in request.POST:
        company_pair_not_duplicate(pair=pair, by=user)
        model_admin.message_user(request, "Answered “not a duplicate”: never suggested again.")
        return redirect("admin:leads_companyduplicatepair_changelist")
    by_id = {c.pk: c for c in companies}
    chosen = request.POST.get("survivor", "")
    survivor_id = int(chosen) if chosen.isdigit() else 0
    if survivor_id not in by_id:
        model_admin.message_user(request, "Choose the company that stays.", messages.ERROR)
        return redirect(back)
    others = [pk for pk in by_id if pk != survivor_id]
    defaults = company_merge_defaults(by_id[survivor_id], [by_id[pk] for pk in others])
    fields = {
        name: int(request.POST[f"field_{name}"])
        for name in COMPANY_MERGE_FIELDS
        if request.POST.get(f"field_{name}", "").isdigit()
        and int(request.POST[f"field_{name}"]) != defaults[name]
    }
    try:
        merge = companies_merge(survivor_id=survivor_id, others=others, fields=fields, by=user)
    except MergeError as exc:
        model_admin.message_user(request, exc.message, messages.ERROR)
        return redirect(back)
    model_admin.message_user(
        request,
        format_html(
            'Merged company {} into <a href="{}">company {}</a>. <a href="{}">Undo it</a> '
            "from the company merges.",
            ", ".join(map(str, merge.merged_ids)),
            reverse("admin:leads_company_change", args=[survivor_id]),
            survivor_id,
            reverse("admin:leads_companymerge_change", args=[merge.pk]),
        ),
        messages.SUCCESS,
    )
    if pair is not None:
        return redirect("admin:leads_companyduplicatepair_changelist")
    return redirect("admin:leads_company_changelist")


class CompanyMergeActionMixin(admin.ModelAdmin):
    """The companies list's "merge selected companies" action and the merge page it
    opens (``merge/?ids=…``)."""

    def has_merge_permission(self, request: HttpRequest) -> bool:
        return merges_leads(signed_in(request))

    def get_urls(self) -> list[Any]:
        return [
            path(
                "merge/",
                self.admin_site.admin_view(self.merge_view),
                name="leads_company_merge",
            ),
            *super().get_urls(),
        ]

    @admin.action(description="Merge selected companies", permissions=["merge"])
    def merge_companies(self, request: HttpRequest, queryset: QuerySet[Company]) -> Any:
        ids = sorted(queryset.values_list("pk", flat=True)[: MAX_MERGED + 1])
        if not 2 <= len(ids) <= MAX_MERGED:
            self.message_user(
                request, f"Select 2 to {MAX_MERGED} companies to merge.", messages.WARNING
            )
            return None
        return redirect(f"{reverse('admin:leads_company_merge')}?ids={','.join(map(str, ids))}")

    def merge_view(self, request: HttpRequest) -> HttpResponse:
        raw = request.GET.get("ids", "").split(",")
        ids = [int(part) for part in raw if part.isdigit()][:MAX_MERGED]
        companies = list(Company.objects.filter(pk__in=ids).order_by("pk"))
        return merge_page(self, request, companies)


# --- The review queue ----------------------------------------------------------------------


def _name(column: str) -> Subquery:
    """A pair's company's name, or None when its row is gone (merged)."""
    return Subquery(Company.objects.filter(pk=OuterRef(column)).values("name")[:1])


@admin.register(CompanyDuplicatePair)
class CompanyDuplicatePairAdmin(admin.ModelAdmin):
    list_display = ("pair", "evidence", "score", "status", "found_at", "review")
    list_filter = ("status", "sure")
    readonly_fields = (
        "company_a",
        "company_b",
        "reasons",
        "score",
        "sure",
        "status",
        "found_at",
        "decided_by",
    )
    fields = readonly_fields
    actions = ["merge_sure_pairs", "merge_pairs", "mark_not_duplicate"]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[CompanyDuplicatePair]:
        pairs = (
            super()
            .get_queryset(request)
            .annotate(a_name=_name("company_a"), b_name=_name("company_b"))
        )
        return _in_reach(signed_in(request), pairs, "company_a", "company_b")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # an answer is kept: "not a duplicate" is never asked again

    @admin.display(description="Companies")
    def pair(self, pair: CompanyDuplicatePair) -> str:
        return format_html(
            "{}<br>{}",
            _company_link(pair.company_a_id, pair.a_name),  # type: ignore[attr-defined]
            _company_link(pair.company_b_id, pair.b_name),  # type: ignore[attr-defined]
        )

    @admin.display(description="Evidence")
    def evidence(self, pair: CompanyDuplicatePair) -> str:
        return "; ".join(company_reason_text(reason) for reason in pair.reasons)

    @admin.display(description="")
    def review(self, pair: CompanyDuplicatePair) -> str:
        if pair.status != PairStatus.OPEN:
            return ""
        url = reverse("admin:leads_companyduplicatepair_merge", args=[pair.pk])
        return format_html('<a class="button" href="{}">Review and merge</a>', url)

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:pk>/merge/",
                self.admin_site.admin_view(self.merge_view),
                name="leads_companyduplicatepair_merge",
            ),
            *super().get_urls(),
        ]

    def merge_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        pair = self.get_queryset(request).filter(pk=pk, status=PairStatus.OPEN).first()
        if pair is None or not self.has_change_permission(request, pair):
            return redirect("admin:index")
        ids = [pair.company_a_id, pair.company_b_id]
        companies = list(Company.objects.filter(pk__in=ids).order_by("pk"))
        return merge_page(self, request, companies, pair=pair)

    def _mergeable(self, request: HttpRequest, pairs: QuerySet) -> list[CompanyDuplicatePair]:
        user = signed_in(request)
        return [
            pair
            for pair in pairs.filter(status=PairStatus.OPEN)
            if not company_merge_refusal(
                user=user, company_ids=[pair.company_a_id, pair.company_b_id]
            )
        ]

    def _merge(self, request: HttpRequest, pairs: list[CompanyDuplicatePair], skipped: int) -> None:
        try:
            merges = company_pairs_merge(pairs=pairs, by=signed_in(request))
        except MergeError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        merged = sum(len(m.merged_ids) for m in merges)
        self.message_user(
            request,
            f"{len(merges)} merge(s): {merged} company(ies) merged into others.",
            messages.SUCCESS,
        )
        if skipped:
            self.message_user(request, f"{skipped} pair(s) left for review.", messages.WARNING)

    @admin.action(description="Merge the selected sure pairs (same website)")
    def merge_sure_pairs(self, request: HttpRequest, queryset: QuerySet) -> None:
        pairs = self._mergeable(request, queryset.filter(sure=True))
        self._merge(request, pairs, skipped=queryset.count() - len(pairs))

    @admin.action(description="Merge the selected pairs, every field by default")
    def merge_pairs(self, request: HttpRequest, queryset: QuerySet) -> None:
        pairs = self._mergeable(request, queryset)
        self._merge(request, pairs, skipped=queryset.count() - len(pairs))

    @admin.action(description="Not a duplicate: never suggest these pairs again")
    def mark_not_duplicate(self, request: HttpRequest, queryset: QuerySet) -> None:
        pairs = self._mergeable(request, queryset)
        for pair in pairs:
            company_pair_not_duplicate(pair=pair, by=signed_in(request))
        self.message_user(request, f"{len(pairs)} pair(s) answered “not a duplicate”.")


# --- The record of merges ------------------------------------------------------------------


@admin.register(CompanyMerge)
class CompanyMergeAdmin(admin.ModelAdmin):
    list_display = ("__str__", "survivor_link", "by", "at", "undone_at")
    list_select_related = ("by",)
    list_filter = ("at", "undone_at")
    search_fields = ("=survivor_ref",)
    readonly_fields = (
        "survivor_link",
        "merged_ids",
        "field_changes",
        "moved_counts",
        "by",
        "at",
        "undone_at",
        "undone_by",
    )
    fields = readonly_fields
    actions = ["undo"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CompanyMerge]:
        return _in_reach(signed_in(request), super().get_queryset(request), "survivor")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Survivor")
    def survivor_link(self, merge: CompanyMerge) -> str:
        if merge.survivor_id is None:
            return f"company {merge.survivor_ref} (gone)"
        url = reverse("admin:leads_company_change", args=[merge.survivor_id])
        return format_html('<a href="{}">company {}</a>', url, merge.survivor_id)

    @admin.display(description="Fields taken")
    def field_changes(self, merge: CompanyMerge) -> str:
        return format_html_join(
            "",
            "<div>{}: {} → {} (from company {}){}</div>",
            (
                (
                    name,
                    change["before"],
                    change["after"],
                    change["from"],
                    " — kept on undo: changed since" if change.get("kept") else "",
                )
                for name, change in merge.fields.items()
            ),
        )

    @admin.display(description="Rows moved")
    def moved_counts(self, merge: CompanyMerge) -> str:
        counts = {
            kind: sum(len(ids) for ids in per_company.values())
            for kind, per_company in merge.moved.items()
        }
        return ", ".join(f"{kind}: {n}" for kind, n in counts.items() if n) or "—"

    @admin.action(description="Undo the selected merges (latest first)")
    def undo(self, request: HttpRequest, queryset: QuerySet[CompanyMerge]) -> None:
        user = signed_in(request)
        done = 0
        for merge in queryset.filter(undone_at__isnull=True).order_by("-pk"):
            refusal = company_merge_refusal(user=user, company_ids=[merge.survivor_ref])
            if refusal:
                self.message_user(request, f"{merge}: {refusal}", messages.ERROR)
                continue
            try:
                company_merge_undo(merge_id=merge.pk, by=user)
            except MergeError as exc:
                self.message_user(request, f"{merge}: {exc.message}", messages.ERROR)
                continue
            done += 1
        if done:
            self.message_user(request, f"Undid {done} company merge(s).", messages.SUCCESS)

"""The duplicates' admin: the review queue with its evidence, a merge page that lets the
reviewer choose each conflicting field, bulk merges of the sure pairs, the record of
merges with their undo, and the detection settings.

Who may merge is ``leads.permissions.merge_refusal``, asked for every lead of every
merge here as on the API; the work is ``leads.merging``'s and ``leads.duplicates``'.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import CharField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Concat
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from crm.http import signed_in
from crm.models import Role
from crm.resilience import task_enqueue

from ..duplicates import pair_not_duplicate, reason_text
from ..merging import (
    MERGE_FIELDS,
    MergeError,
    duplicate_pairs_merge,
    lead_merge_undo,
    lead_survivor_pick,
    leads_merge,
    merge_defaults,
    merge_preview,
)
from ..models import DuplicatePair, DuplicateSettings, Lead, LeadMerge, PairStatus, Stage
from ..permissions import merge_refusal, merges_leads


def _label(column: str) -> Subquery:
    """A pair's lead as "Name <email>", or None when its row is gone (merged)."""
    lead = Lead.objects.filter(pk=OuterRef(column)).annotate(
        label=Concat(
            "first_name",
            Value(" "),
            "last_name",
            Value(" <"),
            "email",
            Value(">"),
            output_field=CharField(),
        )
    )
    return Subquery(lead.values("label")[:1])


def _lead_link(pk: int, label: str | None) -> str:
    if label is None:
        return format_html("lead {} (merged)", pk)
    return format_html(
        '<a href="{}">{}</a> <small>#{}</small>',
        reverse("admin:leads_lead_change", args=[pk]),
        label.strip(),
        pk,
    )


def _pairs_in_view(request: HttpRequest, pairs: QuerySet[DuplicatePair]) -> QuerySet:
    user = signed_in(request)
    if user.sees_all_leads:
        return pairs
    if not merges_leads(user):
        return pairs.none()
    visible = Lead.objects.visible_to(user).values("pk")
    return pairs.filter(lead_a__in=visible, lead_b__in=visible)


def _merges_of_url(lead_id: int) -> str:
    """The list of merges into the lead, where the undo action is (latest first)."""
    return f"{reverse('admin:leads_leadmerge_changelist')}?{urlencode({'q': lead_id})}"


@admin.register(DuplicatePair)
class DuplicatePairAdmin(admin.ModelAdmin):
    list_display = ("pair", "evidence", "score", "status", "found_at", "review")
    list_filter = ("status", "sure")
    readonly_fields = (
        "lead_a",
        "lead_b",
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[DuplicatePair]:
        pairs = (
            super()
            .get_queryset(request)
            .annotate(a_label=_label("lead_a"), b_label=_label("lead_b"))
        )
        return _pairs_in_view(request, pairs)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # an answer is kept: "not a duplicate" is never asked again

    @admin.display(description="Leads")
    def pair(self, pair: DuplicatePair) -> str:
        return format_html(
            "{}<br>{}",
            _lead_link(pair.lead_a_id, pair.a_label),  # type: ignore[attr-defined]
            _lead_link(pair.lead_b_id, pair.b_label),  # type: ignore[attr-defined]
        )

    @admin.display(description="Evidence")
    def evidence(self, pair: DuplicatePair) -> str:
        return "; ".join(reason_text(reason) for reason in pair.reasons)

    @admin.display(description="")
    def review(self, pair: DuplicatePair) -> str:
        if pair.status != PairStatus.OPEN:
            return ""
        url = reverse("admin:leads_duplicatepair_merge", args=[pair.pk])
        return format_html('<a class="button" href="{}">Review and merge</a>', url)

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:pk>/merge/",
                self.admin_site.admin_view(self.merge_view),
                name="leads_duplicatepair_merge",
            ),
            *super().get_urls(),
        ]

    # --- Actions ---------------------------------------------------------------------

    def _mergeable(self, request: HttpRequest, pairs: QuerySet) -> list[DuplicatePair]:
        user = signed_in(request)
        return [
            pair
            for pair in pairs.filter(status=PairStatus.OPEN)
            if not merge_refusal(user=user, lead_ids=[pair.lead_a_id, pair.lead_b_id])
        ]

    def _merge(self, request: HttpRequest, pairs: list[DuplicatePair], skipped: int) -> None:
        try:
            merges = duplicate_pairs_merge(pairs=pairs, by=signed_in(request))
        except MergeError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        leads = sum(len(m.merged_ids) for m in merges)
        self.message_user(
            request,
            f"{len(merges)} merge(s): {leads} lead(s) merged into others.",
            messages.SUCCESS,
        )
        if skipped:
            self.message_user(request, f"{skipped} pair(s) left for review.", messages.WARNING)

    @admin.action(description="Merge the selected sure pairs (same mailbox)")
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
            pair_not_duplicate(pair=pair, by=signed_in(request))
        self.message_user(request, f"{len(pairs)} pair(s) answered “not a duplicate”.")

    # --- The merge page ----------------------------------------------------------------

    def merge_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Both leads side by side, a choice per conflicting field and of the survivor."""
        pair = self.get_queryset(request).filter(pk=pk, status=PairStatus.OPEN).first()
        user = signed_in(request)
        if pair is None or not self.has_change_permission(request, pair):
            return redirect("admin:index")
        ids = [pair.lead_a_id, pair.lead_b_id]
        leads = Lead.objects.select_related("company", "owner").in_bulk(ids)
        if len(leads) < 2 or merge_refusal(user=user, lead_ids=ids):
            return redirect("admin:index")
        if request.method == "POST":
            return self._merge_post(request, pair, leads)
        survivor = lead_survivor_pick(list(leads.values()))
        other = next(lead for lead in leads.values() if lead.pk != survivor.pk)
        columns = [survivor, other]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Merge duplicate leads",
            "pair": pair,
            "survivor": survivor,
            "reasons": [reason_text(r) for r in pair.reasons],
            "columns": [
                {
                    "lead": lead,
                    "history": (
                        f"{lead.activities.count()} activities, {lead.deals.count()} deals, "
                        f"{lead.notes.count()} notes, {lead.tasks.count()} tasks"
                    ),
                }
                for lead in columns
            ],
            "conflicts": [
                {
                    "field": row["field"],
                    "cells": [
                        {
                            "lead": lead.pk,
                            "value": row["values"][lead.pk],
                            "checked": lead.pk == row["default"],
                        }
                        for lead in columns
                    ],
                }
                for row in merge_preview(survivor, [other])
            ],
        }
        return TemplateResponse(request, "admin/leads/duplicatepair/merge.html", context)

    def _merge_post(self, request: HttpRequest, pair: DuplicatePair, leads: dict) -> HttpResponse:
        user = signed_in(request)
        if "not_duplicate" in request.POST:
            pair_not_duplicate(pair=pair, by=user)
            self.message_user(request, "Answered “not a duplicate”: never suggested again.")
            return redirect("admin:leads_duplicatepair_changelist")
        survivor_id = int(request.POST.get("survivor") or 0)
        if survivor_id not in leads:
            self.message_user(request, "Choose the lead that stays.", messages.ERROR)
            return redirect("admin:leads_duplicatepair_merge", pair.pk)
        others = [pk for pk in leads if pk != survivor_id]
        defaults = merge_defaults(leads[survivor_id], [leads[pk] for pk in others])
        fields = {
            name: int(request.POST[f"field_{name}"])
            for name in MERGE_FIELDS
            if request.POST.get(f"field_{name}", "").isdigit()
            and int(request.POST[f"field_{name}"]) != defaults[name]
        }
        try:
            merge = leads_merge(survivor_id=survivor_id, others=others, fields=fields, by=user)
        except MergeError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return redirect("admin:leads_duplicatepair_merge", pair.pk)
        self.message_user(
            request,
            format_html(
                'Merged lead {} into <a href="{}">lead {}</a>. <a href="{}">Undo it</a> from '
                "the merges.",
                ", ".join(map(str, merge.merged_ids)),
                reverse("admin:leads_lead_change", args=[survivor_id]),
                survivor_id,
                _merges_of_url(survivor_id),
            ),
            messages.SUCCESS,
        )
        return redirect("admin:leads_duplicatepair_changelist")


@admin.register(LeadMerge)
class LeadMergeAdmin(admin.ModelAdmin):
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[LeadMerge]:
        merges = super().get_queryset(request)
        user = signed_in(request)
        if user.sees_all_leads:
            return merges
        if not merges_leads(user):
            return merges.none()
        return merges.filter(survivor__in=Lead.objects.visible_to(user).values("pk"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Survivor")
    def survivor_link(self, merge: LeadMerge) -> str:
        if merge.survivor_id is None:
            return f"lead {merge.survivor_ref} (gone)"
        url = reverse("admin:leads_lead_change", args=[merge.survivor_id])
        return format_html('<a href="{}">lead {}</a>', url, merge.survivor_id)

    @admin.display(description="Fields taken")
    def field_changes(self, merge: LeadMerge) -> str:
        return format_html_join(
            "",
            "<div>{}: {} → {} (from lead {}){}</div>",
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
        ) + self._stage_moves(merge)

    def _stage_moves(self, merge: LeadMerge) -> str:
        """The stage the merge's rescore moved the survivor from, and what the undo did."""
        moves = merge.moved.get("stage_moves") or {}
        if not moves:
            return ""
        outcome = (
            " — taken back on undo"
            if moves.get("undone")
            else " — kept on undo: moved since"
            if moves.get("kept")
            else ""
        )
        return format_html(
            "<div>stage: {} → moved by the merge's rescore{}</div>",
            Stage(moves["from"]).label,
            outcome,
        )

    @admin.display(description="Rows moved")
    def moved_counts(self, merge: LeadMerge) -> str:
        counts = {
            kind: sum(len(ids) for ids in per_lead.values())
            for kind, per_lead in merge.moved.items()
            if isinstance(per_lead, dict) and all(isinstance(v, list) for v in per_lead.values())
        }
        return ", ".join(f"{kind}: {n}" for kind, n in counts.items() if n) or "—"

    @admin.action(description="Undo the selected merges (latest first)")
    def undo(self, request: HttpRequest, queryset: QuerySet[LeadMerge]) -> None:
        user = signed_in(request)
        done = 0
        for merge in queryset.filter(undone_at__isnull=True).order_by("-pk"):
            refusal = merge_refusal(user=user, lead_ids=[merge.survivor_ref])
            if refusal:
                self.message_user(request, f"{merge}: {refusal}", messages.ERROR)
                continue
            try:
                lead_merge_undo(merge_id=merge.pk, by=user)
            except MergeError as exc:
                self.message_user(request, f"{merge}: {exc.message}", messages.ERROR)
                continue
            done += 1
        if done:
            self.message_user(request, f"Undid {done} merge(s).", messages.SUCCESS)


@admin.register(DuplicateSettings)
class DuplicateSettingsAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "name_similarity",
        "company_name_similarity",
        "last_scan_at",
        "last_scan_leads",
        "last_scan_pairs",
        "last_scan_companies",
        "last_scan_company_pairs",
    )
    readonly_fields = (
        "last_scan_at",
        "last_scan_leads",
        "last_scan_pairs",
        "last_scan_companies",
        "last_scan_company_pairs",
    )
    actions = ["scan_now"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return signed_in(request).role in (
            Role.ADMIN,
            Role.MARKETER,
        ) and super().has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not DuplicateSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        DuplicateSettings.load()  # the one row, there to change
        return super().changelist_view(request, extra_context)

    @admin.action(description="Scan for duplicates now (on the bulk queue)")
    def scan_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        if task_enqueue("leads.tasks.scan_duplicates", what="Duplicate scan"):
            self.message_user(request, "The scan is queued; new pairs appear in the review queue.")
        else:
            self.message_user(request, "The task queue cannot be reached.", messages.ERROR)

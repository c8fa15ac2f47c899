"""The lead's admin page, with its stage history, deals and newest activities inline, and
the export of the selected leads."""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from crm.http import signed_in
from crm.models import User

from ..deals import deals_delete
from ..duplicates import lead_duplicates, reason_text
from ..models import (
    SCORE_COLUMNS,
    Activity,
    Deal,
    Lead,
    LeadQuerySet,
    StageChange,
    normalize_email,
)
from ..permissions import OWNER_REFUSED, email_in_use, may_export_leads, may_own
from ..profiles import email_error, lead_save_profile
from .access import UserBoundForm, UserBoundFormMixin
from .deals import DealClosingForm, deal_write_from_form
from .lead_exports import export_selected


class NewestActivitiesFormSet(BaseInlineFormSet):
    """The lead's 50 newest activities; the rep's lead page paginates the rest."""

    def get_queryset(self) -> QuerySet[Activity]:
        if not hasattr(self, "_newest"):
            self._newest = super().get_queryset().order_by("-occurred_at", "-id")[:50]
        return self._newest


class ActivityInline(admin.TabularInline):
    model = Activity
    fields = ("occurred_at", "type", "url", "duration_seconds", "source", "scored_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    formset = NewestActivitiesFormSet


class StageChangeInline(admin.TabularInline):
    model = StageChange
    fields = ("at", "from_stage", "to_stage", "by", "reason")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False


class DealInline(admin.TabularInline):
    model = Deal
    form = DealClosingForm
    fields = (
        "name",
        "amount",
        "currency",
        "stage",
        "expected_close",
        "status",
        "closed_at",
        "lost_reason",
    )
    extra = 0


class LeadAdminForm(UserBoundForm):
    # Checked by ``email_error`` alone, in the words every surface uses.
    email = forms.CharField(label="Email", widget=forms.EmailInput)

    def clean_email(self) -> str:
        email = normalize_email(self.cleaned_data["email"])
        problem = email_error(email)
        if problem:
            raise forms.ValidationError(problem)
        why = email_in_use(user=self.user, email=email, lead=self.instance)
        if why:
            raise forms.ValidationError(why)
        return email

    def clean_owner(self) -> User | None:
        owner = self.cleaned_data.get("owner")
        current = self.instance.owner if self.instance.owner_id else None
        if not may_own(user=self.user, owner=owner, current=current):
            raise forms.ValidationError(OWNER_REFUSED)
        return owner


@admin.register(Lead)
class LeadAdmin(UserBoundFormMixin, admin.ModelAdmin):
    form = LeadAdminForm
    list_display = (
        "__str__",
        "email",
        "company",
        "stage",
        "score",
        "band",
        "grade",
        "owner",
        "last_activity_at",
    )
    list_filter = ("stage", "band", "grade", "quadrant", "source", "email_status", "seniority")
    list_select_related = ("company", "owner")
    search_fields = ("email", "first_name", "last_name", "company__name")
    autocomplete_fields = ("company", "owner")
    filter_horizontal = ("product_interests",)
    show_full_result_count = False
    # Hottest first through the lead's rank, whose index holds the score (``Lead.ranked``).
    ordering = ("-rank__score", "-id")
    readonly_fields = (
        "stage",
        "stage_changed_at",
        *SCORE_COLUMNS,
        "created_at",
        "updated_at",
        "first_activity_at",
        "last_activity_at",
    )
    fieldsets = (
        (None, {"fields": ("first_name", "last_name", "email", "phone", "email_status")}),
        ("Role", {"fields": ("job_title", "seniority", "department", "company")}),
        ("Location", {"fields": ("country", "region", "city")}),
        (
            "Origin",
            {
                "fields": (
                    "source",
                    "campaign",
                    ("utm_source", "utm_medium", "utm_campaign"),
                    ("utm_term", "utm_content"),
                    "product_interests",
                )
            },
        ),
        ("BANT", {"fields": ("budget", "authority", "need", "timeline")}),
        ("Custom fields", {"fields": ("custom_fields",)}),
        (
            "Pipeline",
            {"fields": ("owner", "stage", "stage_changed_at", "disqualification_reason")},
        ),
        (
            "Score",
            {"fields": (("score", "band", "grade", "quadrant"), ("fit_score", "engagement_score"))},
        ),
        (
            "Timestamps",
            {"fields": ("created_at", "updated_at", "first_activity_at", "last_activity_at")},
        ),
    )
    inlines = [StageChangeInline, DealInline, ActivityInline]
    actions = ["export_csv"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Lead]:
        # The admin's queryset comes from ``Lead.objects``, a ``LeadQuerySet``.
        leads = cast(LeadQuerySet, super().get_queryset(request))
        return leads.ranked().visible_to(signed_in(request))

    @admin.action(description="Export selected leads (CSV)", permissions=["export"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Lead]) -> HttpResponseBase | None:
        """The selected leads (all that match, with "select all"), in the list's order,
        with every column of the leads list's export; more than ``EXPORT_INLINE_MAX``
        as an export job (``lead_exports``)."""
        return export_selected(request, queryset)

    def has_export_permission(self, request: HttpRequest) -> bool:
        return may_export_leads(signed_in(request))

    def save_model(self, request: HttpRequest, obj: Lead, form, change: bool) -> None:
        # Through the service, so a change of explicit fields rescores the lead's fit.
        lead_save_profile(lead=obj, changed_fields=list(form.changed_data))
        if not change:
            self._warn_of_duplicates(request, obj)

    def _warn_of_duplicates(self, request: HttpRequest, lead: Lead) -> None:
        """A likely duplicate in the user's view is named, never refused."""
        found = lead_duplicates(lead=lead, user=signed_in(request))
        if not found:
            return
        links = format_html_join(
            ", ",
            '<a href="{}">{}</a> ({})',
            (
                (
                    reverse("admin:leads_lead_change", args=[d.lead.pk]),
                    d.lead,
                    "; ".join(reason_text(r) for r in d.reasons),
                )
                for d in found
            ),
        )
        self.message_user(
            request,
            format_html(
                "This lead may be a duplicate of {}: merge them from the review queue.", links
            ),
            messages.WARNING,
        )

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        if formset.model is not Deal:
            super().save_formset(request, form, formset, change)
            return
        # Deals through their services, so that the lead's deal outcome and its stage
        # (a deal won makes a customer) follow.
        formset.save(commit=False)
        removed = [deal.pk for deal in formset.deleted_objects]
        if removed:
            deals_delete(deals=Deal.objects.filter(pk__in=removed))
        for deal_form in formset.forms:
            if deal_form.has_changed() and deal_form not in formset.deleted_forms:
                deal_write_from_form(form=deal_form, by=signed_in(request))

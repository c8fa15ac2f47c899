"""The workspace's admin: saved views, the lead admin's bulk action that reaches beyond
``leads``, adjusting scores by hand, and the company list's account score column.

``leads`` registers its own lead and company admins and knows nothing of scoring; this
edge extends the company list with each company's account score (sortable) and the lead
admin with the action, which goes through the bulk-action service the leads list uses
(``workspace.bulk.leads_adjust``), so both surfaces adjust, refuse and report alike.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from crm.http import signed_in
from leads.admin.lead import LeadAdmin as LeadRecordAdmin
from leads.admin.records import CompanyAdmin as CompanyRecordAdmin
from leads.models import Company, Lead
from scoring.account_selectors import with_account_score
from scoring.permissions import may_adjust_score

from . import bulk
from .models import SavedView
from .saved_views import may_delete_view, may_share_views, saved_views_for


class ScoreAdjustmentForm(forms.Form):
    points = forms.IntegerField(
        min_value=-1000, max_value=1000, help_text="Negative points lower the score."
    )
    reason = forms.CharField(max_length=200, help_text="Shown in the lead's score history.")

    def clean_points(self) -> int:
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError("Give a non-zero number of points.")
        return points


admin.site.unregister(Company)


@admin.register(Company)
class CompanyAdmin(CompanyRecordAdmin):
    def get_list_display(self, request: HttpRequest) -> Any:
        return (*super().get_list_display(request), "account_score")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Company]:
        return with_account_score(super().get_queryset(request))

    @admin.display(description="Account score", ordering="account_score", empty_value="—")
    def account_score(self, company: Company) -> int | None:
        """The company's score from its people's, in the first active model that scores it."""
        return getattr(company, "account_score", None)


admin.site.unregister(Lead)


@admin.register(Lead)
class LeadAdmin(LeadRecordAdmin):
    actions = [*LeadRecordAdmin.actions, "adjust_score"]

    @admin.action(description="Adjust the score of the selected leads", permissions=["adjust"])
    def adjust_score(self, request: HttpRequest, queryset: QuerySet[Lead]):
        """Ask for points and a reason, then add a manual ledger entry to each lead."""
        form = ScoreAdjustmentForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            outcome = bulk.leads_adjust(
                lead_ids=list(queryset.values_list("pk", flat=True)),
                points=form.cleaned_data["points"],
                reason=form.cleaned_data["reason"],
                by=signed_in(request),
            )
            if outcome.refused:
                self.message_user(request, outcome.summary("adjusted"), messages.WARNING)
            else:
                done = len(outcome.done)
                self.message_user(
                    request, f"Adjusted the score of {done} lead(s).", messages.SUCCESS
                )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Adjust lead scores",
            "opts": self.model._meta,
            "form": form,
            "leads": queryset,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/leads/lead/adjust_score.html", context)

    def has_adjust_permission(self, request: HttpRequest) -> bool:
        """Managers and admins adjust scores by hand; reps and marketers do not."""
        return may_adjust_score(signed_in(request))


@admin.register(SavedView)
class SavedViewAdmin(admin.ModelAdmin):
    """The saved views a person sees (``workspace.saved_views``): their own, changed by
    them; shared ones, deleted by managers and admins. Views are saved from the list."""

    # Deleting goes through each view's own page, which asks `has_delete_permission`.
    actions = None
    list_display = ("name", "owner", "shared", "updated_at")
    list_filter = ("shared",)
    list_select_related = ("owner",)
    search_fields = ("name",)
    fields = ("name", "owner", "shared", "query", "columns", "created_at", "updated_at")
    readonly_fields = ("owner", "created_at", "updated_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[SavedView]:
        return saved_views_for(signed_in(request))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        readonly = tuple(self.readonly_fields)
        if not may_share_views(signed_in(request)):
            readonly += ("shared",)
        return readonly

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not super().has_change_permission(request, obj):
            return False
        return obj is None or obj.owner_id == signed_in(request).pk

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or may_delete_view(view=obj, user=signed_in(request))

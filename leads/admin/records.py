"""The admin of the CRM records around leads: companies, product lines, custom fields,
and the activities, stage changes, tasks and notes on leads (deals: ``deals``)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from crm.http import signed_in
from crm.models import User

from ..models import (
    Activity,
    Company,
    CustomFieldDefinition,
    Note,
    ProductLine,
    StageChange,
    Task,
)
from ..permissions import ASSIGNEE_REFUSED, may_assign_task, may_change_company, tasks_visible_to
from ..stages import stage_changes_delete
from .access import UserBoundForm, UserBoundFormMixin, VisibleLeadRowsMixin
from .company_duplicates import CompanyMergeActionMixin


@admin.register(Company)
class CompanyAdmin(CompanyMergeActionMixin, admin.ModelAdmin):
    """Everyone with a role reads companies; who may change one is ``may_change_company``,
    who may merge them ``company_merge_refusal`` (the action "merge selected companies")."""

    list_display = ("name", "domain", "industry", "employee_count", "country")
    list_filter = ("industry", "country")
    search_fields = ("name", "domain")
    actions = ["merge_companies"]

    def has_change_permission(self, request: HttpRequest, obj: Company | None = None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or may_change_company(user=signed_in(request), company=obj))

    def has_delete_permission(self, request: HttpRequest, obj: Company | None = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or may_change_company(user=signed_in(request), company=obj))


@admin.register(ProductLine)
class ProductLineAdmin(admin.ModelAdmin):
    list_display = ("name", "slug")
    search_fields = ("name",)
    prepopulated_fields = {"slug": ("name",)}


@admin.register(CustomFieldDefinition)
class CustomFieldDefinitionAdmin(admin.ModelAdmin):
    list_display = ("label", "key", "field_type", "required", "set_after_contact")
    list_filter = ("set_after_contact",)
    search_fields = ("label", "key")


@admin.register(Activity)
class ActivityAdmin(VisibleLeadRowsMixin, admin.ModelAdmin):
    list_display = ("occurred_at", "type", "lead", "url", "source", "scored_at")
    list_filter = ("type", "source")
    list_select_related = ("lead",)
    search_fields = ("lead__email", "url", "idempotency_key")
    raw_id_fields = ("lead", "created_by")
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    readonly_fields = ("received_at", "scored_at")


@admin.register(StageChange)
class StageChangeAdmin(VisibleLeadRowsMixin, admin.ModelAdmin):
    list_display = ("at", "lead", "from_stage", "to_stage", "by", "reason")
    list_filter = ("to_stage", "from_stage")
    list_select_related = ("lead", "by")
    search_fields = ("lead__email",)
    raw_id_fields = ("lead",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: StageChange | None = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: StageChange) -> None:
        stage_changes_delete(changes=StageChange.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[StageChange]) -> None:
        stage_changes_delete(changes=queryset)


class TaskAdminForm(UserBoundForm):
    def clean_assignee(self) -> User:
        assignee = self.cleaned_data["assignee"]
        current = self.instance.assignee if self.instance.assignee_id else None
        if not may_assign_task(user=self.user, assignee=assignee, current=current):
            raise forms.ValidationError(ASSIGNEE_REFUSED)
        return assignee


@admin.register(Task)
class TaskAdmin(UserBoundFormMixin, VisibleLeadRowsMixin, admin.ModelAdmin):
    form = TaskAdminForm
    list_display = ("title", "lead", "assignee", "kind", "due_at", "done_at")
    list_filter = ("kind", "done_at")
    list_select_related = ("lead", "assignee")
    search_fields = ("title", "lead__email")
    raw_id_fields = ("lead",)
    autocomplete_fields = ("assignee",)

    def visible_filter(self, request: HttpRequest) -> Q:
        return Q(pk__in=tasks_visible_to(signed_in(request)).values("pk"))


@admin.register(Note)
class NoteAdmin(VisibleLeadRowsMixin, admin.ModelAdmin):
    list_display = ("__str__", "lead", "author", "created_at")
    list_select_related = ("lead", "author")
    search_fields = ("body", "lead__email")
    raw_id_fields = ("lead",)

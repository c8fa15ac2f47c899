"""The admin of the hand-off: assignment rules, the log of hand-offs, notifications and
reps' ratings of lead quality."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from ..handoff_models import AssignmentRule, HandOff, LeadRating, Notification
from .access import VisibleLeadRowsMixin


@admin.register(AssignmentRule)
class AssignmentRuleAdmin(admin.ModelAdmin):
    """The steps that pick a handed-off lead's owner, after keeping a current owner who is an
    active rep; active rules run from the lowest position up."""

    list_display = (
        "name",
        "kind",
        "position",
        "active",
        "owner",
        "team",
        "product_line",
        "min_account_score",
    )
    list_editable = ("position", "active")
    list_filter = ("kind", "active")
    list_select_related = ("owner", "team", "product_line")
    search_fields = ("name",)
    raw_id_fields = ("owner",)
    ordering = ("position", "pk")


@admin.register(HandOff)
class HandOffAdmin(VisibleLeadRowsMixin, admin.ModelAdmin):
    """The log of hand-offs: who got each lead, why, and how fast they acted."""

    list_display = (
        "created_at",
        "lead",
        "owner",
        "status",
        "assigned_by",
        "sla_due_at",
        "escalated_at",
        "speed_to_lead",
    )
    list_filter = ("status", "stage", ("escalated_at", admin.EmptyFieldListFilter))
    list_select_related = ("lead", "owner")
    search_fields = ("lead__email", "owner__username", "assigned_by")
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: HandOff | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: HandOff | None = None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "kind", "title", "read_at", "emailed_at")
    list_filter = ("kind", ("read_at", admin.EmptyFieldListFilter))
    list_select_related = ("user",)
    search_fields = ("title", "user__username")
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Notification | None = None) -> bool:
        return False


@admin.register(LeadRating)
class LeadRatingAdmin(VisibleLeadRowsMixin, admin.ModelAdmin):
    """Reps' verdicts on lead quality, read by the reports."""

    list_display = ("created_at", "lead", "by", "rating", "reason")
    list_filter = ("rating",)
    list_select_related = ("lead", "by")
    search_fields = ("lead__email", "reason")
    raw_id_fields = ("lead", "by")

"""The suppression admin (the addresses nurturing never emails again) and the holds on
automatic enrollment."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from ..models import AutoEnrollHold, Suppression


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("email", "reason", "detail", "created_at")
    list_filter = ("reason",)
    search_fields = ("email",)


@admin.register(AutoEnrollHold)
class AutoEnrollHoldAdmin(admin.ModelAdmin):
    """Leads the hourly sweep leaves out of automatic sequences (imported history);
    deleting a hold hands its lead to the next sweep."""

    list_display = ("lead", "reason", "created_at")
    search_fields = ("lead__email", "lead__last_name")
    list_select_related = ("lead",)
    raw_id_fields = ("lead",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

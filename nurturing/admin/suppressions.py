"""The suppression admin: the addresses nurturing never emails again."""

from __future__ import annotations

from django.contrib import admin

from ..models import Suppression


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("email", "reason", "detail", "created_at")
    list_filter = ("reason",)
    search_fields = ("email",)

"""The message admin: the emails nurturing made, read-only, for the leads one can see."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from crm.http import signed_in
from leads.models import Lead

from ..models import Message


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "lead",
        "subject",
        "status",
        "attempts",
        "sent_at",
        "opened_at",
        "clicked_at",
        "replied_at",
    )
    list_filter = ("status", "enrollment__sequence")
    list_select_related = ("lead",)
    search_fields = ("lead__email", "to_email", "subject", "provider_message_id")
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return (
            super()
            .get_queryset(request)
            .filter(lead__in=Lead.objects.visible_to(signed_in(request)))
        )

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Message._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False

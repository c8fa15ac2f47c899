"""The admin of what brings leads in: web forms, tracking keys and events, the identities
tracking links to leads, and the calls not linked to a lead yet."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from ..models import PendingEvent, TrackedEvent, TrackingIdentity, TrackingKey, WebForm
from .access import VisibleLeadRowsMixin


@admin.register(WebForm)
class WebFormAdmin(admin.ModelAdmin):
    list_display = ("name", "key", "is_active", "redirect_url", "default_source", "created_at")
    list_filter = ("is_active", "default_source")
    search_fields = ("name", "key")
    readonly_fields = ("key", "endpoint", "created_at")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = (
        (None, {"fields": ("name", "is_active", "key", "endpoint", "created_at")}),
        ("Fields", {"fields": ("field_mapping", "honeypot_field")}),
        ("After posting", {"fields": ("redirect_url", "allowed_origins")}),
        ("Attribution", {"fields": ("default_source", "default_campaign")}),
    )
    actions = ["regenerate_key"]

    @admin.display(description="Posts go to")
    def endpoint(self, obj: WebForm) -> str:
        if obj.pk is None:
            return "Shown once the form is saved."
        return format_html("<code>{}</code>", obj.get_absolute_url())

    @admin.action(description="Regenerate the key of the selected forms (old keys stop working)")
    def regenerate_key(self, request: HttpRequest, queryset: QuerySet[WebForm]) -> None:
        forms_changed = list(queryset)
        for form in forms_changed:
            form.regenerate_key()
        self.message_user(
            request,
            f"New keys for {len(forms_changed)} form(s): update the pages that post to them.",
            messages.SUCCESS,
        )


@admin.register(TrackingKey)
class TrackingKeyAdmin(admin.ModelAdmin):
    """Write keys for ``/v1/…``. A key's secret is shown once, when it is made."""

    list_display = ("name", "prefix", "is_active", "created_at", "last_used_at")
    list_filter = ("is_active",)
    search_fields = ("name", "prefix")
    fields = ("name", "is_active", "prefix", "created_at", "last_used_at")
    readonly_fields = ("prefix", "created_at", "last_used_at")
    actions = ["regenerate_secret"]

    def save_model(self, request: HttpRequest, obj: TrackingKey, form, change: bool) -> None:
        secret = None if change else obj.set_new_secret()
        super().save_model(request, obj, form, change)
        if secret:
            self._show_secret(request, obj, secret)

    @admin.action(description="Regenerate the selected keys (old ones stop working)")
    def regenerate_secret(self, request: HttpRequest, queryset: QuerySet[TrackingKey]) -> None:
        for key in queryset:
            secret = key.set_new_secret()
            key.save(update_fields=["prefix", "key_hash"])
            self._show_secret(request, key, secret)

    def _show_secret(self, request: HttpRequest, key: TrackingKey, secret: str) -> None:
        self.message_user(
            request,
            format_html(
                "Write key for “{}”: <code>{}</code>. Copy it now: it is not shown again.",
                key.name,
                secret,
            ),
            messages.WARNING,
        )


@admin.register(TrackedEvent)
class TrackedEventAdmin(admin.ModelAdmin):
    """Which activity each tracked event records; events without a row are kept as custom."""

    list_display = ("name", "activity_type", "is_active")
    list_editable = ("activity_type", "is_active")
    list_filter = ("activity_type", "is_active")
    search_fields = ("name",)


@admin.register(TrackingIdentity)
class TrackingIdentityAdmin(VisibleLeadRowsMixin, admin.ModelAdmin):
    list_display = ("value", "kind", "lead", "created_at")
    list_filter = ("kind",)
    list_select_related = ("lead",)
    search_fields = ("value", "lead__email")
    raw_id_fields = ("lead",)
    readonly_fields = ("created_at",)


@admin.register(PendingEvent)
class PendingEventAdmin(admin.ModelAdmin):
    """Calls from senders not linked to a lead yet; kept 30 days."""

    list_display = ("type", "anonymous_id", "user_id", "occurred_at", "received_at")
    list_filter = ("type",)
    search_fields = ("anonymous_id", "user_id", "message_id")
    readonly_fields = (
        "type",
        "anonymous_id",
        "user_id",
        "message_id",
        "message",
        "occurred_at",
        "received_at",
    )
    date_hierarchy = "received_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: PendingEvent | None = None) -> bool:
        return False

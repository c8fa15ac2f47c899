import json

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from . import webhooks
from .http import signed_in
from .models import (
    SUBSCRIBABLE_WEBHOOK_EVENTS,
    ApiToken,
    ApiTokenQuerySet,
    DeliveryStatus,
    Team,
    TeamWebhook,
    User,
    WebhookDelivery,
    WebhookDeliveryQuerySet,
    WorkerHeartbeat,
)
from .permissions import teams_visible_to, users_visible_to


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Admins manage everyone; a manager sees the people of their teams only, here and in
    every autocomplete that lists users (``users_visible_to``)."""

    list_display = ("username", "email", "first_name", "last_name", "team", "is_staff")
    list_filter = (*DjangoUserAdmin.list_filter, ("team", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("team",)
    fieldsets = (
        *(DjangoUserAdmin.fieldsets or ()),
        ("Sales", {"fields": ("team", "territory_countries", "territory_regions")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        visible = users_visible_to(signed_in(request)).values("pk")
        return super().get_queryset(request).filter(pk__in=visible)


class MemberInline(admin.TabularInline):
    model = User
    fk_name = "team"
    fields = ("username", "first_name", "last_name", "email")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    """Teams are set up by admins; a manager reads their own teams (``teams_visible_to``)."""

    list_display = ("name", "manager")
    list_select_related = ("manager",)
    search_fields = ("name",)
    autocomplete_fields = ("manager",)
    inlines = [MemberInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        visible = teams_visible_to(signed_in(request)).values("pk")
        return super().get_queryset(request).filter(pk__in=visible)


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("hostname", "beat_at")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created by their users through the API; the admin sees and revokes them."""

    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    list_select_related = ("user",)
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    exclude = ("key_hash",)
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: ApiTokenQuerySet) -> None:
        count = queryset.revoke()
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


class TeamWebhookForm(forms.ModelForm):
    url = forms.URLField(
        label="URL",
        max_length=500,
        assume_scheme="https",
        help_text="Where events are posted: https://, on a public address (docs/WEBHOOKS.md).",
    )
    events = forms.MultipleChoiceField(
        choices=[(event.value, event.label) for event in SUBSCRIBABLE_WEBHOOK_EVENTS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Which events are posted to the URL.",
    )

    class Meta:
        model = TeamWebhook
        fields = ("team", "name", "url", "events", "active")


@admin.register(TeamWebhook)
class TeamWebhookAdmin(admin.ModelAdmin):
    """The secret is generated on creation and then shown read-only, to be copied into
    the receiver; every request is signed with it (docs/WEBHOOKS.md)."""

    form = TeamWebhookForm
    list_display = ("name", "team", "url", "event_list", "active", "created_at")
    list_filter = ("active", "team")
    list_select_related = ("team",)
    search_fields = ("name", "url", "team__name")
    actions = ["send_test_event"]

    def get_fields(self, request: HttpRequest, obj: TeamWebhook | None = None) -> tuple[str, ...]:
        fields = ("team", "name", "url", "events", "active")
        return fields if obj is None else (*fields, "secret", "created_at")

    def get_readonly_fields(
        self, request: HttpRequest, obj: TeamWebhook | None = None
    ) -> tuple[str, ...]:
        return () if obj is None else ("secret", "created_at")

    @admin.display(description="events")
    def event_list(self, webhook: TeamWebhook) -> str:
        return ", ".join(webhook.events) or "none"

    @admin.action(description="Send a test event to the selected webhooks", permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[TeamWebhook]) -> None:
        for webhook in queryset.select_related("team"):
            delivery = webhooks.webhook_test_send(webhook=webhook)
            if delivery.status == DeliveryStatus.DELIVERED:
                text = f"{webhook.name}: delivered (HTTP {delivery.last_status_code})."
                self.message_user(request, text, messages.SUCCESS)
            else:
                text = f"{webhook.name}: not delivered: {delivery.last_error}"
                self.message_user(request, text, messages.ERROR)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log: read-only, with one action to try again now."""

    list_display = (
        "id",
        "webhook",
        "event",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "created_at",
        "delivered_at",
    )
    list_filter = ("status", "event", "webhook__team")
    list_select_related = ("webhook__team",)
    search_fields = ("key", "webhook__name", "webhook__team__name")
    date_hierarchy = "created_at"
    actions = ["retry_now"]
    readonly_fields = (
        "webhook",
        "event",
        "key",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "locked_until",
        "created_at",
        "delivered_at",
        "payload_json",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="payload")
    def payload_json(self, delivery: WebhookDelivery) -> str:
        return format_html(
            "<pre>{}</pre>", json.dumps(delivery.payload, indent=2, ensure_ascii=False)
        )

    def has_change_permission(
        self, request: HttpRequest, obj: WebhookDelivery | None = None
    ) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("crm.change_webhookdelivery")

    @admin.action(description="Retry the selected deliveries now", permissions=["retry"])
    def retry_now(self, request: HttpRequest, queryset: WebhookDeliveryQuerySet) -> None:
        selected = queryset.count()
        count = webhooks.webhook_retry_now(deliveries=queryset)
        text = f"Queued {count} of {selected} selected deliveries for another attempt."
        if count < selected:
            text += " The others were delivered already or are being sent."
        self.message_user(request, text, messages.SUCCESS)

"""Users, their roles and teams: who may see and change which leads."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import cached_property

from .webhook_http import WebhookURLError, webhook_url_check


class Role(models.TextChoices):
    """The four kinds of people who use Hotlist; each is a Django group of the same label."""

    ADMIN = "admin", "Admin"
    MARKETER = "marketer", "Marketer"
    MANAGER = "manager", "Sales manager"
    REP = "rep", "Sales rep"


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    manager = models.ForeignKey(
        "crm.User",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="managed_teams",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A person who signs in; reps carry the territory used to assign leads (the product
    lines they sell are ``leads.ProductLine.reps``, ``user.product_lines`` from here)."""

    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="members"
    )
    territory_countries = models.JSONField(
        default=list, blank=True, help_text='ISO country codes this rep covers, e.g. ["DE", "AT"].'
    )
    territory_regions = models.JSONField(
        default=list, blank=True, help_text='Regions this rep covers, e.g. ["EMEA"].'
    )

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    @cached_property
    def role(self) -> Role | None:
        """The strongest role the user holds, or None for an outsider."""
        if self.is_superuser:
            return Role.ADMIN
        names = set(self.groups.values_list("name", flat=True))
        for role in (Role.ADMIN, Role.MARKETER, Role.MANAGER, Role.REP):
            if role.label in names:
                return role
        return None

    @property
    def sees_all_leads(self) -> bool:
        return self.role in (Role.ADMIN, Role.MARKETER)


class WorkerHeartbeat(models.Model):
    """One row per worker host, touched by the periodic heartbeat task."""

    hostname = models.CharField(max_length=255, unique=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} at {self.beat_at:%Y-%m-%d %H:%M:%S}"


API_KEY_PREFIX = "hl_"
# How often a token's last use is written: once a minute is precise enough to spot an
# unused token, and keeps busy clients from writing the token row on every request.
API_TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


def api_key_hash(key: str) -> str:
    """The stored form of an API key: its SHA-256, hex-encoded."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)

    def for_key(self, key: str) -> ApiToken | None:
        """The active token with this key, its user loaded, or None."""
        return self.active().select_related("user").filter(key_hash=api_key_hash(key)).first()

    def revoke(self) -> int:
        """Revoke the tokens not revoked yet; how many were."""
        return self.active().update(revoked_at=timezone.now())


class ApiTokenManager(models.Manager.from_queryset(ApiTokenQuerySet)):  # type: ignore[misc]
    def issue(self, *, user: User, name: str) -> tuple[ApiToken, str]:
        """Create a token and return it with its key, which is stored only as a hash."""
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        token = self.create(user=user, name=name, prefix=key[:10], key_hash=api_key_hash(key))
        return token, key


class ApiToken(models.Model):
    """A personal key for the REST API; it acts as its user until revoked."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. “Zapier”.")
    prefix = models.CharField(max_length=10, help_text="The key's first characters, to spot it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenManager()

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="apitoken_user_created_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def touch(self) -> bool:
        """Record a use, at most once a minute: one conditional UPDATE, none when recent."""
        now = timezone.now()
        stale = now - API_TOKEN_TOUCH_INTERVAL
        if self.last_used_at is not None and self.last_used_at > stale:
            return False
        updated = (
            ApiToken.objects.filter(pk=self.pk)
            .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale))
            .update(last_used_at=now)
        )
        if updated:
            self.last_used_at = now
        return bool(updated)


# How long a stored answer to an Idempotency-Key is replayed; older ones are purged.
IDEMPOTENCY_KEY_TTL = timedelta(hours=24)


class IdempotentRequestQuerySet(models.QuerySet["IdempotentRequest"]):
    def expired(self) -> IdempotentRequestQuerySet:
        return self.filter(created_at__lt=timezone.now() - IDEMPOTENCY_KEY_TTL)


class IdempotentRequest(models.Model):
    """The first successful answer to a POST sent with an ``Idempotency-Key`` header.

    The row is inserted, answer still empty, inside the request's transaction before
    the view runs, so a concurrent request with the same key waits on the unique
    constraint and then replays the answer instead of creating a second time.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_line = models.CharField(max_length=300, help_text="Method and path, e.g. POST /…/.")
    body_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = IdempotentRequestQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotentrequest_user_key_uniq")
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotentrequest_created_idx")]

    def __str__(self) -> str:
        return f"{self.request_line} ({self.key})"


class WebhookEvent(models.TextChoices):
    """What a team webhook can be told; the value is the ``X-Hotlist-Event`` header."""

    HANDOFF_ASSIGNED = "handoff.assigned", "Hand-off assigned"
    HANDOFF_ESCALATED = "handoff.escalated", "Hand-off escalated"
    TEST = "webhook.test", "Test event"


# The events a webhook can subscribe to; test events are sent on request only.
SUBSCRIBABLE_WEBHOOK_EVENTS = [WebhookEvent.HANDOFF_ASSIGNED, WebhookEvent.HANDOFF_ESCALATED]


def webhook_secret() -> str:
    """A fresh signing secret: 32 random bytes, URL-safe, recognisable by its prefix."""
    return "whsec_" + secrets.token_urlsafe(32)


def default_webhook_events() -> list[str]:
    return [str(event) for event in SUBSCRIBABLE_WEBHOOK_EVENTS]


class TeamWebhookQuerySet(models.QuerySet["TeamWebhook"]):
    def subscribed(self, *, team: Team, event: str) -> list[TeamWebhook]:
        """The team's active webhooks that take ``event``.

        The event list is filtered in Python: a team has a handful of webhooks, and
        SQLite has no JSON containment lookup.
        """
        return [hook for hook in self.filter(team=team, active=True) if event in hook.events]


class TeamWebhook(models.Model):
    """An HTTPS endpoint (a chat incoming webhook, an automation) told about a team's hand-offs.

    Every POST is signed with ``secret`` (see ``docs/WEBHOOKS.md``). The URL is checked
    when saved and again when sent (``crm.webhook_http``): private, loopback and link-local
    addresses are refused unless ``WEBHOOK_ALLOWED_NETWORKS`` names them.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=100, help_text="What the webhook is for, e.g. “#sales”.")
    url = models.URLField(
        "URL", max_length=500, help_text="Where events are posted; must use https://."
    )
    secret = models.CharField(
        max_length=64,
        default=webhook_secret,
        help_text="Signs every request (X-Hotlist-Signature); give it to the receiver.",
    )
    events = models.JSONField(default=default_webhook_events, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TeamWebhookQuerySet.as_manager()

    class Meta:
        verbose_name = "team webhook"
        ordering = ["team__name", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.team})"

    def clean(self) -> None:
        unknown = set(self.events or []) - set(default_webhook_events())
        if not isinstance(self.events, list) or unknown:
            raise ValidationError({"events": "Choose events from the list."})
        if not self.url:
            return  # the field's own validation has said what is wrong
        try:
            webhook_url_check(self.url)
        except WebhookURLError as exc:
            raise ValidationError({"url": str(exc)}) from None


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDeliveryQuerySet(models.QuerySet["WebhookDelivery"]):
    def unlocked(self, now: datetime) -> WebhookDeliveryQuerySet:
        """Deliveries no worker is sending right now (or whose sender died)."""
        return self.filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))

    def due(self, now: datetime) -> WebhookDeliveryQuerySet:
        """Pending deliveries whose next attempt is due and that no worker holds."""
        return self.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now).unlocked(now)


class WebhookDelivery(models.Model):
    """One event for one webhook, and the log of sending it.

    The row is the outbox: it exists before anything is sent, ``key`` (unique per
    webhook) makes the same event arrive once however often it is announced, and a
    worker claims the row (``locked_until``) before each attempt so two workers never
    post it twice.
    """

    webhook = models.ForeignKey(TeamWebhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40, choices=WebhookEvent.choices)
    key = models.CharField(
        max_length=200, help_text="The event's identity, e.g. handoff.assigned:42"
    )
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    locked_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker is sending it until then."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["webhook", "key"], name="webhookdelivery_webhook_key_uniq"
            )
        ]
        indexes = [
            # What the retry sweeper reads every half minute: only the pending rows.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="webhookdelivery_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} #{self.pk} to {self.webhook.name}"

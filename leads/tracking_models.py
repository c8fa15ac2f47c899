"""Data of the Segment-compatible tracking endpoint: write keys, identities, event mapping
and the events kept until their sender is known.

Imported by ``leads.models``, so these are models of the ``leads`` app.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from .models import ActivityType, Lead

TRACKING_KEY_PREFIX = "hlw_"


def tracking_key_hash(key: str) -> str:
    """The stored form of a write key: its SHA-256, hex-encoded."""
    return hashlib.sha256(key.encode()).hexdigest()


class TrackingKeyQuerySet(models.QuerySet["TrackingKey"]):
    def for_key(self, key: str) -> TrackingKey | None:
        """The active key with this secret, or None."""
        if not key:
            return None
        return self.filter(is_active=True, key_hash=tracking_key_hash(key)).first()


class TrackingKeyManager(models.Manager.from_queryset(TrackingKeyQuerySet)):  # type: ignore[misc]
    def issue(self, *, name: str) -> tuple[TrackingKey, str]:
        """Create a write key and return it with its secret, which is stored only as a hash."""
        tracking_key = self.model(name=name)
        secret = tracking_key.set_new_secret()
        tracking_key.save()
        return tracking_key, secret


class TrackingKey(models.Model):
    """A write key for ``/v1/…``: it only submits events, it never reads anything back."""

    name = models.CharField(max_length=100, help_text="Where the key is used, e.g. “Website”.")
    prefix = models.CharField(
        max_length=12, editable=False, help_text="The key's first characters."
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    is_active = models.BooleanField(
        "active", default=True, help_text="Calls with an inactive key answer 401."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = TrackingKeyManager()

    class Meta:
        verbose_name = "tracking write key"
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def set_new_secret(self) -> str:
        """Give the key a new random secret (unsaved) and return it; the old one stops working
        once saved."""
        secret = TRACKING_KEY_PREFIX + secrets.token_urlsafe(24)
        self.prefix = secret[:12]
        self.key_hash = tracking_key_hash(secret)
        return secret

    def touch(self) -> None:
        """Record a use, at most once a minute: one conditional UPDATE."""
        now = timezone.now()
        stale = now - dt.timedelta(minutes=1)
        if self.last_used_at is not None and self.last_used_at > stale:
            return
        TrackingKey.objects.filter(pk=self.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale)
        ).update(last_used_at=now)
        self.last_used_at = now


class IdentityKind(models.TextChoices):
    USER_ID = "user_id", "User id"
    ANONYMOUS_ID = "anonymous_id", "Anonymous id"


class TrackingIdentity(models.Model):
    """A sender's ``userId`` or ``anonymousId`` and the lead it belongs to."""

    kind = models.CharField(max_length=20, choices=IdentityKind.choices)
    value = models.CharField(max_length=200)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="tracking_identities")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "tracking identity"
        verbose_name_plural = "tracking identities"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "value"], name="trackingidentity_unique_value")
        ]
        indexes = [models.Index(fields=["lead"], name="trackingidentity_lead_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.value}"


class TrackedEvent(models.Model):
    """Which activity a ``track`` call with this event name records."""

    name = models.CharField(
        max_length=200, help_text="The event name as sent, e.g. “Demo Requested” (any case)."
    )
    activity_type = models.CharField(max_length=30, choices=ActivityType.choices)
    is_active = models.BooleanField(
        "active", default=True, help_text="Events of an inactive mapping are dropped."
    )

    class Meta:
        verbose_name = "tracked event"
        ordering = ["name"]
        constraints = [models.UniqueConstraint(Lower("name"), name="trackedevent_unique_name_ci")]

    def __str__(self) -> str:
        return f"{self.name} → {self.get_activity_type_display()}"


class PendingEvent(models.Model):
    """A call whose sender is not linked to a lead yet, replayed once it is."""

    anonymous_id = models.CharField(max_length=200, blank=True)
    user_id = models.CharField(max_length=200, blank=True)
    message_id = models.CharField(max_length=200, blank=True)
    type = models.CharField(max_length=20)
    message = models.JSONField()
    occurred_at = models.DateTimeField(help_text="When it happened, corrected for clock skew.")
    received_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message_id"],
                condition=~Q(message_id=""),
                name="pendingevent_unique_message_id",
            )
        ]
        indexes = [
            models.Index(
                fields=["anonymous_id"],
                condition=~Q(anonymous_id=""),
                name="pendingevent_anonymous_idx",
            ),
            models.Index(
                fields=["user_id"], condition=~Q(user_id=""), name="pendingevent_user_idx"
            ),
            models.Index(fields=["received_at"], name="pendingevent_received_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} from {self.anonymous_id or self.user_id}"


__all__ = [
    "IdentityKind",
    "PendingEvent",
    "TrackedEvent",
    "TrackingIdentity",
    "TrackingKey",
]

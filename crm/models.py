"""Users, their roles and teams: who may see and change which leads."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import cached_property


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
    """A person who signs in; reps carry the territory and product lines used to assign leads."""

    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="members"
    )
    territory_countries = models.JSONField(
        default=list, blank=True, help_text='ISO country codes this rep covers, e.g. ["DE", "AT"].'
    )
    territory_regions = models.JSONField(
        default=list, blank=True, help_text='Regions this rep covers, e.g. ["EMEA"].'
    )
    product_lines = models.ManyToManyField("leads.ProductLine", blank=True, related_name="reps")

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

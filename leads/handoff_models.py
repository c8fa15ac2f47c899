"""Data of the hand-off: who gets a sales-ready lead, what they were told, and how fast
they reached out; plus the rules that pick the owner, in-app notifications and the reps'
verdicts on lead quality.

Imported by ``leads.models``, so these are models of the ``leads`` app.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .models import Lead, ProductLine, Stage, StageChange, Task

if TYPE_CHECKING:
    from crm.models import User


class HandOffStatus(models.TextChoices):
    PENDING = "pending", "Waiting for acceptance"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class HandOffQuerySet(models.QuerySet["HandOff"]):
    def pending(self) -> HandOffQuerySet:
        return self.filter(status=HandOffStatus.PENDING)

    def awaiting(self, user: User) -> HandOffQuerySet:
        """The hand-offs waiting for ``user`` to accept or reject them, oldest SLA first."""
        return self.pending().filter(owner=user).order_by("sla_due_at", "pk")

    def open(self) -> HandOffQuerySet:
        """Not rejected: the hand-offs a sales touch still counts for."""
        return self.exclude(status=HandOffStatus.REJECTED)

    def past_sla(self, now: dt.datetime) -> HandOffQuerySet:
        """Pending, never touched, not escalated yet, and due before ``now``."""
        return self.pending().filter(
            first_touch_at__isnull=True, escalated_at__isnull=True, sla_due_at__lt=now
        )

    def stalled(self, older_than: dt.datetime) -> HandOffQuerySet:
        """Pending hand-offs whose owner was never notified, created before ``older_than``:
        their assigning task was lost or failed and is queued again."""
        return self.pending().filter(notified_at__isnull=True, created_at__lt=older_than)


class HandOff(models.Model):
    """A lead's move into the hand-off stage and what followed it.

    One row per move (``stage_change`` is unique), created in the transaction of the move:
    retries and concurrent workers find the row instead of making a second one, while a
    recycled lead that qualifies again moves again and is handed off again. The
    assigning task fills the timestamps step by step, so a repeated run skips the steps
    already done.
    """

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="handoffs")
    stage_change = models.OneToOneField(
        StageChange, on_delete=models.CASCADE, related_name="handoff"
    )
    stage = models.CharField(max_length=20, choices=Stage.choices)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="handoffs",
    )
    assigned_by = models.CharField(
        max_length=200, blank=True, help_text="Why this owner, e.g. “territory DE”."
    )
    status = models.CharField(
        max_length=10, choices=HandOffStatus.choices, default=HandOffStatus.PENDING
    )
    created_at = models.DateTimeField(default=timezone.now)
    assigned_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    sla_due_at = models.DateTimeField("SLA due", null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    rejected_at = models.DateTimeField(null=True, blank=True)
    reject_reason = models.CharField(max_length=500, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who accepted or rejected it.",
    )
    escalated_at = models.DateTimeField(null=True, blank=True)
    escalated_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    first_touch_at = models.DateTimeField(
        null=True, blank=True, help_text="The first call, meeting or email reply logged after it."
    )
    task = models.ForeignKey(
        Task,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The follow-up task due within the SLA.",
    )

    objects = HandOffQuerySet.as_manager()

    class Meta:
        verbose_name = "hand-off"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="rejected")
                | (Q(rejected_at__isnull=False) & ~Q(reject_reason="")),
                name="handoff_rejected_has_reason",
                violation_error_message="A rejected hand-off needs its time and reason.",
            ),
            models.CheckConstraint(
                condition=~Q(status="accepted") | Q(accepted_at__isnull=False),
                name="handoff_accepted_has_time",
                violation_error_message="An accepted hand-off needs its time.",
            ),
            models.CheckConstraint(
                condition=Q(escalated_to__isnull=True) | Q(escalated_at__isnull=False),
                name="handoff_escalated_has_time",
                violation_error_message="An escalated hand-off needs its time.",
            ),
        ]
        indexes = [
            models.Index(fields=["lead", "-created_at"], name="handoff_lead_created_idx"),
            models.Index(
                fields=["owner", "sla_due_at"],
                condition=Q(status="pending"),
                name="handoff_awaiting_idx",
            ),
            models.Index(
                fields=["sla_due_at"],
                condition=Q(
                    status="pending", first_touch_at__isnull=True, escalated_at__isnull=True
                ),
                name="handoff_sla_watch_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Hand-off of {self.lead} ({self.get_status_display()})"

    @property
    def speed_to_lead(self) -> dt.timedelta | None:
        """From the hand-off to the first logged touch; None until someone reached out."""
        if self.first_touch_at is None:
            return None
        return self.first_touch_at - self.created_at

    @property
    def is_closed(self) -> bool:
        return self.status != HandOffStatus.PENDING


class AssignmentKind(models.TextChoices):
    TERRITORY = "territory", "Territory (country or region)"
    PRODUCT_LINE = "product_line", "Product interest"
    ACCOUNT = "account", "Key account (account score)"
    ROUND_ROBIN = "round_robin", "Round robin in a team"
    FALLBACK = "fallback", "Fallback owner"


class AssignmentRuleQuerySet(models.QuerySet["AssignmentRule"]):
    def active(self) -> AssignmentRuleQuerySet:
        return self.filter(active=True).order_by("position", "pk")


class AssignmentRule(models.Model):
    """One step of picking the owner of a handed-off lead; active rules run by position.

    A territory rule matches leads in its countries or regions, a product-line rule
    leads interested in its product line; round-robin and fallback rules match every
    lead. With an ``owner`` the rule gives matching leads to that person. Without one it
    picks among the active reps (of ``team`` when set) who fit the lead: for a territory
    rule the reps whose own territory covers the lead's country or region, for a
    product-line rule the reps selling that line (any line the lead is interested in
    when the rule names none), for round robin all of them; the rep with the fewest
    open leads wins, ties going to the one who waited longest for a hand-off. A
    territory rule without countries or regions then routes by the reps' territories
    alone. A key-account rule matches leads whose company's account score, in the model
    of the lead's primary score (``leads.account_scores``), is at least
    ``min_account_score``; without an owner it picks as round robin does. A fallback rule
    always names its owner.
    """

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=AssignmentKind.choices)
    position = models.PositiveIntegerField(default=0, help_text="Lower runs first.")
    active = models.BooleanField(default=True)
    countries = models.JSONField(
        default=list, blank=True, help_text='Territory: ISO country codes, e.g. ["DE", "AT"].'
    )
    regions = models.JSONField(
        default=list, blank=True, help_text='Territory: regions, e.g. ["EMEA"].'
    )
    product_line = models.ForeignKey(
        ProductLine,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="assignment_rules",
        help_text="Product interest: leads interested in this line.",
    )
    min_account_score = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Key account: leads whose company's account score is at least this.",
    )
    team = models.ForeignKey(
        "crm.Team",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="assignment_rules",
        help_text="Pick among this team's reps (all reps when empty).",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="assignment_rules",
        help_text="Who gets the matching leads; empty picks among the reps who fit the lead.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = AssignmentRuleQuerySet.as_manager()

    class Meta:
        ordering = ["position", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="fallback") | Q(owner__isnull=False),
                name="assignmentrule_fallback_has_owner",
                violation_error_message="Choose the fallback owner.",
            ),
            models.CheckConstraint(
                condition=~Q(kind="account") | Q(min_account_score__isnull=False),
                name="assignmentrule_account_has_score",
                violation_error_message="Give the account score a key account reaches.",
            ),
            models.CheckConstraint(
                condition=~Q(kind="product_line")
                | Q(product_line__isnull=False)
                | Q(owner__isnull=True),
                name="assignmentrule_product_owner_has_line",
                violation_error_message="Choose the product line the owner sells.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if isinstance(self.countries, list):
            self.countries = [str(c).strip().upper() for c in self.countries if str(c).strip()]
        if isinstance(self.regions, list):
            self.regions = [str(r).strip() for r in self.regions if str(r).strip()]
        super().save(*args, **kwargs)

    def clean(self) -> None:
        errors: dict[str, str] = {}
        for name in ("countries", "regions"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                errors[name] = 'Give a list of names, e.g. ["DE", "AT"].'
        if errors:
            raise ValidationError(errors)
        named_area = any(c.strip() for c in self.countries + self.regions)
        if self.kind == AssignmentKind.TERRITORY and self.owner_id and not named_area:
            errors["countries"] = "Name the owner's countries or regions."
        if self.kind == AssignmentKind.PRODUCT_LINE and self.owner_id and not self.product_line_id:
            errors["product_line"] = "Choose the product line the owner sells."
        if self.kind == AssignmentKind.FALLBACK and self.owner_id is None:
            errors["owner"] = "Choose the fallback owner."
        if self.kind == AssignmentKind.ACCOUNT and self.min_account_score is None:
            errors["min_account_score"] = "Give the account score a key account reaches."
        if errors:
            raise ValidationError(errors)

    def matches(
        self,
        *,
        country: str,
        region: str,
        product_line_ids: set[int],
        account_score: int | None = None,
    ) -> bool:
        """Whether the rule's own condition holds for a lead with these attributes."""
        if self.kind == AssignmentKind.ACCOUNT:
            return (
                account_score is not None
                and self.min_account_score is not None
                and account_score >= self.min_account_score
            )
        if self.kind == AssignmentKind.TERRITORY:
            if not (self.countries or self.regions):
                return True
            return self.covers(country=country, region=region)
        if self.kind == AssignmentKind.PRODUCT_LINE and self.product_line_id is not None:
            return self.product_line_id in product_line_ids
        if self.kind == AssignmentKind.PRODUCT_LINE:
            return bool(product_line_ids)
        return True

    def covers(self, *, country: str, region: str) -> bool:
        regions = {r.lower() for r in self.regions}
        return (bool(country) and country.upper() in self.countries) or (
            bool(region) and region.lower() in regions
        )


class RejectReason(models.TextChoices):
    """The usual reasons a rep hands a lead back, offered wherever a hand-off is
    rejected; the reports group rejections by them."""

    NOT_READY = "not_ready", "Not ready to buy yet"
    NOT_A_FIT = "not_a_fit", "Not a fit for what we sell"
    WRONG_CONTACT = "wrong_contact", "Not the person who decides"
    TERRITORY = "territory", "Not my territory or product"
    BAD_DATA = "bad_data", "Contact details are wrong"
    DUPLICATE = "duplicate", "A duplicate of a lead we have"


class NotificationKind(models.TextChoices):
    HANDOFF = "handoff", "Hand-off"
    ESCALATION = "escalation", "Escalation"
    SURGE = "surge", "Score surge"
    TASK = "task", "Task"
    REJECTION = "rejection", "Rejected hand-off"
    EXPORT = "export", "Export"


class NotificationQuerySet(models.QuerySet["Notification"]):
    def unread(self) -> NotificationQuerySet:
        return self.filter(read_at__isnull=True)


class Notification(models.Model):
    """Something a person should know, shown in the app and, when asked, emailed once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notifications",
        db_index=False,
    )
    kind = models.CharField(max_length=20, choices=NotificationKind.choices)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, help_text="Plain text.")
    url = models.CharField(max_length=500, blank=True)
    lead = models.ForeignKey(
        Lead, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The outbox of the email: asked for, and no worker has taken it yet (its task
    # message was lost, or never sent while the broker was down).
    email_pending = models.BooleanField(default=False, editable=False)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "read_at"], name="notification_user_read_idx"),
            models.Index(fields=["user", "-created_at"], name="notification_user_recent_idx"),
            models.Index(
                fields=["created_at"],
                condition=models.Q(email_pending=True),
                name="notification_email_pending_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_read(self) -> bool:
        return self.read_at is not None


class Rating(models.TextChoices):
    GOOD = "good", "Good"
    NOT_FIT = "not_fit", "Not a fit"


class LeadRating(models.Model):
    """A rep's verdict on a lead's quality, for the reports; one per person and lead."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="ratings")
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    rating = models.CharField(max_length=10, choices=Rating.choices)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["lead", "by"],
                name="leadrating_one_per_person",
                violation_error_message="You rated this lead already; change that rating.",
            ),
            models.CheckConstraint(
                condition=~Q(rating="not_fit") | ~Q(reason=""),
                name="leadrating_not_fit_has_reason",
                violation_error_message="Say why the lead is not a fit.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lead}: {self.get_rating_display()}"

    def clean(self) -> None:
        self.reason = self.reason.strip()
        if self.rating == Rating.NOT_FIT and not self.reason:
            raise ValidationError({"reason": "Say why the lead is not a fit."})

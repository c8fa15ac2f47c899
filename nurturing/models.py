"""Nurture sequences: timed steps a lead walks through until it is ready for sales.

A ``Sequence`` says who enters (band, stage, score range, product interest, source,
silence for re-engagement), who leaves (a stage reached, another band's track, a reply,
the maximum duration; unsubscribes and bounces always end it) and what is sent
(``Step`` rows, in order, each after a delay and optionally inside a send window). An
``Enrollment`` is one lead walking one sequence; each email it sends is one ``Message``,
unique per enrollment and step, so retries and concurrent workers never send twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from leads.models import Band, Lead, ProductLine, Source, Stage, StageChange, normalize_email

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# Stages that end a nurture track by default: the lead is with sales, or out.
DEFAULT_EXIT_STAGES = [Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER, Stage.DISQUALIFIED]
DEFAULT_ENTRY_STAGES = [Stage.NEW, Stage.MQL, Stage.RECYCLED]


def default_entry_stages() -> list[str]:
    return [str(stage) for stage in DEFAULT_ENTRY_STAGES]


def default_exit_stages() -> list[str]:
    return [str(stage) for stage in DEFAULT_EXIT_STAGES]


class SequenceStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"


def _count(queryset: models.QuerySet, group: str) -> Coalesce:
    """A correlated ``COUNT(*)`` of ``queryset`` grouped by ``group``, 0 when empty."""
    counted = queryset.order_by().values(group).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=models.IntegerField()), Value(0))


def reached_stage(stage: str) -> Exists:
    """Whether an enrollment's lead moved into ``stage`` after it was enrolled."""
    return Exists(
        StageChange.objects.filter(
            lead=OuterRef("lead"), to_stage=stage, at__gte=OuterRef("started_at")
        )
    )


# Message counters shared by the sequence and step statistics: name → filter.
MESSAGE_COUNTERS: dict[str, Q] = {
    "sent": Q(status__in=["sent", "bounced"]),
    "delivered": Q(status="sent"),
    "opened": Q(opened_at__isnull=False),
    "clicked": Q(clicked_at__isnull=False),
    "replied": Q(replied_at__isnull=False),
    "bounced": Q(status="bounced"),
    "unsubscribed": Q(unsubscribed_at__isnull=False),
}


class SequenceQuerySet(models.QuerySet["Sequence"]):
    def active(self) -> SequenceQuerySet:
        return self.filter(status=SequenceStatus.ACTIVE)

    def by_priority(self) -> SequenceQuerySet:
        return self.order_by("-priority", "pk")

    def with_stats(self) -> SequenceQuerySet:
        """Each sequence with its enrollment and message counters (correlated counts)."""
        enrollments = Enrollment.objects.filter(sequence=OuterRef("pk"))
        messages = Message.objects.filter(enrollment__sequence=OuterRef("pk"))
        counters = {
            f"n_{name}": _count(messages.filter(where), "enrollment__sequence")
            for name, where in MESSAGE_COUNTERS.items()
        }
        return self.annotate(
            n_enrolled=_count(enrollments, "sequence"),
            n_active=_count(enrollments.filter(status=EnrollmentStatus.ACTIVE), "sequence"),
            n_mql=_count(enrollments.filter(reached_stage(Stage.MQL)), "sequence"),
            n_sql=_count(enrollments.filter(reached_stage(Stage.SQL)), "sequence"),
            **counters,
        )


class Sequence(models.Model):
    """A nurture track: who enters, who leaves, and the steps in between."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    scoring_model = models.ForeignKey(
        "scoring.ScoringModel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sequences",
        help_text="Only leads whose primary score comes from this model; empty: any.",
    )
    status = models.CharField(
        max_length=10, choices=SequenceStatus.choices, default=SequenceStatus.ACTIVE
    )
    priority = models.PositiveSmallIntegerField(
        default=100, help_text="Where several sequences match a lead, the highest priority wins."
    )
    auto_enroll = models.BooleanField(
        "enroll automatically",
        default=True,
        help_text="Enroll matching leads when their band or stage changes, and hourly. "
        "Off: only manual enrollment from the admin.",
    )

    # Entry criteria; an empty criterion matches every lead.
    bands = models.JSONField(default=list, blank=True, help_text="Bands that enter.")
    stages = models.JSONField(
        default=default_entry_stages, blank=True, help_text="Stages that enter."
    )
    min_score = models.IntegerField(null=True, blank=True)
    max_score = models.IntegerField(null=True, blank=True)
    product_lines = models.ManyToManyField(
        ProductLine,
        blank=True,
        related_name="sequences",
        help_text="Leads interested in any of these; empty: any interest.",
    )
    sources = models.JSONField(default=list, blank=True, help_text="Lead sources that enter.")
    silent_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Only leads without any activity for this many days (re-engagement, e.g. "
        "past customers gone quiet).",
    )

    # Exit criteria; unsubscribes and bounces always end every sequence.
    exit_stages = models.JSONField(
        default=default_exit_stages, blank=True, help_text="Reaching one of these ends it."
    )
    exit_on_track_change = models.BooleanField(
        "leave on track change",
        default=True,
        help_text="Leave when the lead no longer matches the entry band or score range "
        "(it moved to another band's track).",
    )
    exit_on_reply = models.BooleanField(default=True, help_text="Leave when the lead replies.")
    max_duration_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The lead-cycle cap: leave this many days after entering (e.g. 14 for "
        "B2C, 120 for B2B); empty: when the steps run out.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = SequenceQuerySet.as_manager()

    class Meta:
        ordering = ["-priority", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_score__isnull=True)
                | Q(max_score__isnull=True)
                | Q(max_score__gte=F("min_score")),
                name="sequence_score_range_ordered",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if (
            self.min_score is not None
            and self.max_score is not None
            and self.max_score < self.min_score
        ):
            errors["max_score"] = "The highest score cannot be below the lowest."
        for name, allowed in (
            ("bands", Band.values),
            ("stages", Stage.values),
            ("exit_stages", Stage.values),
            ("sources", Source.values),
        ):
            value = getattr(self, name)
            if not isinstance(value, list) or any(v not in allowed for v in value):
                errors[name] = f"Choose among: {', '.join(allowed)}."
        if not errors and set(self.stages) & set(self.exit_stages):
            errors["exit_stages"] = "A stage cannot both enter and end the sequence."
        if errors:
            raise ValidationError(errors)

    @property
    def is_active(self) -> bool:
        return self.status == SequenceStatus.ACTIVE

    def lead_filter(self, *, now: dt.datetime) -> Q:
        """The entry criteria as a filter on leads (product lines aside: see ``entrants``)."""
        where = Q()
        if self.bands:
            where &= Q(band__in=self.bands)
        if self.stages:
            where &= Q(stage__in=self.stages)
        if self.min_score is not None:
            where &= Q(score__gte=self.min_score)
        if self.max_score is not None:
            where &= Q(score__lte=self.max_score)
        if self.sources:
            where &= Q(source__in=self.sources)
        if self.silent_days is not None:
            quiet_since = now - dt.timedelta(days=self.silent_days)
            where &= Q(last_activity_at__isnull=True) | Q(last_activity_at__lt=quiet_since)
        if self.scoring_model_id is not None:
            where &= Q(scores__model_id=self.scoring_model_id, scores__is_primary=True)
        return where

    def entrants(self, *, now: dt.datetime) -> models.QuerySet[Lead]:
        """The leads that meet the entry criteria now and may be emailed."""
        leads = Lead.objects.filter(self.lead_filter(now=now), email_status="valid")
        lines = [line.pk for line in self.product_lines.all()]
        if lines:
            through = Lead.product_interests.through
            leads = leads.filter(
                Exists(through.objects.filter(lead=OuterRef("pk"), productline_id__in=lines))
            )
        return leads.exclude(email__in=Suppression.objects.values("email"))

    def admits(self, lead: Lead, *, now: dt.datetime) -> bool:
        return self.entrants(now=now).filter(pk=lead.pk).exists()

    def on_track(self, lead: Lead) -> bool:
        """Whether the lead still matches the band and score range this track is for."""
        if self.bands and lead.band not in self.bands:
            return False
        if self.min_score is not None and lead.score < self.min_score:
            return False
        return self.max_score is None or lead.score <= self.max_score


class StepKind(models.TextChoices):
    EMAIL = "email", "Email"
    TASK = "task", "Task for the owner"


class WindowZone(models.TextChoices):
    LEAD = "lead", "The lead's time zone (from its country), else the account's"
    ACCOUNT = "account", "The account's time zone"


class StepQuerySet(models.QuerySet["Step"]):
    def with_stats(self) -> StepQuerySet:
        """Each step with its message counters and the leads that qualified after it."""
        messages = Message.objects.filter(step=OuterRef("pk"))
        counters = {
            f"n_{name}": _count(messages.filter(where), "step")
            for name, where in MESSAGE_COUNTERS.items()
        }
        sent = messages.filter(sent_at__isnull=False)
        for stage in (Stage.MQL, Stage.SQL):
            after = StageChange.objects.filter(
                lead=OuterRef("lead"), to_stage=stage, at__gte=OuterRef("sent_at")
            )
            counters[f"n_{stage}"] = _count(sent.filter(Exists(after)), "step")
        return self.annotate(**counters)


class Step(models.Model):
    """One step of a sequence: an email, or a task for the lead's owner.

    Subject and bodies are Django templates over a small context (``first_name``,
    ``last_name``, ``company_name``, ``owner_name``, ``owner_email``,
    ``unsubscribe_url``); the HTML body is autoescaped.
    """

    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(default=1, help_text="Steps run in this order.")
    kind = models.CharField(max_length=10, choices=StepKind.choices, default=StepKind.EMAIL)
    delay_days = models.PositiveIntegerField(
        default=0, help_text="Wait after the previous step (after enrolling, for the first)."
    )
    delay_hours = models.PositiveIntegerField(default=0)
    subject = models.CharField(
        max_length=200, help_text="Email subject, or the task's title. e.g. Hi {{ first_name }}"
    )
    body_text = models.TextField(
        "text body", blank=True, help_text="Plain text. Links are tracked."
    )
    body_html = models.TextField(
        "HTML body",
        blank=True,
        help_text="Optional HTML version; values are escaped. Links are tracked.",
    )
    window_weekdays = models.JSONField(
        "send on weekdays",
        default=list,
        blank=True,
        help_text="0 = Monday … 6 = Sunday; empty: any day.",
    )
    window_start_hour = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Send from this hour (0 to 23)…"
    )
    window_end_hour = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="…until this hour (1 to 24, exclusive)."
    )
    window_zone = models.CharField(
        "window time zone", max_length=10, choices=WindowZone.choices, default=WindowZone.LEAD
    )

    objects = StepQuerySet.as_manager()

    class Meta:
        ordering = ["sequence", "position"]
        constraints = [
            models.UniqueConstraint(fields=["sequence", "position"], name="step_unique_position"),
            models.CheckConstraint(
                condition=Q(window_start_hour__isnull=True) | Q(window_start_hour__lte=23),
                name="step_window_start_hour",
            ),
            models.CheckConstraint(
                condition=Q(window_end_hour__isnull=True)
                | Q(window_end_hour__gte=1, window_end_hour__lte=24),
                name="step_window_end_hour",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sequence} · step {self.position}: {self.subject}"

    @property
    def delay(self) -> dt.timedelta:
        return dt.timedelta(days=self.delay_days, hours=self.delay_hours)

    @property
    def has_window(self) -> bool:
        return bool(self.window_weekdays) or self.window_start_hour is not None

    def clean(self) -> None:
        from .personalize import template_errors

        errors: dict[str, list[str]] = {}
        for field in ("subject", "body_text", "body_html"):
            problems = template_errors(getattr(self, field))
            if problems:
                errors[field] = problems
        if self.kind == StepKind.EMAIL and not (self.body_text.strip() or self.body_html.strip()):
            errors["body_text"] = ["An email needs a text or an HTML body."]
        weekdays = self.window_weekdays
        if not isinstance(weekdays, list) or any(d not in range(7) for d in weekdays):
            errors["window_weekdays"] = ["Give weekday numbers from 0 (Monday) to 6 (Sunday)."]
        if (self.window_start_hour is None) != (self.window_end_hour is None):
            errors["window_end_hour"] = ["Give both hours of the window, or neither."]
        elif self.window_start_hour is not None and not (
            0 <= self.window_start_hour < self.window_end_hour <= 24
        ):
            errors["window_end_hour"] = ["The window must end after it starts, by 24 at most."]
        if errors:
            raise ValidationError(errors)


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    EXITED = "exited", "Exited"


class ExitReason(models.TextChoices):
    NONE = "", "—"
    STAGE = "stage", "Reached an exit stage"
    TRACK = "track", "Moved to another track"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Bounced"
    REPLIED = "replied", "Replied"
    EXPIRED = "expired", "Maximum duration reached"
    FAILED = "failed", "Sending failed"
    MANUAL = "manual", "Ended by hand"


class EnrollmentSource(models.TextChoices):
    AUTO = "auto", "Automatic"
    MANUAL = "manual", "Manual"


class EnrollmentQuerySet(models.QuerySet["Enrollment"]):
    def active(self) -> EnrollmentQuerySet:
        return self.filter(status=EnrollmentStatus.ACTIVE)

    def due(self, now: dt.datetime) -> EnrollmentQuerySet:
        """Active enrollments of active sequences whose next step is due (partial index)."""
        return self.active().filter(next_due_at__lte=now, sequence__status=SequenceStatus.ACTIVE)


class Enrollment(models.Model):
    """One lead walking one sequence; ``next_position`` is the step it waits for."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="enrollments")
    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="enrollments")
    status = models.CharField(
        max_length=10, choices=EnrollmentStatus.choices, default=EnrollmentStatus.ACTIVE
    )
    source = models.CharField(
        max_length=10, choices=EnrollmentSource.choices, default=EnrollmentSource.AUTO
    )
    next_position = models.PositiveSmallIntegerField(
        default=1, help_text="Position of the step it waits for."
    )
    next_due_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    exit_reason = models.CharField(
        max_length=20, choices=ExitReason.choices, default=ExitReason.NONE, blank=True
    )
    enrolled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = EnrollmentQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["lead", "sequence"],
                condition=Q(status="active"),
                name="enrollment_one_active_per_lead_sequence",
            ),
            models.CheckConstraint(
                condition=Q(status="active", ended_at__isnull=True)
                | (~Q(status="active") & Q(ended_at__isnull=False)),
                name="enrollment_ended_at_matches_status",
            ),
        ]
        indexes = [
            # What beat claims: the active enrollments whose next step is due.
            models.Index(
                fields=["next_due_at"], condition=Q(status="active"), name="enrollment_due_idx"
            ),
            models.Index(fields=["lead", "status"], name="enrollment_lead_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.lead} in {self.sequence}"

    @property
    def is_active(self) -> bool:
        return self.status == EnrollmentStatus.ACTIVE

    @property
    def deadline(self) -> dt.datetime | None:
        """When the sequence's maximum duration ends this enrollment, if it has one."""
        days = self.sequence.max_duration_days
        return None if days is None else self.started_at + dt.timedelta(days=days)

    def end(self, *, reason: str, now: dt.datetime) -> list[str]:
        """End the enrollment in memory (completed without a reason); the changed fields."""
        self.status = EnrollmentStatus.EXITED if reason else EnrollmentStatus.COMPLETED
        self.exit_reason = reason
        self.ended_at = now
        self.next_due_at = None
        return ["status", "exit_reason", "ended_at", "next_due_at"]

    def advance(self, *, next_step: Step | None, now: dt.datetime) -> list[str]:
        """Move past the current step to ``next_step`` (None: the sequence is done)."""
        if next_step is None:
            return self.end(reason=ExitReason.NONE, now=now)
        self.next_position = next_step.position
        due = now + next_step.delay
        deadline = self.deadline
        self.next_due_at = min(due, deadline) if deadline is not None else due
        return ["next_position", "next_due_at"]


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    BOUNCED = "bounced", "Bounced"
    CANCELLED = "cancelled", "Not sent (unsubscribed or ended)"


class Message(models.Model):
    """One email of one enrollment's step: created once, sent at most once."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="messages")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="messages")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="nurture_messages")
    status = models.CharField(
        max_length=10, choices=MessageStatus.choices, default=MessageStatus.QUEUED
    )
    to_email = models.EmailField(max_length=254, blank=True)
    from_email = models.CharField(max_length=320, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    links = models.JSONField(
        default=list, blank=True, help_text="The URLs in this message: the only click targets."
    )
    provider_message_id = models.CharField(max_length=250, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="Set while a worker sends it."
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    replied_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["enrollment", "step"], name="message_one_per_enrollment_step"
            )
        ]
        indexes = [
            # The frequency cap: a lead's latest messages.
            models.Index(fields=["lead", "-created_at"], name="message_lead_created_idx"),
            models.Index(
                fields=["provider_message_id"],
                condition=~Q(provider_message_id=""),
                name="message_provider_id_idx",
            ),
            models.Index(
                fields=["created_at"], condition=Q(status="queued"), name="message_queued_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.subject or f"Message {self.pk}"


class SuppressionReason(models.TextChoices):
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Complained (marked as spam)"
    MANUAL = "manual", "Added by hand"


class Suppression(models.Model):
    """An address nurturing never emails again, whichever lead carries it."""

    email = models.EmailField(max_length=254, unique=True)
    reason = models.CharField(max_length=20, choices=SuppressionReason.choices)
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} ({self.get_reason_display()})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = normalize_email(self.email)
        super().save(*args, **kwargs)

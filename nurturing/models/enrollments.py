"""Enrollments: one lead walking one sequence, from the step it waits for to its end."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from leads.models import Lead

from .sequences import Sequence, SequenceStatus
from .steps import Step


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
    MERGED = "merged", "Lead merged into one walking this sequence"


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

"""What waits to be rescored: bulk rescore jobs with their progress, and leads whose
changed fields are still to be scored."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from leads.models import Lead

from .rule import Rule
from .scoring_model import ScoringModel


class RescoreStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class RescoreJob(models.Model):
    """Progress of a bulk rescore, shown in the admin."""

    model = models.ForeignKey(ScoringModel, on_delete=models.CASCADE, related_name="rescores")
    reason = models.CharField(max_length=200)
    status = models.CharField(
        max_length=10, choices=RescoreStatus.choices, default=RescoreStatus.QUEUED
    )
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    # On PostgreSQL a job is split into lead-id ranges, each a task on the bulk queue, so
    # as many bulk workers as run share it; the range that finishes last ends the job.
    ranges = models.PositiveIntegerField(default=0)
    # The first lead id of each range finished: a task delivered twice counts once.
    finished_ranges = models.JSONField(default=list, blank=True)
    changed_entries = models.PositiveIntegerField(default=0)
    # Set by a range that touched more companies than it sums itself
    # (``SCORING_ACCOUNTS_INLINE``): the job's end then sums every company once.
    accounts_pending = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    rule = models.ForeignKey(
        Rule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Rescore only what this rule touches; empty: the whole model.",
    )
    # Set when only the rule's points changed, to what they were: the job then revalues
    # the rule's awards (``scoring.revaluations``) instead of deriving them again.
    points_before = models.IntegerField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set when the change lowered a threshold: the job then also moves the leads already
    # past the new one (``scoring.thresholds``).
    mql_threshold_before = models.IntegerField(null=True, blank=True)
    sql_threshold_before = models.IntegerField(null=True, blank=True)
    # Set with them when the change moved which score the model decides on
    # (``ScoringModel.decide_on``, ``predictive_share``): a lead past a threshold on the
    # new basis and below it on the old one moves too.
    decide_on_before = models.CharField(max_length=10, blank=True)
    predictive_share_before = models.PositiveSmallIntegerField(null=True, blank=True)
    moved_to_mql = models.PositiveIntegerField(default=0)
    moved_to_sql = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Rescore of {self.model} ({self.status})"

    @property
    def percent(self) -> int:
        """How far along: 0 until the job knows its leads, 100 once it is done."""
        if self.status == RescoreStatus.DONE:
            return 100
        return 0 if not self.total else min(100, round(100 * self.done / self.total))


class ProfileRescore(models.Model):
    """A lead whose explicit fields changed after its last scoring: the outbox of a profile
    change, as an unscored activity is the outbox of an event.

    Written in the transaction that changes the lead, removed by the scoring that reads
    the changed fields (with the lead locked), so a change whose rescore message was lost
    (the broker down) is rescored by beat's sweeper.
    """

    lead = models.OneToOneField(Lead, primary_key=True, on_delete=models.CASCADE, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Rescore of lead {self.lead_id} requested at {self.requested_at:%Y-%m-%d %H:%M}"

"""A rep setting a lead aside in their work queue ("Next up"): snoozed for a while,
skipped with a reason, or worked (an outcome logged) for today; the queue leaves it out
until ``until``."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from .lead import Lead


class DeferralReason(models.TextChoices):
    SNOOZED = "snoozed", "Snoozed"
    WORKED = "worked", "Worked"
    WRONG_PERSON = "wrong_person", "Wrong person"
    ALREADY_TALKING = "already_talking", "Already talking"
    NOT_NOW = "not_now", "Not now"
    OTHER = "other", "Other"


class QueueDeferral(models.Model):
    """One person's lead set aside in their queue until ``until``; one row per person
    and lead, replaced by the next snooze or skip."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="+")
    until = models.DateTimeField()
    reason = models.CharField(max_length=20, choices=DeferralReason.choices)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "queue deferral"
        constraints = [
            # Also the index the queue reads a person's deferrals by.
            models.UniqueConstraint(fields=["user", "lead"], name="queue_deferral_one_per_lead"),
        ]

    def __str__(self) -> str:
        return f"{self.lead_id} {self.get_reason_display()} until {self.until:%Y-%m-%d %H:%M}"

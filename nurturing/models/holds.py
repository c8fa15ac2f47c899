"""Leads the hourly sweep leaves out of automatic sequences."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from leads.models import Lead


class AutoEnrollHold(models.Model):
    """A lead the hourly sweep (``sequences_enroll_matching``) does not enroll.

    An import of historical records holds the leads it creates, unless it was asked to
    let nurture have them: their state comes from the past, and matching an automatic
    sequence's criteria on it is no reason to email them now. Anything that happens to
    the lead from now on (a band change from a new activity, a person enrolling it)
    still enrolls it as usual; deleting the hold hands the lead to the sweep.
    """

    lead = models.OneToOneField(
        Lead, on_delete=models.CASCADE, primary_key=True, related_name="auto_enroll_hold"
    )
    reason = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "hold on automatic nurture"

    def __str__(self) -> str:
        return f"Lead {self.lead_id}: {self.reason}"

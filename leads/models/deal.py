"""A lead's deals and what they came to, written through ``leads.deals``."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models
from django.db.models import Q
from django.utils import timezone


class DealOutcome(models.IntegerChoices):
    """What a lead's deals came to, the best of them: one won deal makes a won lead."""

    NONE = 0, "No closed deal"
    LOST = 1, "Lost"
    WON = 2, "Won"

    @classmethod
    def of(cls, statuses: Iterable[str]) -> DealOutcome:
        found = set(statuses)
        if DealStatus.WON in found:
            return cls.WON
        if DealStatus.LOST in found:
            return cls.LOST
        return cls.NONE


class DealStatus(models.TextChoices):
    OPEN = "open", "Open"
    WON = "won", "Won"
    LOST = "lost", "Lost"


class Deal(models.Model):
    """A lead's deal, written and deleted through ``leads.deals``, which keeps its lead's
    ``deal_outcome``."""

    lead = models.ForeignKey("Lead", on_delete=models.CASCADE, related_name="deals")
    name = models.CharField(max_length=200)
    amount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, default="EUR")
    status = models.CharField(max_length=10, choices=DealStatus.choices, default=DealStatus.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    lost_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="open", closed_at__isnull=True)
                | (~Q(status="open") & Q(closed_at__isnull=False)),
                name="deal_closed_at_matches_status",
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="deal_amount_not_negative"),
        ]
        indexes = [models.Index(fields=["status", "closed_at"], name="deal_status_closed_idx")]

    def __str__(self) -> str:
        return self.name

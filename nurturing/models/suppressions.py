"""Suppressions: addresses nurturing never emails again, whichever lead carries them."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from leads.models import normalize_email


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

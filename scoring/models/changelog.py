"""The change log of scoring models and rules."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class ChangeLog(models.Model):
    """Who changed which scoring model or rule, when, and what it looked like before and after."""

    object_type = models.CharField(max_length=20)
    object_id = models.PositiveBigIntegerField()
    object_repr = models.CharField(max_length=200)
    action = models.CharField(max_length=10)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    # A publication's preview figures against the version it replaced (ROC AUC, lift,
    # leads moved: ``scoring.version_preview.VersionPreview.figures``), as they were shown.
    figures = models.JSONField(null=True, blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="changelog_object_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.object_repr}"

    def differences(self) -> list[tuple[str, Any, Any]]:
        """What a change altered, as (field, before, after); none for a creation or deletion."""
        if not self.before or not self.after:
            return []
        fields = sorted(set(self.before) | set(self.after))
        return [
            (name, self.before.get(name), self.after.get(name))
            for name in fields
            if self.before.get(name) != self.after.get(name)
        ]

"""The workspace's own data: the leads list's saved views."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class SavedView(models.Model):
    """A named leads list: its filters and sort (the query string) and chosen columns.

    Only the question is stored, never the leads: whoever opens a view sees what the
    filters find among the leads they may see (``Lead.objects.visible_to``), so a view
    shared by a manager shows each rep their own part of it. Who sees, shares, renames
    and deletes views is in ``workspace.saved_views``.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views"
    )
    name = models.CharField(max_length=80)
    shared = models.BooleanField(
        default=False, help_text="Shown to the owner's team (everyone, for an admin's view)."
    )
    # The list's query string without page cursor or columns, e.g. "band=hot&sort=name".
    query = models.CharField(max_length=2000, blank=True)
    # The chosen columns' keys (``workspace.columns``); None for the default columns.
    columns = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "name"], name="savedview_unique_name_per_owner"
            )
        ]
        indexes = [
            models.Index(
                fields=["name"], condition=models.Q(shared=True), name="savedview_shared_idx"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("saved-view-open", args=[self.pk])

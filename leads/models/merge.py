"""Merged leads: the record of each merge, which undoes it, and the ids of merged leads.

A merge keeps the surviving lead's id, so systems outside that know it stay in sync;
the merged leads' rows are deleted once everything on them has moved, and their ids
live on as aliases (``LeadAlias``) that the API answers with the survivor. The
``LeadMerge`` row holds what an undo needs: each merged lead's row as it was, which
rows moved from which lead, and the survivor's fields before and after
(``leads.merging``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from .lead import Lead


class ExactJSONEncoder(DjangoJSONEncoder):
    """Django's encoder, with times to the microsecond (Django's stops at the
    millisecond), so that a row restored from its record is the row that was."""

    def default(self, o: Any) -> Any:
        if isinstance(o, dt.datetime | dt.time):
            return o.isoformat()
        return super().default(o)


class MergeRecord(models.Model):
    """Who merged, when, and who undid it: what every merge record has (``LeadMerge``,
    ``CompanyMerge``); the newest first."""

    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    at = models.DateTimeField(default=timezone.now)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )

    class Meta:
        abstract = True
        ordering = ["-at", "-id"]

    @property
    def is_undone(self) -> bool:
        return self.undone_at is not None


class LeadMerge(MergeRecord):
    """One merge of leads into a survivor, with everything needed to undo it."""

    # Kept when the survivor is deleted or merged away itself: the record stays.
    survivor = models.ForeignKey(
        Lead, null=True, on_delete=models.SET_NULL, related_name="merges", db_index=False
    )
    survivor_ref = models.BigIntegerField(
        "survivor id", help_text="The survivor's id, kept when its row is gone."
    )
    merged_ids = models.JSONField(default=list, help_text="The ids of the leads merged in.")
    fields = models.JSONField(
        default=dict,
        encoder=ExactJSONEncoder,
        help_text="Per field the survivor took: from which lead, its value before and after.",
    )
    snapshots = models.JSONField(
        default=dict,
        encoder=ExactJSONEncoder,
        help_text="Each merged lead's row and product interests as they were.",
    )
    moved = models.JSONField(
        default=dict,
        encoder=ExactJSONEncoder,
        help_text="Per kind of row, per merged lead, the ids that moved to the survivor "
        "(and what else each app changed to make room).",
    )

    class Meta(MergeRecord.Meta):
        verbose_name = "lead merge"
        indexes = [models.Index(fields=["survivor_ref", "-at"], name="leadmerge_survivor_idx")]

    def __str__(self) -> str:
        merged = ", ".join(str(pk) for pk in self.merged_ids)
        return f"{merged} into {self.survivor_ref}"


class LeadAlias(models.Model):
    """The id of a merged lead, answered by the lead it was merged into."""

    alias_id = models.BigIntegerField(primary_key=True, help_text="The merged lead's id.")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="aliases")
    merge = models.ForeignKey(LeadMerge, on_delete=models.CASCADE, related_name="aliases")

    class Meta:
        verbose_name = "lead alias"
        verbose_name_plural = "lead aliases"
        ordering = ["alias_id"]

    def __str__(self) -> str:
        return f"{self.alias_id} → {self.lead_id}"

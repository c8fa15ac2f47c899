"""Each lead's score as the nightly snapshot found it, kept only where it changed: what
the score trend (``scoring.trend``) compares today's score with."""

from __future__ import annotations

from django.db import models

from leads.models import Lead


class ScoreSnapshot(models.Model):
    """The lead's score (``Lead.score``, its primary model's) from the nightly snapshot of
    ``day`` on, until the lead's next snapshot.

    A lead gets a row on the first night it exists and then only on nights its score
    differs from its latest row's, so the score on any past night is its latest row on or
    before that day. Rows no trend reads any more are pruned (``scores_snapshot``).
    """

    # Written for every lead whose score moved overnight, up to a million rows a night:
    # no database constraint on the lead (a lookup and a lock per row written); Django
    # still deletes the rows with their lead.
    lead = models.ForeignKey(
        Lead,
        on_delete=models.CASCADE,
        related_name="score_snapshots",
        db_index=False,
        db_constraint=False,
    )
    day = models.DateField(help_text="The day (UTC) of the nightly snapshot.")
    score = models.IntegerField()

    class Meta:
        constraints = [
            # Also the lookup of a lead's latest row on or before a day.
            models.UniqueConstraint(fields=["lead", "day"], name="one_snapshot_per_lead_and_day")
        ]

    def __str__(self) -> str:
        return f"{self.lead_id} on {self.day}: {self.score}"

"""Each lead's place in the lists: its primary score, band, grade and quadrant, with the
owner and stage the lists filter by, in a narrow row of its own.

The scoring engine rewrites a lead's score hundreds of thousands of times in a rescore.
On the wide lead row, a score held by any index makes every such write a new entry in
every one of the lead table's indexes (PostgreSQL's heap-only updates need no indexed
column to change). Here the score sits in a row of a few dozen bytes with only the
indexes the lists sort by; the lead row keeps its copy for display, in no index, so its
rewrites stay heap-only.

The database keeps the row: triggers on ``leads_lead`` (migration ``0017_lead_rank``)
insert it with the lead and copy the owner, stage and score columns whenever a write
changes them, whoever writes: the ORM, the scoring engine's set-based SQL, the decay.
Triggers on ``leads_activity`` (migration ``0031_rank_inbound``) keep when the lead last
wrote in, whatever adds, moves or deletes its activities. Nothing in Python writes it.
``Lead.objects.ranked()`` joins it for the lists.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from .lead import Lead
from .lead_choices import Band, Grade, Quadrant
from .stage import Stage

# The columns of the lead the triggers copy, in the order of ``RANK_COLUMNS`` below.
LEAD_COLUMNS = ("owner_id", "stage", "score", "band", "grade", "quadrant")


class LeadRank(models.Model):
    """A lead's score and what its lists filter by, kept by the database (module docstring)."""

    lead = models.OneToOneField(
        Lead, on_delete=models.CASCADE, primary_key=True, related_name="rank"
    )
    # A copy of the lead's owner: the lead's own SET_NULL clears it (through the trigger).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    stage = models.CharField(max_length=20, choices=Stage.choices, default=Stage.NEW)
    score = models.IntegerField(default=0)
    band = models.CharField(max_length=10, choices=Band.choices, default=Band.COLD)
    grade = models.CharField(max_length=1, choices=Grade.choices, default=Grade.D)
    quadrant = models.CharField(max_length=12, choices=Quadrant.choices, default=Quadrant.COLD)
    # When the lead last wrote in (``INBOUND_TYPES``: a demo or quote request, a trial
    # sign-up, a form, an email reply it sent), kept by triggers on ``leads_activity``
    # (migration ``0031_rank_inbound``): what Next up asks of a person's leads.
    inbound_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # Each index is an entry more in every score write: only the sorts the lists use,
        # each ending in the lead id their keyset pages and tie-breaks use.
        indexes = [
            # Everyone's hottest (admins, marketers, My day).
            models.Index(fields=["-score", "-lead"], name="rank_hottest_idx"),
            # A rep's own leads and "mine" in any list, hottest first; the unassigned pool
            # too (a B-tree finds ``owner IS NULL`` as it finds an owner). On PostgreSQL it
            # also holds the stage and band (INCLUDE, migration 0030), so the counts of a
            # person's open and hot leads read it alone.
            models.Index(fields=["owner", "-score", "-lead"], name="rank_owner_counts_idx"),
            # The pipeline's columns and the stage filter. On PostgreSQL it also holds the
            # band and owner (INCLUDE, migration 0032), so counting a stage and band among
            # the leads a person sees (the list's capped count) reads it alone, hottest
            # first, where a scan of the rank ran until enough matches turned up.
            models.Index(fields=["stage", "-score", "-lead"], name="rank_stage_filters_idx"),
            # The band filter: cold leads sit below most others in score order.
            models.Index(fields=["band", "-score", "-lead"], name="rank_band_hottest_idx"),
            # Grades and quadrants other than the commonest can be rare (a few hundred
            # grade B leads in a million, scattered over the scores): their matches
            # hottest first. Partial, so a write of a grade D or cold-quadrant lead, most
            # of them, adds no entry here.
            models.Index(
                fields=["grade", "-score", "-lead"],
                condition=~Q(grade=Grade.D),
                name="rank_grade_hottest_idx",
            ),
            models.Index(
                fields=["quadrant", "-score", "-lead"],
                condition=~Q(quadrant=Quadrant.COLD),
                name="rank_quadrant_hottest_idx",
            ),
            # A person's leads that wrote in lately, newest first (Next up), with their
            # stage: a few entries read, where matching the window's inbound activity of
            # everyone against all of a rep's leads read tens of thousands. Partial: a
            # lead that never wrote in adds no entry.
            models.Index(
                fields=["owner", "-inbound_at"],
                include=["stage"],
                condition=Q(inbound_at__isnull=False),
                name="rank_owner_inbound_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lead_id}: {self.score}"

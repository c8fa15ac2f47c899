"""The score ledger (every change of points, never edited) and each lead's score per
model, brought up to date from it."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from leads.models import Lead

from .rule import Rule
from .scoring_model import ScoringModel


class EntryKind(models.TextChoices):
    FIT = "fit", "Fit"
    ENGAGEMENT = "engagement", "Engagement"
    MANUAL = "manual", "Manual adjustment"


class ScoreEntry(models.Model):
    """One change of points: the explanation and the audit of every score.

    Entries are never edited or deleted. An award that no longer holds (a rule
    changed, a field changed) is cancelled by a reversal entry pointing at it,
    worth what the award is worth at that moment, so the score at any time is
    ``sum(points * decay(time - at))`` over the entries written by then.
    """

    # The ledger is the largest table, written a million rows at a time by a rescore, so
    # it pays for nothing its queries do not use. Indexes: the lead and rule columns are
    # covered by the ones in Meta, and the rarely set columns are indexed where set.
    # Database constraints: checking a foreign key costs a lookup and a row lock on the
    # referenced row for every entry written (at commit, about a third of a first
    # rescore's time), and even a NULL one queues a check for commit, so no column has
    # one; Django still applies CASCADE and SET_NULL when a lead, model, rule,
    # activity, user or entry is deleted.
    lead = models.ForeignKey(
        Lead,
        on_delete=models.CASCADE,
        related_name="score_entries",
        db_index=False,
        db_constraint=False,
    )
    model = models.ForeignKey(
        ScoringModel, on_delete=models.CASCADE, related_name="entries", db_constraint=False
    )
    rule = models.ForeignKey(
        Rule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="entries",
        db_index=False,
        db_constraint=False,
    )
    activity = models.ForeignKey(
        "leads.Activity",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    kind = models.CharField(max_length=12, choices=EntryKind.choices)
    bonus = models.BooleanField(default=False)
    points = models.FloatField()
    reason = models.CharField(max_length=300)
    at = models.DateTimeField(help_text="When the points count from.")
    created_at = models.DateTimeField(default=timezone.now)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    # At most one reversal an entry (the constraint below). Only reversals set it, so the
    # constraint is partial: an award, nearly every entry, adds nothing to its index.
    reversal_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="reversals",
        db_index=False,
        db_constraint=False,
    )
    # Set on a revaluation: the entry a points-only change of a rule writes for a lead
    # instead of a reversal and an award per match (``scoring.revaluations``). From then
    # on each of the lead's older awards of the rule counts these points a match, and the
    # entry itself is worth the difference: the points are its value, at ``at``.
    revalued_to = models.FloatField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name_plural = "score entries"
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["reversal_of"],
                condition=Q(reversal_of__isnull=False),
                name="entry_reversed_once",
            ),
        ]
        indexes = [
            # A lead's entries in time order. On PostgreSQL it also holds each entry's
            # id, rule, kind, points, written time and reversed entry (INCLUDE, migration
            # 0030; SQLite has no such columns), so the lead page's explanation and score
            # history and the reports' points-until-then sums read it alone.
            models.Index(fields=["lead", "model", "at"], name="entry_lead_ledger_idx"),
            models.Index(fields=["rule", "lead"], name="entry_rule_lead_idx"),
            models.Index(
                fields=["activity"], condition=Q(activity__isnull=False), name="entry_activity_idx"
            ),
            models.Index(fields=["by"], condition=Q(by__isnull=False), name="entry_by_idx"),
            # The reversals of a range of leads, to tell which entries are still active.
            models.Index(
                fields=["lead", "reversal_of"],
                condition=Q(reversal_of__isnull=False),
                name="entry_reversals_idx",
            ),
            # The revaluations of a lead, or of a rule's leads: few, and read beside the
            # awards they revalue.
            models.Index(
                fields=["lead", "rule"],
                condition=Q(revalued_to__isnull=False),
                name="entry_revaluations_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.points:+g} {self.reason}"


class LeadScore(models.Model):
    """A lead's score in one model, brought up to date at ``engagement_at``.

    ``engagement`` is the decayed engagement at ``engagement_at``; its value at a
    later time follows from the decay formula, so nothing needs rewriting as time
    passes. The primary model's values are copied onto the lead for fast lists.
    """

    # A rescore rewrites hundreds of thousands of these rows. No index holds the score or
    # anything else a rescore writes, so that the rewrite stays on the row's page (a
    # heap-only update, with the free space the table keeps: migration 0015) and adds no
    # index entry. Lookups by lead use the unique (lead, model) index and lookups by
    # model the (model, lead) one; nothing sorts these rows by score (the lists sort by
    # the lead's rank). The one exception is the predictive score, which no rescore
    # writes: the lists' predictive sort walks its index (``leadscore_predictive_idx``).
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="scores", db_index=False)
    model = models.ForeignKey(
        ScoringModel, on_delete=models.CASCADE, related_name="lead_scores", db_index=False
    )
    fit = models.FloatField(default=0)
    adjustment = models.FloatField(default=0)
    engagement = models.FloatField(default=0)
    engagement_at = models.DateTimeField(default=timezone.now)
    last_engaged_at = models.DateTimeField(null=True, blank=True)
    score = models.IntegerField(default=0)
    band = models.CharField(max_length=10, default="cold")
    grade = models.CharField(max_length=1, default="D")
    quadrant = models.CharField(max_length=12, default="cold")
    surged_at = models.DateTimeField(null=True, blank=True)
    is_primary = models.BooleanField(
        default=False, help_text="This model gives the score shown on the lead."
    )
    decay_version = models.PositiveIntegerField(
        default=1, help_text="The model's decay settings this engagement was summed with."
    )
    # When the lead was first scored in the model: the score history draws the entries
    # of that scoring from their own times, and every later one from when it was written
    # (``scoring.score_formula.history_entries``). Empty on rows older than the column.
    created_at = models.DateTimeField(null=True, blank=True, editable=False)
    predictive_score = models.SmallIntegerField(
        null=True,
        blank=True,
        help_text="The live predictive model's chance that the lead converts, 0 to 100; "
        "empty while no predictive model is live.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["lead", "model"], name="one_score_per_lead_and_model")
        ]
        indexes = [
            models.Index(fields=["model", "lead"], name="leadscore_model_lead_idx"),
            models.Index(
                fields=["lead"], condition=Q(is_primary=True), name="leadscore_primary_idx"
            ),
            # The lists sorted by the predictive score (``predictive_score_joined``): the
            # primary rows that have one, highest first (backwards: lowest first). Only
            # the predictive scoring writes its key; a rule rescore, which leaves the
            # predictive score and the primary model as they are, stays heap-only.
            models.Index(
                fields=["-predictive_score", "-lead"],
                condition=Q(is_primary=True, predictive_score__isnull=False),
                name="leadscore_predictive_idx",
            ),
            # My day's surging leads: the few scores that surged lately, newest first.
            models.Index(
                fields=["-surged_at"],
                condition=Q(surged_at__isnull=False),
                name="leadscore_surged_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lead_id} in {self.model_id}: {self.score}"


def _ledger_key(to: type[models.Model] | str) -> models.ForeignKey:
    """A reference the ledger's triggers keep: no constraint, index or cascade, since the
    rows follow the entries (deleting a lead's entries deletes its matches)."""
    return models.ForeignKey(
        to, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )


class RuleMatch(models.Model):
    """A rule of a model holding active awards for a lead: the leads each rule matches now.

    Kept by the database from the ledger (migration ``0028_rule_match``): every statement
    that writes entries adds one to ``awards`` for each award of the rule and takes one
    off for each reversal, one that deletes or moves entries counts their keys again,
    and a row whose count falls to nothing goes. So it is current in every transaction,
    whichever scoring path wrote the entries, and Rule effectiveness reads it instead of
    reducing tens of millions of entries. ``scoring_verify`` checks it against the
    ledger.
    """

    # Lead before rule: Rule effectiveness looks up the matches of the closed leads.
    pk = models.CompositePrimaryKey("model_id", "lead_id", "rule_id")
    model = _ledger_key(ScoringModel)
    lead = _ledger_key(Lead)
    rule = _ledger_key(Rule)
    awards = models.IntegerField(help_text="The rule's awards to the lead not reversed.")

    class Meta:
        verbose_name = "rule match"

    def __str__(self) -> str:
        return f"rule {self.rule_id} matches lead {self.lead_id} in model {self.model_id}"

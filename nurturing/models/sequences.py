"""Sequences: the nurture tracks, who enters them and who leaves.

A ``Sequence`` says who enters (band, stage, score range, the company's account score,
product interest, source, silence for re-engagement) and who leaves (a stage reached,
another band's track, a reply, the maximum duration; unsubscribes and bounces always end
it). Its statistics are ``nurturing.statistics``.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from leads.models import Band, Lead, ProductLine, Source, Stage
from scoring.models import AccountScore, LeadScore

from .suppressions import Suppression

# Stages that end a nurture track by default: the lead is with sales, or out.
DEFAULT_EXIT_STAGES = [Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER, Stage.DISQUALIFIED]
DEFAULT_ENTRY_STAGES = [Stage.NEW, Stage.MQL, Stage.RECYCLED]


def default_entry_stages() -> list[str]:
    return [str(stage) for stage in DEFAULT_ENTRY_STAGES]


def default_exit_stages() -> list[str]:
    return [str(stage) for stage in DEFAULT_EXIT_STAGES]


class SequenceStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"


def account_at_least(score: int) -> models.QuerySet[AccountScore]:
    """The account score of the outer lead's company in the model of the lead's primary
    score, where it is at least ``score`` (for ``Exists``)."""
    primary = LeadScore.objects.filter(lead_id=OuterRef(OuterRef("pk")), is_primary=True)
    return AccountScore.objects.filter(
        company_id=OuterRef("company_id"),
        model_id__in=primary.values("model_id"),
        score__gte=score,
    )


class SequenceQuerySet(models.QuerySet["Sequence"]):
    def active(self) -> SequenceQuerySet:
        return self.filter(status=SequenceStatus.ACTIVE)

    def by_priority(self) -> SequenceQuerySet:
        return self.order_by("-priority", "pk")


class Sequence(models.Model):
    """A nurture track: who enters, who leaves, and the steps in between."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    scoring_model = models.ForeignKey(
        "scoring.ScoringModel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sequences",
        help_text="Only leads whose primary score comes from this model; empty: any.",
    )
    status = models.CharField(
        max_length=10, choices=SequenceStatus.choices, default=SequenceStatus.ACTIVE
    )
    priority = models.PositiveSmallIntegerField(
        default=100, help_text="Where several sequences match a lead, the highest priority wins."
    )
    auto_enroll = models.BooleanField(
        "enroll automatically",
        default=True,
        help_text="Enroll matching leads when their band or stage changes, and hourly. "
        "Off: only manual enrollment from the admin.",
    )

    # Entry criteria; an empty criterion matches every lead.
    bands = models.JSONField(default=list, blank=True, help_text="Bands that enter.")
    stages = models.JSONField(
        default=default_entry_stages, blank=True, help_text="Stages that enter."
    )
    min_score = models.IntegerField(null=True, blank=True)
    max_score = models.IntegerField(null=True, blank=True)
    min_account_score = models.IntegerField(
        null=True,
        blank=True,
        help_text="Only leads whose company's account score, in the model of the lead's "
        "primary score, is at least this; empty: any company or none.",
    )
    product_lines = models.ManyToManyField(
        ProductLine,
        blank=True,
        related_name="sequences",
        help_text="Leads interested in any of these; empty: any interest.",
    )
    sources = models.JSONField(default=list, blank=True, help_text="Lead sources that enter.")
    silent_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Only leads without any activity for this many days (re-engagement, e.g. "
        "past customers gone quiet).",
    )

    # Exit criteria; unsubscribes and bounces always end every sequence.
    exit_stages = models.JSONField(
        default=default_exit_stages, blank=True, help_text="Reaching one of these ends it."
    )
    exit_on_track_change = models.BooleanField(
        "leave on track change",
        default=True,
        help_text="Leave when the lead no longer matches the entry band or score range "
        "(it moved to another band's track).",
    )
    exit_on_reply = models.BooleanField(default=True, help_text="Leave when the lead replies.")
    max_duration_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The lead-cycle cap: leave this many days after entering (e.g. 14 for "
        "B2C, 120 for B2B); empty: when the steps run out.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = SequenceQuerySet.as_manager()

    class Meta:
        ordering = ["-priority", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_score__isnull=True)
                | Q(max_score__isnull=True)
                | Q(max_score__gte=F("min_score")),
                name="sequence_score_range_ordered",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if (
            self.min_score is not None
            and self.max_score is not None
            and self.max_score < self.min_score
        ):
            errors["max_score"] = "The highest score cannot be below the lowest."
        for name, allowed in (
            ("bands", Band.values),
            ("stages", Stage.values),
            ("exit_stages", Stage.values),
            ("sources", Source.values),
        ):
            value = getattr(self, name)
            if not isinstance(value, list) or any(v not in allowed for v in value):
                errors[name] = f"Choose among: {', '.join(allowed)}."
        if not errors and set(self.stages) & set(self.exit_stages):
            errors["exit_stages"] = "A stage cannot both enter and end the sequence."
        if errors:
            raise ValidationError(errors)

    @property
    def is_active(self) -> bool:
        return self.status == SequenceStatus.ACTIVE

    def lead_filter(self, *, now: dt.datetime) -> Q:
        """The entry criteria as a filter on leads (product lines aside: see ``entrants``)."""
        where = Q()
        if self.bands:
            where &= Q(band__in=self.bands)
        if self.stages:
            where &= Q(stage__in=self.stages)
        if self.min_score is not None:
            where &= Q(score__gte=self.min_score)
        if self.max_score is not None:
            where &= Q(score__lte=self.max_score)
        if self.sources:
            where &= Q(source__in=self.sources)
        if self.silent_days is not None:
            quiet_since = now - dt.timedelta(days=self.silent_days)
            where &= Q(last_activity_at__isnull=True) | Q(last_activity_at__lt=quiet_since)
        if self.scoring_model_id is not None:
            where &= Q(scores__model_id=self.scoring_model_id, scores__is_primary=True)
        if self.min_account_score is not None:
            where &= Q(Exists(account_at_least(self.min_account_score)))
        return where

    def entrants(self, *, now: dt.datetime) -> models.QuerySet[Lead]:
        """The leads that meet the entry criteria now and may be emailed."""
        leads = Lead.objects.filter(self.lead_filter(now=now), email_status="valid")
        lines = [line.pk for line in self.product_lines.all()]
        if lines:
            through = Lead.product_interests.through
            leads = leads.filter(
                Exists(through.objects.filter(lead=OuterRef("pk"), productline_id__in=lines))
            )
        return leads.exclude(email__in=Suppression.objects.values("email"))

    def admits(self, lead: Lead, *, now: dt.datetime) -> bool:
        return self.entrants(now=now).filter(pk=lead.pk).exists()

    def on_track(self, lead: Lead) -> bool:
        """Whether the lead still matches the band and score range this track is for."""
        if self.bands and lead.band not in self.bands:
            return False
        if self.min_score is not None and lead.score < self.min_score:
            return False
        return self.max_score is None or lead.score <= self.max_score

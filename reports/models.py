"""The reports' own data: what marketers spent on campaigns, who wants the weekly digest,
and the nightly rollup of rule matches.

Reports read the domain (leads, scores, deals, hand-offs, messages) and never write it;
these tables are the only rows the app owns.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class Campaign(models.Model):
    """The spend behind a campaign, matched by name to the leads' ``campaign`` field.

    Sources and campaigns turn it into cost per lead and cost per customer; a campaign
    without a row here simply shows no cost.
    """

    name = models.CharField(
        max_length=200, help_text="Exactly as on the leads, e.g. “Spring webinar”."
    )
    spend = models.DecimalField(max_digits=14, decimal_places=2, validators=[MinValueValidator(0)])
    currency = models.CharField(max_length=3, default="EUR")
    notes = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "campaign cost"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="campaign_unique_name_ci"),
            models.CheckConstraint(
                condition=models.Q(spend__gte=0), name="campaign_spend_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.name = self.name.strip()
        super().save(*args, **kwargs)


class DigestPreference(models.Model):
    """Whether a person receives the weekly digest; no row means they do."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="digest_preference"
    )
    weekly_digest = models.BooleanField(
        "send me the weekly digest", default=True, help_text="Monday morning, by email."
    )
    last_sent_for = models.DateField(
        null=True,
        blank=True,
        editable=False,
        help_text="The Monday of the last week whose digest went out; claimed before sending.",
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "digest preference"

    def __str__(self) -> str:
        return f"{self.user}: {'weekly digest' if self.weekly_digest else 'no digest'}"


def _loose_key(to: str, **options: Any) -> models.ForeignKey:
    """A reference a rollup keeps without a constraint, an index or a cascade: the
    rebuild replaces the rows, and deleting domain rows never has to write here."""
    return models.ForeignKey(
        to,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
        **options,
    )


class RuleMatchCount(models.Model):
    """How many leads of one owner, created on one day, matched one rule of one model.

    Rebuilt from ``scoring.models.RuleMatch``, counting only leads scored by the model.
    Rule effectiveness sums it over a range of days and the owners in view instead of
    joining millions of matches to the leads on every request.
    """

    model = _loose_key("scoring.ScoringModel")
    rule = _loose_key("scoring.Rule")
    day = models.DateField(help_text="The day the leads were created, in TIME_ZONE.")
    owner = _loose_key(settings.AUTH_USER_MODEL, null=True)
    leads = models.PositiveIntegerField()

    class Meta:
        verbose_name = "rule match count"
        indexes = [
            models.Index(fields=["model", "day"], name="rulematchcount_model_day_idx"),
        ]

    def __str__(self) -> str:
        return f"rule {self.rule_id}: {self.leads} leads created {self.day}"


class RollupName(models.TextChoices):
    RULE_MATCHES = "rule_matches", "Rule matches"


class Rollup(models.Model):
    """When a rollup was last rebuilt, how long it took and how many rows it holds.

    Written in the same transaction as the rollup's rows, so the time a page shows is
    the time of the rows it reads.
    """

    name = models.CharField(max_length=40, choices=RollupName.choices, unique=True)
    built_at = models.DateTimeField()
    seconds = models.FloatField(help_text="How long the rebuild took.")
    rows = models.BigIntegerField()

    class Meta:
        verbose_name = "rollup"

    def __str__(self) -> str:
        return f"{self.get_name_display()} as of {self.built_at:%Y-%m-%d %H:%M}"

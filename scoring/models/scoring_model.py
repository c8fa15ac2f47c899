"""Scoring models: how one segment's leads are scored, with thresholds, bands, grades and
decay (their rules are ``scoring.models.rule``)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from leads.models import ProductLine

from ..score_formula import BLEND, PREDICTIVE, RULES, Thresholds


class ModelStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    ARCHIVED = "archived", "Archived"


class ScoringModelQuerySet(models.QuerySet["ScoringModel"]):
    def active(self) -> ScoringModelQuerySet:
        return self.filter(status=ModelStatus.ACTIVE)


# The fields a marketer sets on a model, in the order the admin and the API show them
# (besides its segment, a many-to-many).
EDITABLE_FIELDS = (
    "name",
    "description",
    "status",
    "is_default",
    "priority",
    "base_score",
    "fit_cap",
    "engagement_cap",
    "mql_threshold",
    "sql_threshold",
    "hot_from",
    "warm_from",
    "grade_a_from",
    "grade_b_from",
    "grade_c_from",
    "engaged_from",
    "decay_half_life_days",
    "idle_week_penalty",
    "max_points",
    "surge_points",
    "surge_hours",
    "decide_on",
    "predictive_share",
)


# The fields of the score formula besides thresholds and bands: changing one bumps
# ``decay_version``.
FORMULA_FIELDS = (
    "decay_half_life_days",
    "idle_week_penalty",
    "base_score",
    "fit_cap",
    "engagement_cap",
)


class DecisionBasis(models.TextChoices):
    RULES = RULES, "the rule score"
    PREDICTIVE = PREDICTIVE, "the predictive score"
    BLEND = BLEND, "a blend of both"


class ScoringModel(models.Model):
    """How one segment's leads are scored: its rules, thresholds, bands, grades and decay."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=ModelStatus.choices, default=ModelStatus.DRAFT)
    is_default = models.BooleanField(
        default=False, help_text="The default model scores every lead, whatever its interests."
    )
    # A draft made from another model is a candidate version of it: it is previewed on
    # that model's leads, and publishing it puts it in that model's place (its segment
    # and default role), the other archived and kept to roll back to. A published
    # version keeps the link to the one it replaced.
    version_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="versions",
        help_text="The model this one is (or was made as) a new version of.",
    )
    segment_product_lines = models.ManyToManyField(
        ProductLine,
        blank=True,
        related_name="scoring_models",
        help_text="Scores leads interested in any of these product lines.",
    )
    priority = models.PositiveSmallIntegerField(
        default=100,
        help_text="Where models overlap, the highest priority gives the primary score.",
    )
    base_score = models.IntegerField(
        default=0,
        help_text="Points every lead of the model starts from, before its rules; may be negative.",
    )
    # Score limits, as HubSpot's: however many rules a lead meets, its fit and its
    # engagement count up to these, so the score reads on a known scale.
    fit_cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="Fit counts up to this many points; empty: no cap."
    )
    engagement_cap = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Engagement counts up to this many points; empty: no cap.",
    )
    # Thresholds may be negative, as scores may: with negative rules and a low base score
    # a lead's first score can already lie past a negative threshold.
    mql_threshold = models.IntegerField(default=50, verbose_name="MQL threshold")
    sql_threshold = models.IntegerField(default=90, verbose_name="SQL threshold")
    hot_from = models.IntegerField(default=80, help_text="Scores from here up are hot.")
    warm_from = models.IntegerField(default=30, help_text="Scores from here up are warm.")
    grade_a_from = models.IntegerField(default=60, help_text="Fit scores from here up are grade A.")
    grade_b_from = models.IntegerField(default=40)
    grade_c_from = models.IntegerField(default=20)
    engaged_from = models.IntegerField(
        default=30, help_text="Engagement from here up counts as engaged (for the quadrant)."
    )
    decay_half_life_days = models.FloatField(
        null=True, blank=True, help_text="Engagement halves every this many days; empty: no decay."
    )
    idle_week_penalty = models.PositiveIntegerField(
        default=0, help_text="Points taken off engagement per week without activity."
    )
    max_points = models.PositiveIntegerField(
        null=True, blank=True, help_text="The highest score a lead can reach in this model."
    )
    # Bands, the MQL and SQL thresholds (so stage moves and hand-offs) and nurture's
    # bands read the score this names (``score_formula.decision_score``); the lists and
    # the explanation keep showing the rule score, with the predictive one beside it.
    decide_on = models.CharField(
        max_length=10,
        choices=DecisionBasis.choices,
        default=DecisionBasis.RULES,
        verbose_name="bands and thresholds on",
        help_text="The predictive score and a blend apply once a predictive model is live; "
        "until then, and for a lead it has not scored, the rule score decides.",
    )
    predictive_share = models.PositiveSmallIntegerField(
        default=50,
        validators=[MaxValueValidator(100)],
        verbose_name="predictive share of the blend (%)",
        help_text="How much of the blend is the predictive score; the rest is the rule score.",
    )
    surge_points = models.PositiveIntegerField(default=30, help_text="A rise of this many points…")
    surge_hours = models.PositiveIntegerField(
        default=24, help_text="…within this many hours is a surge."
    )
    predictive_excluded_fields = models.JSONField(
        default=list,
        blank=True,
        help_text="Lead or custom fields the predictive model must not learn from (keys, "
        "such as budget or a custom field's key), besides the custom fields set after contact.",
    )
    decay_version = models.PositiveIntegerField(
        default=1,
        editable=False,
        help_text="Goes up when the decay settings or the score formula change: stored "
        "scores are resummed.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScoringModelQuerySet.as_manager()

    class Meta:
        ordering = ["-priority", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_model"
            ),
            models.CheckConstraint(
                condition=Q(sql_threshold__gte=models.F("mql_threshold")),
                name="sql_threshold_not_below_mql",
            ),
            models.CheckConstraint(
                condition=Q(hot_from__gt=models.F("warm_from")), name="hot_above_warm"
            ),
            models.CheckConstraint(
                condition=Q(predictive_share__lte=100), name="predictive_share_a_percentage"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A change to these resums every stored score in a rescore, as the fast path
        # and the set-based rescore only carry a score forward whose formula is unchanged.
        if self.pk is not None:
            stored = ScoringModel.objects.filter(pk=self.pk).values_list(*FORMULA_FIELDS).first()
            if stored is not None and stored != tuple(getattr(self, f) for f in FORMULA_FIELDS):
                self.decay_version += 1
                if kwargs.get("update_fields") is not None:
                    kwargs["update_fields"] = [*kwargs["update_fields"], "decay_version"]
        super().save(*args, **kwargs)

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.sql_threshold < self.mql_threshold:
            errors["sql_threshold"] = "The SQL threshold cannot be below the MQL threshold."
        if self.hot_from <= self.warm_from:
            errors["hot_from"] = "Hot must start above warm."
        if not (self.grade_a_from > self.grade_b_from > self.grade_c_from):
            errors["grade_a_from"] = "Grades must go down: A above B above C."
        if self.decay_half_life_days is not None and self.decay_half_life_days <= 0:
            errors["decay_half_life_days"] = "Give a positive number of days, or leave it empty."
        if self.decide_on != DecisionBasis.RULES and self.max_points != 100:
            errors["decide_on"] = (
                "The predictive score runs from 0 to 100: to decide on it or on a blend, put "
                "the rule score on the same scale first (its maximum at 100), so that one set "
                "of thresholds reads both."
            )
        if self.predictive_share > 100:
            errors["predictive_share"] = "Give a share from 0 to 100 per cent."
        errors = {**self._beyond_the_caps(), **errors}
        if errors:
            raise ValidationError(errors)

    def scale_to_100(self) -> None:
        """Put the score on a 0 to 100 scale (not saved): the maximum at 100, and the fit and
        engagement caps not set yet sharing what the base score leaves of it, so that the
        base score and both caps add up to 100. Negative rules can still take a score
        below 0. Raises ValidationError for a base score outside 0 to 100."""
        if not 0 <= self.base_score <= 100:
            raise ValidationError(
                {"base_score": "On a scale of 0 to 100 the base score lies within it."}
            )
        room = 100 - self.base_score
        if self.fit_cap is None and self.engagement_cap is None:
            self.fit_cap = room // 2
        if self.fit_cap is None:
            self.fit_cap = max(room - (self.engagement_cap or 0), 0)
        if self.engagement_cap is None:
            self.engagement_cap = max(room - self.fit_cap, 0)
        self.max_points = 100

    def highest_score(self) -> int | None:
        """The highest score a lead can reach in this model: None when it has no bound
        (no maximum, and fit or engagement uncapped)."""
        reachable = None
        if self.fit_cap is not None and self.engagement_cap is not None:
            reachable = self.base_score + self.fit_cap + self.engagement_cap
        if self.max_points is not None:
            reachable = self.max_points if reachable is None else min(reachable, self.max_points)
        return reachable

    def _beyond_the_caps(self) -> dict[str, str]:
        """A field error for each threshold or boundary no lead can reach under the caps."""
        errors: dict[str, str] = {}
        highest = self.highest_score()
        if highest is not None:
            for name, label in (
                ("warm_from", "warm band"),
                ("hot_from", "hot band"),
                ("mql_threshold", "MQL threshold"),
                ("sql_threshold", "SQL threshold"),
            ):
                value = getattr(self, name)
                if value is not None and value > highest:
                    errors[name] = (
                        f"No lead can score {value}: the highest score this model gives is "
                        f"{highest} (base score, fit and engagement caps, maximum). Lower "
                        f"the {label} or raise a cap."
                    )
        for name, cap, what in (
            ("grade_c_from", self.fit_cap, "fit"),
            ("grade_b_from", self.fit_cap, "fit"),
            ("grade_a_from", self.fit_cap, "fit"),
            ("engaged_from", self.engagement_cap, "engagement"),
        ):
            value = getattr(self, name)
            if cap is not None and value is not None and value > cap:
                errors[name] = f"The {what} cap is {cap}: no lead reaches {value}."
        return errors

    @property
    def is_candidate(self) -> bool:
        """A draft version of another model, not live yet."""
        return self.status == ModelStatus.DRAFT and self.version_of_id is not None

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(
            hot=self.hot_from,
            warm=self.warm_from,
            grade_a=self.grade_a_from,
            grade_b=self.grade_b_from,
            grade_c=self.grade_c_from,
            engaged=self.engaged_from,
            max_points=self.max_points,
            base=self.base_score,
            fit_cap=self.fit_cap,
            engagement_cap=self.engagement_cap,
            decide_on=self.decide_on,
            predictive_share=self.predictive_share,
        )

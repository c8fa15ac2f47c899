"""A scoring model's rules, the domain lists fit rules test emails against, and the
checks that keep a rule evaluable in Python and in PostgreSQL alike."""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone

from leads.models import ActivityType, CustomFieldDefinition

from ..conditions import validate_condition
from ..describe import describe_rule
from ..regex_dialects import compile_regex, postgres_regex
from ..rule_fields import ACTIVITY_OPERATORS, BOOL, NUMBER, OPERATORS, TEXT, RuleError, field_kind
from ..rules import ALL, ANY, ENGAGEMENT, FIT, WINDOW_SECONDS, Condition, RuleSpec
from .scoring_model import ScoringModel


class RuleKind(models.TextChoices):
    FIT = FIT, "Fit (who they are)"
    ENGAGEMENT = ENGAGEMENT, "Engagement (what they do)"


class ConditionJoin(models.TextChoices):
    ALL = ALL, "all of the tests"
    ANY = ANY, "any of the tests"


class WindowMeasure(models.TextChoices):
    COUNT = "count", "matches"
    SECONDS = WINDOW_SECONDS, "seconds, added up"


class ActivityTarget(models.TextChoices):
    ANY = "", "any"
    URL = "url", "URL"
    PROPERTY = "property", "a property"


CONDITION_KEYS = ("field", "operator", "value", "value_to")


class Rule(models.Model):
    """A rule adds (or, with negative points, takes off) points when its condition holds."""

    model = models.ForeignKey(ScoringModel, on_delete=models.CASCADE, related_name="rules")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=12, choices=RuleKind.choices, default=RuleKind.FIT)
    points = models.IntegerField(help_text="Negative points make a negative rule.")
    active = models.BooleanField(default=True)
    # Fit rules.
    field = models.CharField(
        max_length=100,
        blank=True,
        help_text="A lead field, company.<field> or custom.<key>; e.g. job_title, "
        "company.employee_count, email_domain.",
    )
    operator = models.CharField(
        max_length=20, blank=True, choices=[(k, v) for k, v in OPERATORS.items()]
    )
    value = models.CharField(
        max_length=500,
        blank=True,
        help_text="Lists are comma-separated; a domain list is named by its kind.",
    )
    value_to = models.CharField(max_length=50, blank=True, help_text="Upper end for “between”.")
    conditions = models.JSONField(
        default=list,
        blank=True,
        help_text="More tests on other fields, each {field, operator, value, value_to}.",
    )
    join = models.CharField(
        max_length=3,
        choices=ConditionJoin.choices,
        default=ConditionJoin.ALL,
        help_text="Whether all the tests must hold, or any one of them.",
    )
    per_unit = models.FloatField(
        null=True,
        blank=True,
        help_text="Give the points for each this much of the (number) field, "
        "e.g. 60 for a point a minute of seconds on site.",
    )
    points_cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many points from this rule."
    )
    # Engagement rules.
    activity_type = models.CharField(max_length=30, choices=ActivityType.choices, blank=True)
    target = models.CharField(max_length=10, choices=ActivityTarget.choices, blank=True)
    property_name = models.CharField(max_length=100, blank=True)
    match = models.CharField(
        max_length=10,
        choices=[(o, OPERATORS[o]) for o in ACTIVITY_OPERATORS],
        default="contains",
        blank=True,
    )
    pattern = models.CharField(max_length=500, blank=True)
    min_duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    max_per_lead = models.PositiveIntegerField(
        null=True, blank=True, help_text="Count at most this many times per lead."
    )
    max_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text="Count at most this many times per lead per day."
    )
    bonus_count = models.PositiveIntegerField(
        null=True, blank=True, help_text="Repeated behaviour: this many matches in one day…"
    )
    bonus_points = models.IntegerField(
        default=0, help_text="…earn these extra points (once a day)."
    )
    recency_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Only activities of the last this many days count."
    )
    window_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Count a match only once the matches of this many days up to it…",
    )
    window_min = models.PositiveIntegerField(
        null=True, blank=True, help_text="…number at least this many (or last this many seconds)."
    )
    window_measure = models.CharField(
        max_length=7, choices=WindowMeasure.choices, default=WindowMeasure.COUNT, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "-points", "id"]
        indexes = [models.Index(fields=["model", "kind"], name="rule_model_kind_idx")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            self.validate()
        except RuleError as exc:
            raise ValidationError({exc.field: str(exc)} if exc.field else str(exc)) from None

    def validate(self) -> None:
        """Raise RuleError (naming the field at fault) when the rule cannot be evaluated."""
        if self.points == 0 and not self.bonus_points:
            raise RuleError(
                "A rule needs points (negative points make a negative rule).", field="points"
            )
        if self.kind == RuleKind.FIT:
            if not self.field:
                raise RuleError("Choose the field this rule tests.", field="field")
            try:
                kind = field_kind(self.field, custom_field_kinds())
            except RuleError as exc:
                raise RuleError(str(exc), field="field") from None
            lists = list(DomainList.objects.values_list("kind", flat=True).distinct())
            validate_condition(kind, self.operator, self.value, self.value_to, domain_lists=lists)
            if self.operator == "regex":
                _check_regex_in_database(self.value, field="value")
            for condition in self.parsed_conditions():
                self._validate_extra(condition, lists)
            if self.per_unit is not None:
                if kind != NUMBER:
                    raise RuleError("Points per unit need a number field.", field="per_unit")
                if not math.isfinite(self.per_unit) or self.per_unit <= 0:
                    raise RuleError("The unit must be a number above zero.", field="per_unit")
            if self.points_cap is not None and self.points_cap < 1:
                raise RuleError("The cap must be at least 1 point.", field="points_cap")
            return
        if self.conditions or self.per_unit is not None or self.points_cap is not None:
            raise RuleError(
                "More conditions, points per unit and a cap are for fit rules.",
                field="conditions" if self.conditions else "per_unit",
            )
        if bool(self.window_days) != bool(self.window_min):
            raise RuleError(
                "Give both the window's days and how many matches (or seconds) it needs.",
                field="window_min" if self.window_days else "window_days",
            )
        if not self.activity_type:
            raise RuleError("Choose the activity type this rule scores.", field="activity_type")
        if self.target == ActivityTarget.PROPERTY and not self.property_name:
            raise RuleError("Name the property to test.", field="property_name")
        if self.target and not self.pattern:
            raise RuleError("Give the text to look for.", field="pattern")
        if self.target and self.match == "regex":
            try:
                compile_regex(self.pattern)
            except RuleError as exc:
                raise RuleError(str(exc), field="pattern") from None
            _check_regex_in_database(self.pattern, field="pattern")
        if self.bonus_points and not self.bonus_count:
            raise RuleError("Say how many matches in one day earn the bonus.", field="bonus_count")

    def parsed_conditions(self) -> list[dict[str, str]]:
        """The other conditions as dicts of text, or RuleError naming ``conditions``."""
        raw = self.conditions or []
        if not isinstance(raw, list):
            raise RuleError("Give the other conditions as a list.", field="conditions")
        parsed = []
        for number, item in enumerate(raw, start=1):
            if not isinstance(item, dict) or not item.get("field") or not item.get("operator"):
                raise RuleError(
                    f"Condition {number} needs a field and an operator.", field="conditions"
                )
            unknown = set(item) - {"field", "operator", "value", "value_to"}
            if unknown:
                raise RuleError(
                    f"Condition {number} has unknown keys: {', '.join(sorted(unknown))}.",
                    field="conditions",
                )
            parsed.append({key: str(item.get(key) or "").strip() for key in CONDITION_KEYS})
        return parsed

    def _validate_extra(self, condition: dict[str, str], lists: list[str]) -> None:
        try:
            kind = field_kind(condition["field"], custom_field_kinds())
            validate_condition(
                kind,
                condition["operator"],
                condition["value"],
                condition["value_to"],
                domain_lists=lists,
            )
            if condition["operator"] == "regex":
                _check_regex_in_database(condition["value"], field="conditions")
        except RuleError as exc:
            raise RuleError(f"{condition['field']}: {exc}", field="conditions") from None

    def spec(self, custom_kinds: dict[str, str] | None = None) -> RuleSpec:
        if self.kind == RuleKind.FIT:
            kinds = custom_kinds if custom_kinds is not None else custom_field_kinds()
            return RuleSpec(
                id=self.pk,
                kind=FIT,
                points=self.points,
                description=self.describe(),
                field=self.field,
                operator=self.operator,
                value=self.value,
                value_to=self.value_to,
                field_kind=field_kind(self.field, kinds),
                conditions=tuple(
                    Condition(field_kind=field_kind(item["field"], kinds), **item)
                    for item in self.parsed_conditions()
                ),
                join=self.join,
                per_unit=self.per_unit,
                points_cap=self.points_cap,
            )
        target = ""
        if self.target == ActivityTarget.URL:
            target = "url"
        elif self.target == ActivityTarget.PROPERTY:
            target = f"property:{self.property_name}"
        return RuleSpec(
            id=self.pk,
            kind=ENGAGEMENT,
            points=self.points,
            description=self.describe(),
            activity_type=self.activity_type,
            target=target,
            match=self.match or "contains",
            pattern=self.pattern,
            min_duration_seconds=self.min_duration_seconds,
            max_per_lead=self.max_per_lead,
            max_per_day=self.max_per_day,
            bonus_count=self.bonus_count,
            bonus_points=self.bonus_points,
            recency_days=self.recency_days,
            window_days=self.window_days or None,
            window_min=self.window_min if self.window_days else None,
            window_measure=self.window_measure or WindowMeasure.COUNT,
        )

    def describe(self) -> str:
        """The rule as a sentence, e.g. “+25 when a page view URL contains /pricing”."""
        return describe_rule(self)


def custom_field_kinds() -> dict[str, str]:
    kinds = {"integer": NUMBER, "number": NUMBER, "boolean": BOOL}
    return {
        key: kinds.get(field_type, TEXT)
        for key, field_type in CustomFieldDefinition.objects.values_list("key", "field_type")
    }


class DomainListKind(models.TextChoices):
    FREE_MAIL = "free_mail", "Free-mail domains"
    COMPETITOR = "competitor", "Competitor domains"
    DISPOSABLE = "disposable", "Disposable domains"


class DomainList(models.Model):
    """Domains the marketer keeps on a named list; fit rules test an email against a list."""

    kind = models.CharField(max_length=20, choices=DomainListKind.choices)
    domain = models.CharField(max_length=253)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["kind", "domain"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "domain"], name="domain_unique_per_list")
        ]

    def __str__(self) -> str:
        return f"{self.domain} ({self.get_kind_display()})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.domain = self.domain.strip().lower().removeprefix("@")
        super().save(*args, **kwargs)


def _check_regex_in_database(pattern: str, *, field: str) -> None:
    """On PostgreSQL, let the database compile the pattern too: a rescore runs it there."""
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT '' ~* %s", [postgres_regex(pattern)])
    except DatabaseError as exc:
        message = str(exc).strip().splitlines()[0]
        raise RuleError(f"The database cannot use “{pattern}”: {message}.", field=field) from None

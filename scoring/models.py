"""Scoring models, their rules, the score ledger and each lead's score per model."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, models, transaction
from django.db.models import Q
from django.utils import timezone

from leads.models import ActivityType, CustomFieldDefinition, Lead, ProductLine

from .conditions import validate_condition
from .regex_dialects import compile_regex, postgres_regex
from .rule_fields import ACTIVITY_OPERATORS, BOOL, NUMBER, OPERATORS, TEXT, RuleError, field_kind
from .rules import ENGAGEMENT, FIT, RuleSpec
from .score_formula import Thresholds


class ModelStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    ARCHIVED = "archived", "Archived"


class ScoringModelQuerySet(models.QuerySet["ScoringModel"]):
    def active(self) -> ScoringModelQuerySet:
        return self.filter(status=ModelStatus.ACTIVE)


class ScoringModel(models.Model):
    """How one segment's leads are scored: its rules, thresholds, bands, grades and decay."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=ModelStatus.choices, default=ModelStatus.DRAFT)
    is_default = models.BooleanField(
        default=False, help_text="The default model scores every lead, whatever its interests."
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
    mql_threshold = models.PositiveIntegerField(default=50, verbose_name="MQL threshold")
    sql_threshold = models.PositiveIntegerField(default=90, verbose_name="SQL threshold")
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
    surge_points = models.PositiveIntegerField(default=30, help_text="A rise of this many points…")
    surge_hours = models.PositiveIntegerField(
        default=24, help_text="…within this many hours is a surge."
    )
    decay_version = models.PositiveIntegerField(
        default=1,
        editable=False,
        help_text="Goes up when the decay settings change: stored engagement is resummed.",
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
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            stored = (
                ScoringModel.objects.filter(pk=self.pk)
                .values_list("decay_half_life_days", "idle_week_penalty")
                .first()
            )
            if stored is not None and stored != (
                self.decay_half_life_days,
                self.idle_week_penalty,
            ):
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
        if errors:
            raise ValidationError(errors)

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
        )


class RuleKind(models.TextChoices):
    FIT = FIT, "Fit (who they are)"
    ENGAGEMENT = ENGAGEMENT, "Engagement (what they do)"


class ActivityTarget(models.TextChoices):
    ANY = "", "any"
    URL = "url", "URL"
    PROPERTY = "property", "a property"


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
            lists = DomainList.objects.values_list("kind", flat=True).distinct()
            validate_condition(kind, self.operator, self.value, self.value_to, domain_lists=lists)
            if self.operator == "regex":
                _check_regex_in_database(self.value, field="value")
            return
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

    def spec(self, custom_kinds: dict[str, str] | None = None) -> RuleSpec:
        if self.kind == RuleKind.FIT:
            return RuleSpec(
                id=self.pk,
                kind=FIT,
                points=self.points,
                description=self.describe(),
                field=self.field,
                operator=self.operator,
                value=self.value,
                value_to=self.value_to,
                field_kind=field_kind(self.field, custom_kinds or custom_field_kinds()),
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
        )

    def describe(self) -> str:
        """The rule as a sentence, e.g. “+25 when a page view URL contains /pricing”."""
        from .describe import describe_rule

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
    # rescore's time), so the columns only the scoring engine writes have none;
    # Django still applies CASCADE and SET_NULL when a lead, model, rule or activity
    # is deleted.
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
    )
    reversal_of = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="reversal"
    )

    class Meta:
        verbose_name_plural = "score entries"
        ordering = ["at", "id"]
        indexes = [
            # A lead's entries in time order. On PostgreSQL it also holds each entry's
            # kind and points (INCLUDE, migration 0011; SQLite has no such columns), so
            # the score history and the reports' points-until-then sums read it alone.
            models.Index(fields=["lead", "model", "at"], name="entry_lead_model_at_pts_idx"),
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
        ]

    def __str__(self) -> str:
        return f"{self.points:+g} {self.reason}"


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


class LeadScore(models.Model):
    """A lead's score in one model, brought up to date at ``engagement_at``.

    ``engagement`` is the decayed engagement at ``engagement_at``; its value at a
    later time follows from the decay formula, so nothing needs rewriting as time
    passes. The primary model's values are copied onto the lead for fast lists.
    """

    # A rescore rewrites hundreds of thousands of these rows, and each index costs every
    # one of those writes an entry. Lookups by lead use the unique (lead, model) index and
    # lookups by model the (model, score) index, so the two columns need none of their own.
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
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["lead", "model"], name="one_score_per_lead_and_model")
        ]
        indexes = [
            models.Index(fields=["model", "-score"], name="leadscore_model_score_idx"),
            models.Index(
                fields=["lead"], condition=Q(is_primary=True), name="leadscore_primary_idx"
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


class RescoreStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class RescoreJob(models.Model):
    """Progress of a bulk rescore, shown in the admin."""

    model = models.ForeignKey(ScoringModel, on_delete=models.CASCADE, related_name="rescores")
    reason = models.CharField(max_length=200)
    status = models.CharField(
        max_length=10, choices=RescoreStatus.choices, default=RescoreStatus.QUEUED
    )
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    # On PostgreSQL a job is split into lead-id ranges, each a task on the bulk queue, so
    # as many bulk workers as run share it; the range that finishes last ends the job.
    ranges = models.PositiveIntegerField(default=0)
    # The first lead id of each range finished: a task delivered twice counts once.
    finished_ranges = models.JSONField(default=list, blank=True)
    changed_entries = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    rule = models.ForeignKey(
        Rule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Rescore only what this rule touches; empty: the whole model.",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Rescore of {self.model} ({self.status})"

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, round(100 * self.done / self.total))


class ChangeLog(models.Model):
    """Who changed which scoring model or rule, when, and what it looked like before and after."""

    object_type = models.CharField(max_length=20)
    object_id = models.PositiveBigIntegerField()
    object_repr = models.CharField(max_length=200)
    action = models.CharField(max_length=10)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="changelog_object_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.object_repr}"


class ProfileRescore(models.Model):
    """A lead whose explicit fields changed after its last scoring: the outbox of a profile
    change, as an unscored activity is the outbox of an event.

    Written in the transaction that changes the lead, removed by the scoring that reads
    the changed fields (with the lead locked), so a change whose rescore message was lost
    (the broker down) is rescored by beat's sweeper.
    """

    lead = models.OneToOneField(Lead, primary_key=True, on_delete=models.CASCADE, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Rescore of lead {self.lead_id} requested at {self.requested_at:%Y-%m-%d %H:%M}"

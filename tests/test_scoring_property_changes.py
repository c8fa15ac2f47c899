"""A rule changed while leads are being scored: incremental scoring, the rescore of the
change, a bulk rescore from nothing and the plain reference still agree, and the
explanation and the score history stay right across the change.

Hypothesis draws a decaying model, leads with histories and events arriving one at a
time on a clock the test moves (the strategies of ``test_scoring_property``), and one
change to one rule at a drawn moment among the events, made through ``rule_save`` as the
admin, the API and the studio make it: an engagement rule's points or bonus, its
condition (pricing pages only, or not) or its per-day cap; a fit rule's points or value.
The change's rescore job runs when its transaction commits, and the events go on.

Then, at the end, the ledger's active awards and the scores equal those of a rescore
from an empty ledger and of the reference computed from the rules as changed; right
after the change every lead's explanation adds up to its score; and the score history
asked afterwards for the moments just before and just after the change gives the scores
the lead had then (the history shows what was shown: an award the change dates in the
past does not rewrite the time before the change).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from leads.activities import activities_record
from leads.models import Activity, ActivityType, Lead
from scoring.changes import rule_save, rule_snapshot
from scoring.explanation import lead_explanation, score_history
from scoring.models import (
    LeadScore,
    RescoreJob,
    RescoreStatus,
    Rule,
    RuleKind,
    RuleMatch,
    ScoreEntry,
    ScoringModel,
)
from scoring.rescore_jobs import rescore_job_start
from scoring.revaluations import revaluable
from scoring.ruleset import load_ruleset
from scoring.score_formula import decayed, total_score
from scoring.verification import scores_verify
from tests.test_scoring_property import (
    LONG_HISTORY,
    Clock,
    Decaying,
    EngagementDef,
    FitDef,
    active_awards,
    build_scored,
    decaying_scenarios,
    reference,
    states,
)

FIT_VALUES = ["head", "vp", "intern"]


@dataclass(frozen=True)
class ChangeDef:
    """One change to one rule (``index`` modulo the rules of its kind), made before the
    event at ``before_event`` (after the last one when past the end), ``gap`` minutes
    after the event before it."""

    what: str
    index: int
    before_event: int
    gap: int
    points: int

    def engagement(self, rule: EngagementDef) -> EngagementDef:
        if self.what == "points":
            return dataclasses.replace(rule, points=self.points)
        if self.what == "bonus":
            return dataclasses.replace(rule, bonus_points=self.points)
        if self.what == "pricing":
            return dataclasses.replace(rule, pricing_only=not rule.pricing_only)
        return dataclasses.replace(rule, max_per_day=1 if rule.max_per_day != 1 else None)

    def fit(self, rule: FitDef) -> FitDef:
        if self.what == "value" and rule.field == "job_title" and rule.operator == "contains":
            others = [value for value in FIT_VALUES if value != rule.value]
            return dataclasses.replace(rule, value=others[self.points % len(others)])
        return dataclasses.replace(rule, points=self.points)


changes = st.builds(
    ChangeDef,
    what=st.sampled_from(["points", "points", "bonus", "pricing", "day cap", "value"]),
    index=st.integers(min_value=0, max_value=10),
    before_event=st.integers(min_value=0, max_value=10),
    gap=st.integers(min_value=0, max_value=600),
    points=st.integers(min_value=-10, max_value=30).filter(bool),
)


def changed(scenario: Decaying, change: ChangeDef) -> tuple[Decaying, str, int]:
    """The scenario with the change made, and which rule it changed (kind, position)."""
    if change.what in ("points", "bonus", "pricing", "day cap") or not scenario.fit:
        rules = list(scenario.engagement)
        i = change.index % len(rules)
        rules[i] = change.engagement(rules[i])
        return dataclasses.replace(scenario, engagement=rules), RuleKind.ENGAGEMENT, i
    rules = list(scenario.fit)
    i = change.index % len(rules)
    rules[i] = change.fit(rules[i])
    return dataclasses.replace(scenario, fit=rules), RuleKind.FIT, i


def rule_change(model: ScoringModel, kind: str, position: int, scenario: Decaying) -> None:
    """Store the rule as ``scenario`` has it, through the service every surface calls."""
    rule = model.rules.filter(kind=kind).order_by("pk")[position]
    before = rule_snapshot(rule=rule)
    if kind == RuleKind.ENGAGEMENT:
        spec = scenario.engagement[position]
        rule.points = spec.points
        rule.bonus_points = spec.bonus_points if spec.bonus_count else 0
        rule.target = "url" if spec.pricing_only else ""
        rule.pattern = "pricing" if spec.pricing_only else ""
        rule.max_per_day = spec.max_per_day
    else:
        fit = scenario.fit[position]
        rule.points, rule.value = fit.points, fit.value
    rule.full_clean()
    with transaction.atomic():
        rule.save()
        rule_save(rule=rule, before=before, by=None)


def new_points(before: Decaying, after: Decaying, kind: str, position: int) -> int | None:
    """The changed rule's points after the change, when they are all that changed."""
    old: EngagementDef | FitDef
    new: EngagementDef | FitDef
    if kind == RuleKind.ENGAGEMENT:
        old, new = before.engagement[position], after.engagement[position]
    else:
        old, new = before.fit[position], after.fit[position]
    return new.points if dataclasses.replace(old, points=new.points) == new else None


def revalued_matches(
    model: ScoringModel, kind: str, position: int, points: int | None
) -> set[int] | None:
    """The leads the rule matches, when a change of its points to ``points`` (None: more
    than its points changed) revalues its awards here (PostgreSQL, a rule
    ``revaluable`` allows); else None."""
    rule = model.rules.filter(kind=kind).order_by("pk")[position]
    if connection.vendor != "postgresql" or points is None or points == rule.points:
        return None
    (compiled,) = [m for m in load_ruleset(fresh=True).models if m.id == model.pk]
    specs = compiled.engagement_rules if kind == RuleKind.ENGAGEMENT else compiled.fit_rules
    spec = next(r for r in specs if r.id == rule.pk)
    if not revaluable(dataclasses.replace(spec, points=points), rule.points):
        return None
    return set(RuleMatch.objects.filter(rule=rule).values_list("lead_id", flat=True))


def shown_scores(model: ScoringModel, rows: list[Lead], at: datetime) -> list[int]:
    """Each lead's score at ``at`` from its stored state, without the idle penalty (the
    score history leaves it out)."""
    scores = []
    for row in rows:
        state = LeadScore.objects.get(lead=row, model=model)
        engagement = decayed(state.engagement, state.engagement_at, at, model.decay_half_life_days)
        scores.append(total_score(state.fit + state.adjustment, engagement, model.thresholds))
    return scores


def history_at(model: ScoringModel, rows: list[Lead], at: datetime) -> list[int | None]:
    """Each lead's score at ``at`` by its score history, asked now."""
    return [
        series[-1]["score"] if (series := score_history(lead=row, model=model, now=at)) else None
        for row in rows
    ]


def assert_explanations_add_up(rows: list[Lead], at: datetime) -> None:
    for row in rows:
        row.refresh_from_db()
        for part in lead_explanation(lead=row, now=at)["models"]:
            lines = [*part["positive"], *part["negative"]]
            total = sum(line["value_now"] for line in lines)
            # Each line is rounded to a tenth, the score to a whole point.
            assert abs(total - part["score"]) <= 0.5 + 0.05 * len(lines) + 1e-9, part


WEBINAR_POINTS = ChangeDef("points", 0, 4, 90, 25)
PRICING_TOGGLED = ChangeDef("pricing", 0, 2, 30, 1)
# Uncapped rules of the long history: their points change revalues their awards on
# PostgreSQL (``scoring.revaluations``), one of them under a recency limit that lets
# revalued awards go afterwards.
FORMS_REVALUED = ChangeDef("points", 3, 4, 90, 9)
RECENT_PAGES_REVALUED = ChangeDef("points", 1, 2, 30, -5)
# A fit rule's points alone: revalued; a per-unit fit rule's: derived again.
FIT_RULES = dataclasses.replace(
    LONG_HISTORY,
    fit=[
        *LONG_HISTORY.fit,
        FitDef("country", "in", "de, AT", 12),
        FitDef("company.employee_count", "gte", "1", 1, per_unit=100.0, cap=6),
    ],
)
FIT_POINTS_REVALUED = ChangeDef("value", 1, 3, 45, -7)
PER_UNIT_POINTS = ChangeDef("value", 2, 3, 45, 2)


@pytest.mark.django_db
@given(scenario=decaying_scenarios(), change=changes)
@example(scenario=LONG_HISTORY, change=WEBINAR_POINTS)
@example(scenario=LONG_HISTORY, change=PRICING_TOGGLED)
@example(scenario=LONG_HISTORY, change=FORMS_REVALUED)
@example(scenario=LONG_HISTORY, change=RECENT_PAGES_REVALUED)
@example(scenario=FIT_RULES, change=FIT_POINTS_REVALUED)
@example(scenario=FIT_RULES, change=PER_UNIT_POINTS)
@settings(
    max_examples=15,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_a_rule_changed_while_scoring_agrees_with_bulk_and_reference_and_history_holds(
    scenario, change, django_capture_on_commit_callbacks, monkeypatch
):
    # Given a decaying model, leads scored on their profile and their histories recorded
    clock = Clock(timezone.now().replace(microsecond=0))
    monkeypatch.setattr(timezone, "now", clock)
    model, rows = build_scored(scenario, clock, django_capture_on_commit_callbacks)
    after_change, kind, position = changed(scenario, change)
    moments: dict[str, tuple[datetime, list[int]]] = {}

    def make_the_change() -> None:
        moments["before"] = (clock.at, shown_scores(model, rows, clock.at))
        # (The change comes after that moment: the history cannot tell apart two things
        # that happened at one instant.)
        clock.at += timedelta(minutes=change.gap, seconds=1)
        jobs_before = set(RescoreJob.objects.values_list("pk", flat=True))
        points = new_points(scenario, after_change, kind, position)
        matched = revalued_matches(model, kind, position, points)
        with django_capture_on_commit_callbacks(execute=True):
            rule_change(model, kind, position, after_change)
        for job in RescoreJob.objects.exclude(pk__in=jobs_before):
            assert job.status == RescoreStatus.DONE, job.error
        # A points change of a rule that only revalues holds one revaluation a lead it
        # matched, where the set-based rescore runs
        if matched is not None:
            revalued = ScoreEntry.objects.filter(revalued_to__isnull=False)
            assert set(revalued.values_list("lead_id", flat=True)) == matched
        moments["after"] = (clock.at, shown_scores(model, rows, clock.at))
        # Then right after the change every explanation adds up to its score
        assert_explanations_add_up(rows, clock.at)
        # (And what happens next happens later.)
        clock.at += timedelta(seconds=1)

    # When events arrive one at a time, and the rule changes at the drawn moment
    for number, event in enumerate(scenario.events):
        if number == change.before_event:
            make_the_change()
        clock.at += timedelta(minutes=event.gap)
        spec = Activity(
            type=event.type, url=event.url, occurred_at=clock.at - timedelta(minutes=event.lag)
        )
        with django_capture_on_commit_callbacks(execute=True):
            activities_record(lead=rows[event.lead], activities=[spec])
    if "before" not in moments:
        make_the_change()
    # And every lead is scored once more at one instant (an activity no rule reads)
    clock.at += timedelta(minutes=scenario.final_gap)
    for row in rows:
        with django_capture_on_commit_callbacks(execute=True):
            activities_record(lead=row, activities=[Activity(type=ActivityType.CUSTOM)])
    assert list(scores_verify(now=clock.at)) == []
    incremental_ledger, incremental = active_awards(), states(rows)

    # Then the score history, asked now, gives the scores the leads had around the change
    for moment in ("before", "after"):
        at, scores = moments[moment]
        history = history_at(model, rows, at)
        # (A lead without a single ledger entry has no history to ask.)
        expected = [None if h is None else s for h, s in zip(history, scores, strict=True)]
        assert history == expected, moment

    # And a rescore from an empty ledger gives the same ledger and scores
    ScoreEntry.objects.all().delete()
    LeadScore.objects.all().delete()
    Activity.objects.update(scored_at=None)
    Lead.objects.update(
        score=0, fit_score=0, engagement_score=0, engagement_at=None, band="cold", grade="D"
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = rescore_job_start(model=model, reason="property test")
    assert RescoreJob.objects.get(pk=job.pk).status == RescoreStatus.DONE
    bulk_ledger, bulk = active_awards(), states(rows)

    # And both equal the reference computed from the rules as changed
    expected_ledger, expected = reference(after_change, model, rows, clock.at)
    assert incremental_ledger == bulk_ledger == expected_ledger
    assert incremental == bulk == expected
    assert Rule.objects.filter(model=model).count() == len(scenario.fit) + len(scenario.engagement)

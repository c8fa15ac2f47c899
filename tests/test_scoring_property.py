"""Incremental scoring, a bulk rescore and an independent reference agree on every score.

Hypothesis draws a scoring model (fit rules over a few fields, engagement rules with random
caps, bonus, recency window and points, negative ones included), a few leads and their
activities. The same leads are then scored

(a) incrementally: each activity recorded on its own through ``activities_record`` in a
    random arrival order, its scoring task running when the transaction commits;
(b) in bulk: ledger and scores wiped, then one rescore job over the same activities;
(c) by a plain-Python reference written here from the rules' documented meaning.

The model does not decay, so the real clock the tasks use cannot make the paths differ.
Activity times sit 17 minutes off every half hour, so no recency edge is within minutes of
an activity while the test runs.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from leads.activities import activities_record
from leads.models import Activity, ActivityType, Company, Lead
from leads.profiles import lead_save_profile
from scoring.models import (
    LeadScore,
    ModelStatus,
    RescoreJob,
    RescoreStatus,
    Rule,
    RuleKind,
    ScoreEntry,
    ScoringModel,
)
from scoring.rescore_jobs import rescore_job_start
from scoring.verification import scores_verify
from tests.factories import CompanyFactory, LeadFactory

TYPES = [ActivityType.PAGE_VIEW, ActivityType.EMAIL_OPEN, ActivityType.FORM_SUBMISSION]
URLS = ["https://hotlist.example/Pricing", "https://hotlist.example/blog/roi", ""]

# --- What hypothesis draws --------------------------------------------------------------


@dataclass(frozen=True)
class FitDef:
    field: str
    operator: str
    value: str
    points: int


@dataclass(frozen=True)
class EngagementDef:
    activity_type: str
    pricing_only: bool
    points: int
    max_per_day: int | None
    max_per_lead: int | None
    bonus_count: int | None
    bonus_points: int
    recency_days: int | None


@dataclass(frozen=True)
class LeadDef:
    job_title: str
    country: str
    seniority: str
    employee_count: int | None


@dataclass(frozen=True)
class ActivityDef:
    lead: int
    type: str
    url: str
    half_hours_ago: int  # negative: in the future

    def occurred_at(self, base: datetime) -> datetime:
        return base - timedelta(minutes=30 * self.half_hours_ago + 17)


points = st.integers(min_value=-30, max_value=40).filter(bool)
types = st.sampled_from([*TYPES, ActivityType.PAGE_VIEW])
fit_defs = st.one_of(
    st.builds(
        FitDef,
        st.just("job_title"),
        st.just("contains"),
        st.sampled_from(["head", "vp", "intern"]),
        points,
    ),
    st.builds(FitDef, st.just("country"), st.just("in"), st.sampled_from(["de, AT", "fr"]), points),
    st.builds(
        FitDef,
        st.just("company.employee_count"),
        st.just("gte"),
        st.sampled_from(["100", "500"]),
        points,
    ),
    st.builds(FitDef, st.just("seniority"), st.just("equals"), st.just("Director"), points),
    # Regular expressions whose spelling differs between Python and PostgreSQL.
    st.builds(
        FitDef,
        st.just("job_title"),
        st.just("regex"),
        st.sampled_from([r"\bvp\b", r"^head\b", r"intern$", r"\bit$", r"s\B", r"o.i"]),
        points,
    ),
)
engagement_defs = st.builds(
    EngagementDef,
    activity_type=types,
    pricing_only=st.booleans(),
    points=st.integers(min_value=-10, max_value=25).filter(bool),
    max_per_day=st.one_of(st.none(), st.integers(min_value=1, max_value=2)),
    max_per_lead=st.one_of(st.none(), st.integers(min_value=1, max_value=4)),
    bonus_count=st.one_of(st.none(), st.integers(min_value=2, max_value=3)),
    bonus_points=st.integers(min_value=-10, max_value=15),
    recency_days=st.one_of(st.none(), st.integers(min_value=1, max_value=3)),
)
lead_defs = st.builds(
    LeadDef,
    job_title=st.sampled_from(["Head of IT", "VP Sales", "Marketing intern", ""]),
    country=st.sampled_from(["DE", "AT", "FR"]),
    seniority=st.sampled_from(["director", "manager", ""]),
    employee_count=st.sampled_from([None, 50, 200, 1000]),
)


@st.composite
def bursts(draw, lead_count: int) -> list[ActivityDef]:
    """A few activities of one kind by one lead, half an hour apart: busy days for the caps.

    Bursts start from three days back to a few hours ahead (those lie in the future).
    """
    lead = draw(st.integers(min_value=0, max_value=lead_count - 1))
    type_ = draw(types)
    url = draw(st.sampled_from([URLS[0], *URLS]))
    start = draw(st.integers(min_value=-6, max_value=150))
    count = draw(st.integers(min_value=1, max_value=4))
    return [ActivityDef(lead, type_, url, start - i) for i in range(count)]


@st.composite
def scenarios(draw):
    fit = draw(st.lists(fit_defs, max_size=3))
    engagement = draw(st.lists(engagement_defs, min_size=1, max_size=4))
    leads = draw(st.lists(lead_defs, min_size=1, max_size=3))
    activities = [a for burst in draw(st.lists(bursts(len(leads)), max_size=4)) for a in burst]
    arrival = draw(st.permutations(range(len(activities))))
    max_points = draw(st.one_of(st.none(), st.integers(min_value=40, max_value=120)))
    return fit, engagement, leads, activities, arrival, max_points


# Every cap, the bonus and the window at work on one lead, whatever hypothesis draws.
BUSY = (
    [FitDef("job_title", "contains", "head", 20)],
    [
        EngagementDef(ActivityType.PAGE_VIEW, True, 10, 2, 3, 3, 7, None),
        EngagementDef(ActivityType.PAGE_VIEW, False, -3, 1, None, None, 0, 2),
        EngagementDef(ActivityType.EMAIL_OPEN, False, 4, None, 2, 2, -5, None),
    ],
    [LeadDef("Head of IT", "DE", "director", 200)],
    [ActivityDef(0, ActivityType.PAGE_VIEW, URLS[0], h) for h in (1, 2, 3, 4, 60, 61, 110, -3)]
    + [ActivityDef(0, ActivityType.EMAIL_OPEN, "", h) for h in (5, 6, 7, 58)],
    [11, 0, 7, 3, 9, 1, 10, 5, 2, 8, 4, 6],
    None,
)


# --- The reference, from the rules' meaning -------------------------------------------------


def reference_fit(rule: FitDef, lead: LeadDef) -> bool:
    if rule.field == "job_title" and rule.operator == "regex":
        # Patterns are written in Python's spelling; titles have no line breaks.
        return re.search(rule.value, lead.job_title.strip(), re.IGNORECASE) is not None
    if rule.field == "job_title":
        return rule.value in lead.job_title.lower()
    if rule.field == "country":
        return lead.country.lower() in [c.strip().lower() for c in rule.value.split(",")]
    if rule.field == "company.employee_count":
        return lead.employee_count is not None and lead.employee_count >= int(rule.value)
    return lead.seniority.lower() == rule.value.lower()


def reference_engagement(rule: EngagementDef, times: list[tuple[str, str, datetime]], now) -> int:
    """Caps: per day min(n, max_per_day), then the earliest max_per_lead of those in all.

    Bonus: once on each UTC day with at least bonus_count matches, whatever the caps.
    """
    per_day = Counter(
        at.date()
        for type_, url, at in times
        if type_ == rule.activity_type
        and (not rule.pricing_only or "pricing" in url.lower())
        and at <= now
        and (rule.recency_days is None or at >= now - timedelta(days=rule.recency_days))
    )
    counted = sum(min(n, rule.max_per_day or n) for n in per_day.values())
    if rule.max_per_lead is not None:
        counted = min(counted, rule.max_per_lead)
    bonus_days = 0
    if rule.bonus_count and rule.bonus_points:
        bonus_days = sum(1 for n in per_day.values() if n >= rule.bonus_count)
    return counted * rule.points + bonus_days * rule.bonus_points


def reference_scores(fit, engagement, leads, activities, max_points, base, now):
    expected = {}
    for index, lead in enumerate(leads):
        fit_points = sum(rule.points for rule in fit if reference_fit(rule, lead))
        times = [(a.type, a.url, a.occurred_at(base)) for a in activities if a.lead == index]
        engaged = sum(reference_engagement(rule, times, now) for rule in engagement)
        score = fit_points + engaged
        if max_points is not None:
            score = min(score, max_points)
        band = "hot" if score >= 80 else "warm" if score >= 30 else "cold"
        grade = "A" if fit_points >= 60 else "B" if fit_points >= 40 else "C"
        grade = grade if fit_points >= 20 else "D"
        expected[index] = (score, fit_points, band, grade)
    return expected


# --- Building and reading the database -------------------------------------------------------


def build(fit, engagement, leads, max_points) -> tuple[ScoringModel, list[Lead]]:
    for model in (ScoringModel, Lead, Company):
        model.objects.all().delete()
    model = ScoringModel.objects.create(
        name="Property",
        status=ModelStatus.ACTIVE,
        is_default=True,
        max_points=max_points,
        surge_points=0,
    )
    for i, rule in enumerate(fit):
        Rule.objects.create(
            model=model,
            name=f"fit {i}",
            kind=RuleKind.FIT,
            points=rule.points,
            field=rule.field,
            operator=rule.operator,
            value=rule.value,
        )
    for i, rule in enumerate(engagement):
        Rule.objects.create(
            model=model,
            name=f"engagement {i}",
            kind=RuleKind.ENGAGEMENT,
            points=rule.points,
            activity_type=rule.activity_type,
            target="url" if rule.pricing_only else "",
            pattern="pricing" if rule.pricing_only else "",
            max_per_day=rule.max_per_day,
            max_per_lead=rule.max_per_lead,
            bonus_count=rule.bonus_count,
            bonus_points=rule.bonus_points if rule.bonus_count else 0,
            recency_days=rule.recency_days,
        )
    rows = [
        LeadFactory(
            job_title=lead.job_title,
            country=lead.country,
            seniority=lead.seniority,
            company=CompanyFactory(employee_count=lead.employee_count),
        )
        for lead in leads
    ]
    return model, rows


def activity(spec: ActivityDef, base: datetime) -> Activity:
    return Activity(type=spec.type, url=spec.url, occurred_at=spec.occurred_at(base))


def scores(rows: list[Lead]) -> dict[int, tuple[int, int, str, str]]:
    values = Lead.objects.in_bulk([row.pk for row in rows])
    return {
        i: (
            values[row.pk].score,
            values[row.pk].fit_score,
            values[row.pk].band,
            values[row.pk].grade,
        )
        for i, row in enumerate(rows)
    }


# --- The property ----------------------------------------------------------------------------


@pytest.mark.django_db
@given(scenario=scenarios())
@example(scenario=BUSY)
@settings(
    max_examples=25,
    deadline=None,
    # Shrinking re-runs database work hundreds of times; a drawn scenario is small enough.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_incremental_bulk_and_reference_scores_agree(scenario, django_capture_on_commit_callbacks):
    fit, engagement, leads, activities, arrival, max_points = scenario
    # Given a model, leads and the activities they will have
    base = timezone.now()
    model, rows = build(fit, engagement, leads, max_points)

    # When (a) the leads are saved through the service (scored on commit) and then their
    # activities arrive one by one in random order, each scored on commit
    for row in rows:
        with django_capture_on_commit_callbacks(execute=True):
            lead_save_profile(lead=row, changed_fields=["job_title", "country", "seniority"])
    for index in arrival:
        spec = activities[index]
        with django_capture_on_commit_callbacks(execute=True):
            activities_record(lead=rows[spec.lead], activities=[activity(spec, base)])
    incremental = scores(rows)
    assert list(scores_verify()) == []
    assert not Activity.objects.unscored().exists()

    # And (b) everything scored is forgotten and one rescore job scores the same activities
    ScoreEntry.objects.all().delete()
    LeadScore.objects.all().delete()
    Activity.objects.update(scored_at=None)
    Lead.objects.update(
        score=0, fit_score=0, engagement_score=0, engagement_at=None, band="cold", grade="D"
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = rescore_job_start(model=model, reason="property test")
    bulk = scores(rows)
    assert RescoreJob.objects.get(pk=job.pk).status == RescoreStatus.DONE
    assert list(scores_verify()) == []

    # Then both equal (c) the reference computed from the rules' meaning
    expected = reference_scores(
        fit, engagement, leads, activities, max_points, base, timezone.now()
    )
    assert incremental == expected
    assert bulk == expected

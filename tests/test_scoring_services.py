"""Scoring through its services and tasks: ledger, stages, signals, decay, history, sweeper."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leads.activities import activities_record
from leads.models import Activity, ActivityType, Lead, ProductLine, Stage, StageChange
from leads.profiles import lead_save_profile
from scoring import signals
from scoring.adjustments import leads_adjust_score
from scoring.decay import scores_decay
from scoring.explanation import lead_explanation, score_history
from scoring.lead_scoring import lead_score
from scoring.models import (
    EntryKind,
    LeadScore,
    ModelStatus,
    RescoreJob,
    RescoreStatus,
    Rule,
    RuleKind,
    ScoreEntry,
    ScoringModel,
)
from scoring.rescore_jobs import rescore_job_run, rescore_job_start
from scoring.score_formula import band_for, decayed, total_score
from scoring.tasks import sweep_unscored
from scoring.verification import scores_verify
from tests.factories import LeadFactory

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
PRICING = "https://hotlist.example/pricing"


def make_model(name: str = "Default", **fields) -> ScoringModel:
    values = {"status": ModelStatus.ACTIVE, "is_default": True, "surge_points": 0}
    values.update(fields)
    return ScoringModel.objects.create(name=name, **values)


def fit_rule(model: ScoringModel, points: int, field: str, operator: str, value: str) -> Rule:
    return Rule.objects.create(
        model=model,
        name=f"{field} {operator} {value}",
        kind=RuleKind.FIT,
        points=points,
        field=field,
        operator=operator,
        value=value,
    )


def engagement_rule(model: ScoringModel, points: int, activity_type: str, **fields) -> Rule:
    return Rule.objects.create(
        model=model,
        name=f"{activity_type} {points}",
        kind=RuleKind.ENGAGEMENT,
        points=points,
        activity_type=activity_type,
        **fields,
    )


class Rules:
    """The default model used by most tests: fit 30 for a factory lead, then engagement."""

    def __init__(self) -> None:
        self.model = make_model()
        self.title = fit_rule(self.model, 20, "job_title", "contains", "head")
        self.country = fit_rule(self.model, 10, "country", "equals", "DE")
        self.pricing = engagement_rule(
            self.model,
            15,
            ActivityType.PAGE_VIEW,
            target="url",
            pattern="/pricing",
            max_per_day=2,
        )
        self.demo = engagement_rule(self.model, 40, ActivityType.DEMO_REQUEST)
        self.bounce = engagement_rule(self.model, -25, ActivityType.EMAIL_BOUNCE)


@pytest.fixture
def rules(db) -> Rules:
    return Rules()


def record(lead: Lead, *specs: tuple[str, datetime]) -> list[Activity]:
    """Store activities the way the API does (scoring is queued for after commit)."""
    activities = [
        Activity(type=type_, occurred_at=at, url=PRICING if type_ == ActivityType.PAGE_VIEW else "")
        for type_, at in specs
    ]
    return activities_record(lead=lead, activities=activities)


def ledger_sum(lead: Lead) -> float:
    return ScoreEntry.objects.filter(lead=lead).aggregate(total=Sum("points"))["total"] or 0.0


@pytest.fixture
def received():
    """Every scoring signal sent while the test runs, as (signal name, kwargs)."""
    got: list[tuple[str, dict]] = []
    receivers = []
    for name in ("lead_qualified", "band_changed", "bands_changed", "score_surged"):

        def receiver(sender, signal, _name=name, **kwargs) -> None:
            got.append((_name, kwargs))

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((name, receiver))
    yield got
    for name, receiver in receivers:
        getattr(signals, name).disconnect(receiver)


def sent(got: list[tuple[str, dict]], name: str) -> list[dict]:
    return [kwargs for signal, kwargs in got if signal == name]


# --- A new activity scores the lead ------------------------------------------------------


def test_new_activity_scores_the_lead_with_a_readable_ledger(
    rules, django_capture_on_commit_callbacks
):
    # Given a head of operations in Germany
    lead = LeadFactory()

    # When a pricing page view is recorded and its transaction commits (the task runs)
    with django_capture_on_commit_callbacks(execute=True):
        (activity,) = record(lead, (ActivityType.PAGE_VIEW, timezone.now()))

    # Then the ledger says why, in the words of each rule, and the activity is applied
    entries = list(ScoreEntry.objects.filter(lead=lead).order_by("points"))
    assert [(e.kind, e.points, e.reason) for e in entries] == [
        (EntryKind.FIT, 10.0, "+10 when country is DE"),
        (
            EntryKind.ENGAGEMENT,
            15.0,
            "+15 when a page view URL contains /pricing, at most twice a day",
        ),
        (EntryKind.FIT, 20.0, "+20 when job title contains head"),
    ]
    assert entries[1].activity_id == activity.pk
    assert entries[1].rule_id == rules.pricing.pk
    activity.refresh_from_db()
    assert activity.scored_at is not None
    # And the score is kept per model and materialized on the lead
    row = LeadScore.objects.get(lead=lead)
    assert (row.fit, row.engagement, row.score, row.is_primary) == (30.0, 15.0, 45, True)
    lead.refresh_from_db()
    assert (lead.score, lead.fit_score, lead.engagement_score) == (45, 30, 15.0)
    assert (lead.band, lead.grade, lead.quadrant) == ("warm", "C", "cold")


def test_ledger_reasons_stay_as_written_when_the_rule_changes(rules):
    # Given a lead scored for a pricing page view
    lead = LeadFactory()
    record(lead, (ActivityType.PAGE_VIEW, T0 - timedelta(hours=1)))
    lead_score(lead_id=lead.pk, now=T0)
    original = ScoreEntry.objects.get(lead=lead, rule=rules.pricing)

    # When the rule's pattern is reworded (still matching) and the lead is scored again
    rules.pricing.pattern = "pricing"
    rules.pricing.save()
    lead_score(lead_id=lead.pk, now=T0 + timedelta(minutes=5))

    # Then the old entry keeps the words it was written with
    original.refresh_from_db()
    assert original.reason == "+15 when a page view URL contains /pricing, at most twice a day"
    assert not original.reversals.exists()


def test_scoring_twice_writes_nothing_new(rules):
    # Given a lead scored for its activities
    lead = LeadFactory()
    record(
        lead,
        (ActivityType.PAGE_VIEW, T0 - timedelta(hours=2)),
        (ActivityType.EMAIL_BOUNCE, T0 - timedelta(hours=1)),
    )
    first = lead_score(lead_id=lead.pk, now=T0)
    entries = list(ScoreEntry.objects.filter(lead=lead).values_list("pk", flat=True))
    before = Lead.objects.values("score", "fit_score", "band", "grade").get(pk=lead.pk)

    # When it is scored again
    again = lead_score(lead_id=lead.pk, now=T0 + timedelta(minutes=1))

    # Then no entry is written and nothing changes
    assert first.new_entries == 4
    assert again.new_entries == 0
    assert list(ScoreEntry.objects.filter(lead=lead).values_list("pk", flat=True)) == entries
    assert Lead.objects.values("score", "fit_score", "band", "grade").get(pk=lead.pk) == before
    assert before["score"] == 30 + 15 - 25


def test_scoring_again_rewrites_only_the_rows_whose_score_moved(rules):
    # Given a lead scored for its activities
    lead = LeadFactory()
    record(lead, (ActivityType.PAGE_VIEW, T0 - timedelta(hours=2)))
    lead_score(lead_id=lead.pk, now=T0)
    stored = LeadScore.objects.get(lead=lead)

    # When it is scored again with nothing new, a minute later
    with CaptureQueriesContext(connection) as nothing_new:
        lead_score(lead_id=lead.pk, now=T0 + timedelta(minutes=1))

    # Then neither its score row nor the lead row (with its many indexes) is rewritten
    writes = [q["sql"] for q in nothing_new.captured_queries if q["sql"].startswith("UPDATE")]
    assert writes == []
    assert LeadScore.objects.get(lead=lead).engagement_at == stored.engagement_at

    # When a new activity scores
    record(lead, (ActivityType.DEMO_REQUEST, T0 + timedelta(minutes=2)))
    with CaptureQueriesContext(connection) as scored:
        lead_score(lead_id=lead.pk, now=T0 + timedelta(minutes=3))

    # Then both are written, and the ledger and the stored scores still agree
    tables = " ".join(q["sql"] for q in scored.captured_queries if q["sql"].startswith("UPDATE"))
    assert "scoring_leadscore" in tables
    assert "leads_lead" in tables
    assert Lead.objects.get(pk=lead.pk).score == 30 + 15 + 40
    assert list(scores_verify(now=T0 + timedelta(minutes=3))) == []


def test_changed_points_are_reversed_and_reawarded_by_a_rescore(
    rules, marketer, django_capture_on_commit_callbacks
):
    # Given two leads scored for pricing page views
    leads = [LeadFactory(), LeadFactory()]
    for lead in leads:
        record(lead, (ActivityType.PAGE_VIEW, T0 - timedelta(hours=1)))
        lead_score(lead_id=lead.pk, now=T0)
    old = {e.lead_id: e for e in ScoreEntry.objects.filter(rule=rules.pricing)}

    # When the marketer raises the rule's points and the rescore job runs
    rules.pricing.points = 40
    rules.pricing.save()
    with django_capture_on_commit_callbacks(execute=True):
        job = rescore_job_start(model=rules.model, reason="Pricing matters more", by=marketer)

    # Then each old award is reversed, a new one appended, and the ledger adds up to the score
    job.refresh_from_db()
    assert (job.status, job.total, job.done, job.changed_entries) == (RescoreStatus.DONE, 2, 2, 4)
    for lead in leads:
        lead.refresh_from_db()
        entry = old[lead.pk]
        entry.refresh_from_db()
        assert entry.points == 15.0
        assert entry.reversals.get().points == -15.0
        assert entry.reversals.get().reason == f"Rule changed: reverses entry {entry.pk}"
        new = ScoreEntry.objects.get(rule=rules.pricing, lead=lead, points=40)
        assert new.reason.startswith("+40 when a page view")
        assert lead.score == 30 + 40
        assert ledger_sum(lead) == lead.score
    assert list(scores_verify()) == []


def test_explicit_field_change_rescores_fit(rules, django_capture_on_commit_callbacks):
    # Given a scored head of operations
    lead = LeadFactory()
    lead_score(lead_id=lead.pk, now=T0)
    assert Lead.objects.get(pk=lead.pk).fit_score == 30

    # When the job title is changed to one the rule does not like
    lead.job_title = "Intern"
    with django_capture_on_commit_callbacks(execute=True):
        lead_save_profile(lead=lead, changed_fields=["job_title"])

    # Then the title award is reversed and only the country still counts
    lead.refresh_from_db()
    assert (lead.fit_score, lead.score) == (10, 10)
    title = ScoreEntry.objects.get(rule=rules.title, reversal_of__isnull=True)
    assert title.reversals.get().points == -20.0
    assert title.reversals.get().reason.startswith("No longer applies")
    assert ledger_sum(lead) == 10


# --- Stages and signals -------------------------------------------------------------------


def score_with_capture(capture, lead: Lead, now: datetime) -> None:
    with capture(execute=True):
        lead_score(lead_id=lead.pk, now=now)


def test_upward_mql_crossing_moves_new_lead_to_mql_once(
    rules, received, django_capture_on_commit_callbacks
):
    # Given a new lead at 30 points (MQL from 50)
    lead = LeadFactory()
    score_with_capture(django_capture_on_commit_callbacks, lead, T0)
    assert sent(received, "lead_qualified") == []

    # When two pricing page views take it to 60
    record(
        lead,
        (ActivityType.PAGE_VIEW, T0 + timedelta(minutes=1)),
        (ActivityType.PAGE_VIEW, T0 + timedelta(minutes=2)),
    )
    score_with_capture(django_capture_on_commit_callbacks, lead, T0 + timedelta(minutes=3))

    # Then the system moves it to MQL and says why
    lead.refresh_from_db()
    assert (lead.score, lead.stage) == (60, Stage.MQL)
    (change,) = StageChange.objects.filter(lead=lead)
    assert (change.from_stage, change.to_stage, change.by) == (Stage.NEW, Stage.MQL, None)
    assert change.by_system
    assert change.reason == "Score 60 crossed the MQL threshold 50 in “Default”"
    qualified = sent(received, "lead_qualified")
    assert qualified == [
        {"lead_id": lead.pk, "model_id": rules.model.pk, "stage": Stage.MQL, "score": 60}
    ]

    # And scoring again, or more points below SQL, or a score dipping and rising, announce nothing
    score_with_capture(django_capture_on_commit_callbacks, lead, T0 + timedelta(minutes=4))
    record(lead, (ActivityType.EMAIL_BOUNCE, T0 + timedelta(minutes=5)))
    score_with_capture(django_capture_on_commit_callbacks, lead, T0 + timedelta(minutes=6))
    assert Lead.objects.get(pk=lead.pk).score == 35
    record(lead, (ActivityType.PAGE_VIEW, T0 + timedelta(days=1)))
    score_with_capture(django_capture_on_commit_callbacks, lead, T0 + timedelta(days=1, minutes=1))
    assert Lead.objects.get(pk=lead.pk).score == 50
    assert len(sent(received, "lead_qualified")) == 1
    assert StageChange.objects.filter(lead=lead).count() == 1


def test_sql_crossing_moves_mql_lead_to_sql(rules, received, django_capture_on_commit_callbacks):
    # Given an MQL lead at 60 points (SQL from 90)
    lead = LeadFactory()
    record(lead, *[(ActivityType.PAGE_VIEW, T0 - timedelta(minutes=m)) for m in (1, 2)])
    score_with_capture(django_capture_on_commit_callbacks, lead, T0)
    assert Lead.objects.get(pk=lead.pk).stage == Stage.MQL

    # When a demo request takes it to 100
    record(lead, (ActivityType.DEMO_REQUEST, T0 + timedelta(minutes=1)))
    score_with_capture(django_capture_on_commit_callbacks, lead, T0 + timedelta(minutes=2))

    # Then the system moves it on to SQL and announces it
    lead.refresh_from_db()
    assert (lead.score, lead.stage) == (100, Stage.SQL)
    latest = StageChange.objects.filter(lead=lead).first()
    assert (latest.from_stage, latest.to_stage, latest.by) == (Stage.MQL, Stage.SQL, None)
    assert latest.reason == "Score 100 crossed the SQL threshold 90 in “Default”"
    assert [q["stage"] for q in sent(received, "lead_qualified")] == [Stage.MQL, Stage.SQL]


def test_crossing_both_thresholds_at_once_moves_new_lead_straight_to_sql(
    rules, received, django_capture_on_commit_callbacks
):
    # Given a new lead that has not been scored
    lead = LeadFactory()

    # When two pricing views and a demo request are applied together (30 + 30 + 40)
    record(
        lead,
        (ActivityType.PAGE_VIEW, T0 - timedelta(minutes=3)),
        (ActivityType.PAGE_VIEW, T0 - timedelta(minutes=2)),
        (ActivityType.DEMO_REQUEST, T0 - timedelta(minutes=1)),
    )
    score_with_capture(django_capture_on_commit_callbacks, lead, T0)

    # Then it moves once, to SQL
    assert Lead.objects.get(pk=lead.pk).stage == Stage.SQL
    assert list(StageChange.objects.filter(lead=lead).values_list("to_stage", flat=True)) == [
        Stage.SQL
    ]
    assert [q["stage"] for q in sent(received, "lead_qualified")] == [Stage.SQL]


@pytest.mark.parametrize(
    ("stage", "activities"),
    [
        (Stage.OPPORTUNITY, 3),
        (Stage.CUSTOMER, 3),
        (Stage.SQL, 2),
        (Stage.DISQUALIFIED, 3),
    ],
)
def test_scoring_never_moves_a_lead_past_or_back_from_sales_stages(
    rules, received, django_capture_on_commit_callbacks, stage, activities
):
    # Given a lead sales already works on (or disqualified)
    reason = "Competitor" if stage == Stage.DISQUALIFIED else ""
    lead = LeadFactory(stage=stage, disqualification_reason=reason)

    # When its score crosses MQL (and with a demo request, SQL)
    specs = [(ActivityType.PAGE_VIEW, T0 - timedelta(minutes=m)) for m in (1, 2)]
    if activities == 3:
        specs.append((ActivityType.DEMO_REQUEST, T0 - timedelta(minutes=3)))
    record(lead, *specs)
    score_with_capture(django_capture_on_commit_callbacks, lead, T0)

    # Then the score changes but the stage does not, and nobody is told it qualified
    lead.refresh_from_db()
    assert lead.score >= 60
    assert lead.stage == stage
    assert not StageChange.objects.filter(lead=lead).exists()
    assert sent(received, "lead_qualified") == []


def test_band_changed_fires_only_when_the_band_changes(
    rules, received, django_capture_on_commit_callbacks
):
    # Given an unscored (cold) lead
    lead = LeadFactory()

    # When it is scored to 30 (warm), then to 45 (still warm), then to 85 (hot)
    score_with_capture(django_capture_on_commit_callbacks, lead, T0)
    record(lead, (ActivityType.PAGE_VIEW, T0 + timedelta(minutes=1)))
    score_with_capture(django_capture_on_commit_callbacks, lead, T0 + timedelta(minutes=2))
    record(lead, (ActivityType.DEMO_REQUEST, T0 + timedelta(minutes=3)))
    score_with_capture(django_capture_on_commit_callbacks, lead, T0 + timedelta(minutes=4))

    # Then exactly the two band changes were announced, with the new score
    changes = sent(received, "band_changed")
    assert [(c["old_band"], c["new_band"], c["score"]) for c in changes] == [
        ("cold", "warm", 30),
        ("warm", "hot", 85),
    ]
    assert {c["lead_id"] for c in changes} == {lead.pk}


def test_score_surged_fires_once_per_window(db, received, django_capture_on_commit_callbacks):
    # Given a model where 30 points within 24 hours is a surge, and +20 per webinar
    model = make_model(surge_points=30, surge_hours=24)
    engagement_rule(model, 20, ActivityType.WEBINAR_ATTENDANCE)
    lead = LeadFactory()
    webinar = ActivityType.WEBINAR_ATTENDANCE

    # When two webinars earn 40 points in two hours
    record(lead, (webinar, T0 - timedelta(hours=2)), (webinar, T0 - timedelta(hours=1)))
    score_with_capture(django_capture_on_commit_callbacks, lead, T0)
    # Then that is one surge
    assert [s["points"] for s in sent(received, "score_surged")] == [40]

    # When a third comes within the same window, and scoring runs again
    record(lead, (webinar, T0 + timedelta(hours=1)))
    score_with_capture(django_capture_on_commit_callbacks, lead, T0 + timedelta(hours=2))
    score_with_capture(django_capture_on_commit_callbacks, lead, T0 + timedelta(hours=3))
    # Then no second surge is announced
    assert len(sent(received, "score_surged")) == 1

    # When a new burst comes after the window has passed
    later = T0 + timedelta(hours=30)
    record(lead, (webinar, later - timedelta(hours=1)), (webinar, later - timedelta(minutes=30)))
    score_with_capture(django_capture_on_commit_callbacks, lead, later)
    # Then it is a new surge
    surges = sent(received, "score_surged")
    assert [(s["points"], s["hours"]) for s in surges] == [(40, 24), (40, 24)]
    assert LeadScore.objects.get(lead=lead).surged_at == later


def test_a_rescore_that_lifts_recent_points_over_the_surge_announces_it_once(
    db, received, django_capture_on_commit_callbacks
):
    # Given +10 per pricing page view, where 30 points within 24 hours is a surge, a lead
    # with two views in the last hours (20 points) and one whose views are days old
    model = make_model(surge_points=30, surge_hours=24)
    rule = engagement_rule(model, 10, ActivityType.PAGE_VIEW)
    now = timezone.now()
    recent, old = LeadFactory(), LeadFactory()
    hours = [timedelta(hours=3), timedelta(hours=2)]
    with django_capture_on_commit_callbacks(execute=True):
        record(recent, *[(ActivityType.PAGE_VIEW, now - ago) for ago in hours])
        record(old, *[(ActivityType.PAGE_VIEW, now - ago - timedelta(days=3)) for ago in hours])
    assert sent(received, "score_surged") == []

    # When the marketer doubles the rule's points and the model is rescored
    # (set-based on PostgreSQL, in batches elsewhere)
    rule.points = 20
    rule.save()

    def rescore():
        with django_capture_on_commit_callbacks(execute=True):
            job = rescore_job_start(model=model, reason="points doubled")
        job.refresh_from_db()
        assert job.status == RescoreStatus.DONE

    rescore()

    # Then the lead with 40 points in the window surged, once; the other did not
    assert [(s["lead_id"], s["points"], s["hours"]) for s in sent(received, "score_surged")] == [
        (recent.pk, 40, 24)
    ]
    assert LeadScore.objects.get(lead=recent).surged_at is not None
    assert LeadScore.objects.get(lead=old).surged_at is None

    # When the model is rescored again with nothing new, nothing more is announced
    rescore()
    assert len(sent(received, "score_surged")) == 1


def surge_switched_on_over_recent_points(capture) -> tuple[ScoringModel, Lead]:
    """A lead with 40 webinar points of the last hours, scored while the model had no
    surge, and the model's surge then set to 30 points within 24 hours."""
    model = make_model()
    engagement_rule(model, 20, ActivityType.WEBINAR_ATTENDANCE)
    lead = LeadFactory()
    now = timezone.now()
    with capture(execute=True):
        record(lead, *[(ActivityType.WEBINAR_ATTENDANCE, now - timedelta(hours=h)) for h in (3, 2)])
    model.surge_points, model.surge_hours = 30, 24
    model.save()
    return model, lead


def test_points_dated_before_the_window_do_not_make_a_surge(
    db, received, django_capture_on_commit_callbacks
):
    # Given 40 points within the surge window that were never announced (no surge then)
    model, lead = surge_switched_on_over_recent_points(django_capture_on_commit_callbacks)
    email_click = engagement_rule(model, 5, ActivityType.EMAIL_CLICK)

    # When an email click of three days ago arrives late and is scored
    with django_capture_on_commit_callbacks(execute=True):
        record(lead, (ActivityType.EMAIL_CLICK, timezone.now() - timedelta(days=3)))
    # Then it earned points, but nothing rose within the window: no surge
    assert ScoreEntry.objects.filter(lead=lead, rule=email_click).exists()
    assert sent(received, "score_surged") == []

    # When a click of the last hour arrives
    with django_capture_on_commit_callbacks(execute=True):
        record(lead, (ActivityType.EMAIL_CLICK, timezone.now() - timedelta(hours=1)))
    # Then the window's 45 points are a surge
    assert [s["points"] for s in sent(received, "score_surged")] == [45]


def test_a_rescore_over_old_activities_makes_no_surge(
    db, received, django_capture_on_commit_callbacks
):
    # Given 40 unannounced points within the window, and a click of four days ago that
    # no rule scored yet
    model, lead = surge_switched_on_over_recent_points(django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        record(lead, (ActivityType.EMAIL_CLICK, timezone.now() - timedelta(days=4)))

    # When a rule for clicks is added and the model rescored (set-based on PostgreSQL)
    engagement_rule(model, 5, ActivityType.EMAIL_CLICK)
    with django_capture_on_commit_callbacks(execute=True):
        job = rescore_job_start(model=model, reason="clicks count")
    job.refresh_from_db()
    assert job.status == RescoreStatus.DONE
    assert job.changed_entries == 1

    # Then the old click earned points but made no surge
    assert sent(received, "score_surged") == []
    assert LeadScore.objects.get(lead=lead).surged_at is None


# --- Manual adjustments -------------------------------------------------------------------


def test_manual_adjustment_is_in_the_ledger_with_the_user_and_reason(rules, marketer):
    # Given a scored lead at 30 points
    lead = LeadFactory()
    lead_score(lead_id=lead.pk, now=T0)

    # When the marketer adds 15 points by hand
    adjusted = leads_adjust_score(
        lead_ids=[lead.pk], points=15, reason="  Met at the trade fair ", by=marketer
    )

    # Then the ledger shows who and why, and the score includes it
    assert adjusted == 1
    entry = ScoreEntry.objects.get(lead=lead, kind=EntryKind.MANUAL)
    assert (entry.points, entry.by, entry.model_id) == (15.0, marketer, rules.model.pk)
    assert entry.reason == "Adjusted by marketer: Met at the trade fair"
    lead.refresh_from_db()
    assert (lead.score, lead.fit_score) == (45, 45)
    assert LeadScore.objects.get(lead=lead).adjustment == 15.0
    assert ledger_sum(lead) == 45
    assert list(scores_verify()) == []


@pytest.mark.parametrize(
    ("points", "reason", "message"),
    [(15, "", "Say why"), (15, "   ", "Say why"), (0, "Because", "non-zero")],
)
def test_manual_adjustment_refuses_without_reason_or_points(
    rules, marketer, points, reason, message
):
    # Given a scored lead
    lead = LeadFactory()
    lead_score(lead_id=lead.pk, now=T0)
    entries = ScoreEntry.objects.count()

    # When an adjustment without a reason (or without points) is asked for
    with pytest.raises(ValueError, match=message):
        leads_adjust_score(lead_ids=[lead.pk], points=points, reason=reason, by=marketer)

    # Then nothing is written and the score stays
    assert ScoreEntry.objects.count() == entries
    assert Lead.objects.get(pk=lead.pk).score == 30


# --- Decay, history, explanation ----------------------------------------------------------


def test_decay_moves_scores_down_as_the_formula_says(db):
    # Given a model with a 7-day half-life, and a lead with 30 fit and 60 engagement at T0
    model = make_model(decay_half_life_days=7)
    fit_rule(model, 30, "country", "equals", "DE")
    engagement_rule(model, 60, ActivityType.DEMO_REQUEST)
    lead = LeadFactory()
    other = LeadFactory(country="FR")
    record(lead, (ActivityType.DEMO_REQUEST, T0))
    lead_score(lead_id=lead.pk, now=T0)
    lead_score(lead_id=other.pk, now=T0)
    lead.refresh_from_db()
    assert (lead.score, lead.band) == (90, "hot")

    for days in (3.5, 7, 21):
        later = T0 + timedelta(days=days)

        # When the nightly decay runs at a later time
        updated = scores_decay(now=later)

        # Then engagement follows the decay formula and the score and band follow it
        lead.refresh_from_db()
        engagement = decayed(60.0, T0, later, 7)
        assert updated == 2
        assert lead.engagement_score == pytest.approx(engagement, abs=1e-6)
        assert lead.score == total_score(30, engagement, model.thresholds)
        assert lead.band == band_for(lead.score, model.thresholds)
        assert lead.engagement_at == later
        assert list(scores_verify(now=later)) == []
    assert lead.engagement_score == pytest.approx(7.5)
    assert Lead.objects.get(pk=other.pk).score == 0


def test_nightly_decay_announces_each_band_it_changes_once(
    db, received, django_capture_on_commit_callbacks
):
    # Given a 7-day half-life, a hot lead (30 fit + 60 engagement) and a lead that
    # stays cold whatever the decay does
    model = make_model(decay_half_life_days=7)
    fit_rule(model, 30, "country", "equals", "DE")
    engagement_rule(model, 60, ActivityType.DEMO_REQUEST)
    hot = LeadFactory()
    cold = LeadFactory(country="FR")
    record(hot, (ActivityType.DEMO_REQUEST, T0))
    for lead in (hot, cold):
        score_with_capture(django_capture_on_commit_callbacks, lead, T0)
    received.clear()

    # When the decay runs a week later (60 -> 30 engagement: score 60, warm)
    with django_capture_on_commit_callbacks(execute=True):
        updated = scores_decay(now=T0 + timedelta(days=7))

    # Then the change from hot to warm is announced, for that lead only, with the
    # range's changes at once
    assert updated == 2
    assert [(c["model_id"], c["changes"]) for c in sent(received, "bands_changed")] == [
        (model.pk, [(hot.pk, "hot", "warm", 60)])
    ]
    assert sent(received, "band_changed") == []
    assert Lead.objects.get(pk=hot.pk).band == "warm"

    # When it runs again the same night, nothing changes and nothing is announced
    with django_capture_on_commit_callbacks(execute=True):
        scores_decay(now=T0 + timedelta(days=7, minutes=5))
    assert len(sent(received, "bands_changed")) == 1


def test_decay_announces_nothing_if_its_transaction_rolls_back(
    db, received, django_capture_on_commit_callbacks
):
    model = make_model(decay_half_life_days=1)
    engagement_rule(model, 90, ActivityType.DEMO_REQUEST)
    lead = LeadFactory()
    record(lead, (ActivityType.DEMO_REQUEST, T0))
    lead_score(lead_id=lead.pk, now=T0)
    received.clear()

    def decay_then_fail() -> None:
        with transaction.atomic():
            scores_decay(now=T0 + timedelta(days=30))
            raise RuntimeError("the surrounding work failed")

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError, match="surrounding work"),
    ):
        decay_then_fail()

    assert callbacks == []
    assert sent(received, "bands_changed") == []
    assert Lead.objects.get(pk=lead.pk).band == "hot"


def test_decay_leaves_a_model_without_half_life_alone(rules):
    # Given a scored lead in a model without decay
    lead = LeadFactory()
    record(lead, (ActivityType.PAGE_VIEW, T0))
    lead_score(lead_id=lead.pk, now=T0)

    # When a year of decay runs
    scores_decay(now=T0 + timedelta(days=365))

    # Then nothing is lost
    lead.refresh_from_db()
    assert (lead.score, lead.engagement_score) == (45, 15.0)


def test_score_history_is_derived_from_the_ledger(db):
    # Given a decaying model and a lead whose activities came over ten days
    model = make_model(decay_half_life_days=14)
    fit_rule(model, 20, "job_title", "contains", "head")
    engagement_rule(model, 10, ActivityType.PAGE_VIEW)
    engagement_rule(model, 40, ActivityType.DEMO_REQUEST)
    lead = LeadFactory()
    record(
        lead,
        (ActivityType.PAGE_VIEW, T0 - timedelta(days=10)),
        (ActivityType.PAGE_VIEW, T0 - timedelta(days=5)),
        (ActivityType.DEMO_REQUEST, T0 - timedelta(hours=1)),
    )
    lead_score(lead_id=lead.pk, now=T0)
    lead.refresh_from_db()

    # When its history is drawn
    history = score_history(lead=lead, model=model, points=12, now=T0)

    # Then it starts at the first ledger entry, low, and ends at the current score
    assert len(history) == 12
    assert history[0] == {"at": (T0 - timedelta(days=10)).isoformat(), "score": 10}
    assert history[-1] == {"at": T0.isoformat(), "score": lead.score}
    assert lead.score == round(
        20 + 10 * 0.5 ** (10 / 14) + 10 * 0.5 ** (5 / 14) + 40 * 0.5 ** (1 / 24 / 14)
    )
    assert all(point["score"] <= lead.score for point in history)


def test_explanation_groups_positive_and_negative_rules(rules, marketer):
    # Given a lead with two pricing views, a bounce and a manual deduction
    lead = LeadFactory()
    record(
        lead,
        (ActivityType.PAGE_VIEW, T0 - timedelta(hours=3)),
        (ActivityType.PAGE_VIEW, T0 - timedelta(hours=2)),
        (ActivityType.EMAIL_BOUNCE, T0 - timedelta(hours=1)),
    )
    lead_score(lead_id=lead.pk, now=T0)
    leads_adjust_score(lead_ids=[lead.pk], points=-5, reason="Student", by=marketer)
    lead.refresh_from_db()

    # When the score is explained
    explanation = lead_explanation(lead=lead, now=T0 + timedelta(minutes=1))

    # Then each rule appears once with how often it counted, sorted by weight, split by sign
    (model,) = explanation["models"]
    assert explanation["score"] == lead.score == 30 + 30 - 25 - 5
    assert model["score"] == lead.score
    assert [(line["reason"], line["times"], line["value_now"]) for line in model["positive"]] == [
        ("+15 when a page view URL contains /pricing, at most twice a day", 2, 30.0),
        ("+20 when job title contains head", 1, 20.0),
        ("+10 when country is DE", 1, 10.0),
    ]
    assert [(line["reason"], line["times"], line["value_now"]) for line in model["negative"]] == [
        ("-25 when an email bounce", 1, -25.0),
        ("Adjusted by marketer: Student", 1, -5.0),
    ]


# --- Sweeper, segments, verification ------------------------------------------------------


def test_sweeper_requeues_leads_whose_activities_were_never_scored(rules):
    # Given activities stored without their scoring message (a lost message), a minute ago,
    # and one that arrived just now and is still on its way
    lost, fresh = LeadFactory(), LeadFactory()
    now = timezone.now()
    Activity.objects.bulk_create(
        [
            Activity(
                lead=lost,
                type=ActivityType.PAGE_VIEW,
                url=PRICING,
                occurred_at=now - timedelta(minutes=2),
                received_at=now - timedelta(minutes=1),
            ),
            Activity(lead=fresh, type=ActivityType.DEMO_REQUEST, occurred_at=now, received_at=now),
        ]
    )

    # When the sweeper runs
    requeued = sweep_unscored.delay().get()

    # Then only the lost lead is re-queued; its task applies its activity and, in the
    # same batch, the fresh one that was still waiting
    assert requeued == 1
    lost.refresh_from_db()
    assert lost.score == 45
    assert not Activity.objects.unscored().exists()
    assert Lead.objects.get(pk=fresh.pk).score > 0


def test_lead_in_two_segments_has_two_scores_and_the_higher_priority_is_primary(db):
    # Given two product-line models, the analytics one with the higher priority
    analytics = ProductLine.objects.create(name="Analytics", slug="analytics")
    billing = ProductLine.objects.create(name="Billing", slug="billing")
    high = make_model("Analytics leads", is_default=False, priority=200)
    low = make_model("Billing leads", is_default=False, priority=150)
    high.segment_product_lines.set([analytics])
    low.segment_product_lines.set([billing])
    fit_rule(high, 25, "country", "equals", "DE")
    fit_rule(low, 70, "country", "equals", "DE")
    both, billing_only = LeadFactory(), LeadFactory()
    both.product_interests.set([analytics, billing])
    billing_only.product_interests.set([billing])

    # When the leads are scored
    lead_score(lead_id=both.pk, now=T0)
    lead_score(lead_id=billing_only.pk, now=T0)

    # Then the lead in both segments has a score in each, the analytics one shown on the lead
    rows = {row.model_id: row for row in LeadScore.objects.filter(lead=both)}
    assert set(rows) == {high.pk, low.pk}
    assert (rows[high.pk].score, rows[high.pk].is_primary) == (25, True)
    assert (rows[low.pk].score, rows[low.pk].is_primary) == (70, False)
    assert Lead.objects.get(pk=both.pk).score == 25
    # And the other lead has only the billing score, which is its primary
    only = LeadScore.objects.get(lead=billing_only)
    assert (only.model_id, only.is_primary) == (low.pk, True)
    assert Lead.objects.get(pk=billing_only.pk).score == 70
    assert list(scores_verify(now=T0)) == []


def test_verify_finds_a_corrupted_score_and_nothing_when_clean(rules):
    # Given scored leads
    leads = [LeadFactory(), LeadFactory()]
    record(leads[0], (ActivityType.PAGE_VIEW, T0))
    for lead in leads:
        lead_score(lead_id=lead.pk, now=T0)
    assert list(scores_verify(now=T0)) == []

    # When one stored score is overwritten behind the engine's back
    Lead.objects.filter(pk=leads[0].pk).update(score=99)

    # Then verification names that lead and what it expected
    (difference,) = scores_verify(now=T0)
    assert difference.lead_id == leads[0].pk
    assert difference.stored[0] == 99
    assert difference.expected[0] == 45


def test_verify_finds_an_award_the_ledger_is_missing(rules):
    # Given a scored lead whose award entry is lost
    lead = LeadFactory()
    record(lead, (ActivityType.PAGE_VIEW, T0))
    lead_score(lead_id=lead.pk, now=T0)
    ScoreEntry.objects.filter(lead=lead, rule=rules.pricing).delete()

    # When the scores are verified, then the missing award is reported
    differences = list(scores_verify(now=T0))
    assert [d.stored for d in differences if d.what.startswith("ledger")] == [
        "missing or stale awards"
    ]


def test_scoring_verify_command_fails_on_a_corrupted_score_and_passes_when_clean(rules):
    # Given a lead scored just now
    lead = LeadFactory()
    record(lead, (ActivityType.PAGE_VIEW, timezone.now() - timedelta(minutes=1)))
    lead_score(lead_id=lead.pk)

    # When the check runs on clean scores, then it succeeds (manage.py exits 0)
    out = StringIO()
    call_command("scoring_verify", stdout=out)
    assert "Every stored score matches" in out.getvalue()

    # When a stored score is corrupted, then it fails with status 1 and names the lead
    Lead.objects.filter(pk=lead.pk).update(score=7)
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("scoring_verify", stdout=out)
    assert failed.value.returncode == 1
    assert f"lead {lead.pk}: materialized score" in out.getvalue()


def test_rescore_command_rescores_the_model_here_and_records_the_job(rules):
    # Given a scored lead, and a rule whose points changed behind scoring's back
    lead = LeadFactory()
    record(lead, (ActivityType.DEMO_REQUEST, timezone.now() - timedelta(minutes=1)))
    lead_score(lead_id=lead.pk)
    before = Lead.objects.get(pk=lead.pk).score
    Rule.objects.filter(pk=rules.demo.pk).update(points=50)

    # When the command rescores the model
    out = StringIO()
    call_command("rescore", "--model", rules.model.name, stdout=out)

    # Then it ran in this process as a recorded job, and the lead has the new points
    job = RescoreJob.objects.get()
    assert (job.status, job.reason, job.done) == (RescoreStatus.DONE, "rescore command", 1)
    assert f"{rules.model}: 1 leads rescored" in out.getvalue()
    assert Lead.objects.get(pk=lead.pk).score == before + 10
    assert list(scores_verify()) == []


# --- Scoring that waits for a lead's lock -------------------------------------------------


def while_lead_is_locked(
    lead: Lead, contender, *, scored: Lead | None = None
) -> list[BaseException]:
    """Start ``contender`` in a thread while this thread holds the lead's row lock; while it
    waits, a page view arrives for ``scored`` (the same lead unless given) and is scored
    here; then let the contender through."""
    scored = scored or lead
    errors: list[BaseException] = []

    def run() -> None:
        try:
            contender()
        except BaseException as exc:  # asserted on by the test
            errors.append(exc)
        finally:
            connections.close_all()

    with transaction.atomic():
        Lead.objects.select_for_update().get(pk=lead.pk)
        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.5)  # the contender has taken its "now" and waits for the lock
        Activity.objects.create(lead=scored, type=ActivityType.PAGE_VIEW, url=PRICING)
        lead_score(lead_id=scored.pk)
    thread.join(30)
    assert not thread.is_alive()
    return errors


@pytest.mark.django_db(transaction=True)
def test_scoring_that_waited_for_the_lock_keeps_what_was_scored_meanwhile(rules):
    # Given a scored lead
    lead = LeadFactory()
    lead_score(lead_id=lead.pk)

    # When a scoring run waits for the lead while a page view arrives and is scored
    errors = while_lead_is_locked(lead, lambda: lead_score(lead_id=lead.pk))

    # Then the waiting run does not take the page view back
    assert errors == []
    assert Lead.objects.get(pk=lead.pk).score == 45
    assert not ScoreEntry.objects.filter(lead=lead, reversal_of__isnull=False).exists()
    assert list(scores_verify()) == []


@pytest.mark.django_db(transaction=True)
def test_rescore_that_waited_for_the_lock_keeps_what_was_scored_meanwhile(rules):
    # Given a scored lead and a rescore job about to run
    lead = LeadFactory()
    lead_score(lead_id=lead.pk)
    job = RescoreJob.objects.create(model=rules.model, reason="nightly check")

    # When the job waits for the lead while a page view arrives and is scored
    errors = while_lead_is_locked(lead, lambda: rescore_job_run(job_id=job.pk))

    # Then the job does not take the page view back
    assert errors == []
    assert RescoreJob.objects.get(pk=job.pk).status == RescoreStatus.DONE
    assert Lead.objects.get(pk=lead.pk).score == 45
    assert not ScoreEntry.objects.filter(lead=lead, reversal_of__isnull=False).exists()
    assert list(scores_verify()) == []


@pytest.mark.django_db(transaction=True)
def test_adjustment_that_waited_for_the_lock_keeps_what_was_scored_meanwhile(rules, marketer):
    # Given a scored lead
    lead = LeadFactory()
    lead_score(lead_id=lead.pk)

    # When a manual adjustment waits for the lead while a page view arrives and is scored
    def adjust() -> None:
        leads_adjust_score(lead_ids=[lead.pk], points=5, reason="Met at the fair", by=marketer)

    errors = while_lead_is_locked(lead, adjust)

    # Then the adjustment adds its points and does not take the page view back
    assert errors == []
    assert Lead.objects.get(pk=lead.pk).score == 30 + 15 + 5
    assert not ScoreEntry.objects.filter(lead=lead, reversal_of__isnull=False).exists()
    assert list(scores_verify()) == []


@pytest.mark.django_db(transaction=True)
def test_decay_that_waited_for_the_lock_keeps_what_was_scored_meanwhile(rules):
    # Given a scored lead (30 fit, no engagement yet)
    lead = LeadFactory()
    lead_score(lead_id=lead.pk)

    # When the nightly decay waits for the lead while a page view arrives and is scored
    errors = while_lead_is_locked(lead, scores_decay)

    # Then the decay carries the new engagement forward instead of writing the old one
    assert errors == []
    assert Lead.objects.get(pk=lead.pk).score == 45
    assert list(scores_verify()) == []


@pytest.mark.django_db(transaction=True)
def test_decay_holds_no_lead_beyond_its_own_range(rules, settings):
    # Given three scored leads and decay ranges of one lead
    settings.SCORING_DECAY_RANGE = 1
    first, second, third = (LeadFactory() for _ in range(3))
    for lead in (first, second, third):
        lead_score(lead_id=lead.pk)

    # When the decay, through the first two ranges, waits for the last lead's lock while
    # the first lead is scored again (a decay holding it would deadlock with this)
    errors = while_lead_is_locked(third, scores_decay, scored=first)

    # Then the first lead was free, and its new points stand
    assert errors == []
    assert Lead.objects.get(pk=first.pk).score == 45
    assert list(scores_verify()) == []


def test_leads_that_leave_a_models_segment_fall_back_to_the_default_model(
    db, django_capture_on_commit_callbacks
):
    # Given a default model and a higher-priority analytics model, and two analytics leads:
    # one the analytics model awards points, one it awards nothing
    analytics = ProductLine.objects.create(name="Analytics", slug="analytics")
    default = make_model("Default", priority=100)
    fit_rule(default, 10, "country", "equals", "DE")
    segment = make_model("Analytics leads", is_default=False, priority=200)
    segment.segment_product_lines.set([analytics])
    fit_rule(segment, 40, "job_title", "contains", "head")
    awarded, unawarded = LeadFactory(), LeadFactory(job_title="Intern")
    for lead in (awarded, unawarded):
        lead.product_interests.set([analytics])
        lead_score(lead_id=lead.pk)
    assert Lead.objects.get(pk=awarded.pk).score == 40
    assert Lead.objects.get(pk=unawarded.pk).score == 0

    # When the marketer takes analytics out of the model's segment and rescores it
    segment.segment_product_lines.clear()
    segment.save()
    with django_capture_on_commit_callbacks(execute=True):
        rescore_job_start(model=segment, reason="Segment changed")

    # Then both leads are scored by the default model alone
    for lead in (awarded, unawarded):
        (row,) = LeadScore.objects.filter(lead=lead, is_primary=True)
        assert row.model_id == default.pk
        assert Lead.objects.get(pk=lead.pk).score == 10
    assert list(scores_verify()) == []

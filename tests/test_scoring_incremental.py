"""Real-time scoring in O(new events): the drain's fast path (``scoring.incremental``)
writes what a full rescore writes, reads no more for a long history than for a short one,
and hands every lead it cannot score exactly to the full path.

Most tests run on a clock they move (``timezone.now``): decay makes the score depend on
the instant, and the fast path and a full rescore are compared at the same one.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leads.activities import activities_record, activities_record_many
from leads.models import Activity, ActivityType, Company, Lead, Stage
from leads.profiles import lead_save_profile
from scoring import signals
from scoring.adjustments import leads_adjust_score
from scoring.changes import rule_save, rule_snapshot
from scoring.incremental import Fallback
from scoring.lead_scoring import lead_score
from scoring.models import (
    LeadScore,
    ModelStatus,
    Rule,
    RuleKind,
    ScoreEntry,
    ScoringModel,
)
from scoring.ruleset import load_ruleset
from scoring.score_formula import decayed, round_half_up
from scoring.tasks import score_lead
from scoring.verification import scores_verify
from tests.factories import CompanyFactory, LeadFactory
from tests.tracking_client import send

SITE = "https://hotlist.example"


class Clock:
    """``timezone.now`` for the code under test: the instant the test says it is."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def tick(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock(timezone.now().replace(microsecond=0) + timedelta(hours=1))
    monkeypatch.setattr(timezone, "now", clock)
    return clock


@pytest.fixture
def fallbacks(caplog) -> Callable[[], list[str]]:
    """The reasons the fast path gave, so far, for each lead it left to the full path."""
    caplog.set_level(logging.DEBUG, logger="scoring.incremental")

    def reasons() -> list[str]:
        return [
            r.getMessage().partition(": ")[2]
            for r in caplog.records
            if r.name == "scoring.incremental"
        ]

    return reasons


def rule(model: ScoringModel, points: int, activity_type: str, **fields) -> Rule:
    return Rule.objects.create(
        model=model,
        name=f"{activity_type} {points} {fields.get('pattern', '')}",
        kind=RuleKind.ENGAGEMENT,
        points=points,
        activity_type=activity_type,
        **fields,
    )


def standard_model(**fields) -> ScoringModel:
    """A decaying model with every kind of cap: the starter model's engagement rules."""
    values = {"name": "Default", "status": ModelStatus.ACTIVE, "is_default": True}
    model = ScoringModel.objects.create(**{**values, "decay_half_life_days": 30, **fields})
    Rule.objects.create(
        model=model,
        name="Head of",
        kind=RuleKind.FIT,
        points=20,
        field="job_title",
        operator="contains",
        value="head",
    )
    page = {"activity_type": ActivityType.PAGE_VIEW, "target": "url"}
    rule(model, 25, **page, pattern="/pricing", max_per_day=1)
    rule(model, 5, **page, pattern="/features", max_per_day=1, bonus_count=3, bonus_points=10)
    rule(model, -10, **page, pattern="/careers", max_per_lead=3)
    rule(model, 1, ActivityType.EMAIL_OPEN, max_per_day=1, max_per_lead=10)
    rule(model, 10, ActivityType.FORM_SUBMISSION, recency_days=7)
    rule(model, 40, ActivityType.DEMO_REQUEST)
    return model


PAGES = ["/", "/pricing", "/features", "/careers", "/blog"]
TYPES = [ActivityType.PAGE_VIEW] * 4 + [ActivityType.EMAIL_OPEN, ActivityType.FORM_SUBMISSION]


def history(lead: Lead, size: int, until: datetime, *, seed: int = 1) -> None:
    """``size`` activities over the 60 days before ``until`` (the day before it spared),
    recorded and scored in full."""
    rng = random.Random(seed)
    rows = []
    for _ in range(size):
        type_ = rng.choice(TYPES)
        url = SITE + rng.choice(PAGES) if type_ == ActivityType.PAGE_VIEW else ""
        at = until - timedelta(days=1, minutes=rng.randrange(1, 59 * 1440))
        rows.append(Activity(lead=lead, type=type_, url=url, occurred_at=at))
    Activity.objects.bulk_create(rows, batch_size=1000)
    lead_score(lead_id=lead.pk)


def visit(lead: Lead, path: str, at: datetime | None = None, **fields) -> None:
    """A page view recorded through the service; scored by the drain when it commits."""
    activity = Activity(type=ActivityType.PAGE_VIEW, url=SITE + path, **fields)
    activity.occurred_at = at or timezone.now()
    activities_record(lead=lead, activities=[activity])


def event(lead: Lead, type_: str, at: datetime | None = None) -> None:
    activity = Activity(type=type_, occurred_at=at or timezone.now())
    activities_record(lead=lead, activities=[activity])


def ledger(lead: Lead) -> set[tuple]:
    """The lead's active entries as the full path would write them (a fit award is dated
    when it was given, so its time is left out)."""
    return {
        (rule_id, activity_id, bonus, points, reason, at if kind == "engagement" else None)
        for rule_id, activity_id, bonus, points, reason, at, kind in ScoreEntry.objects.filter(
            lead=lead, kind__in=["fit", "engagement"], reversal_of__isnull=True
        )
        .exclude(reversals__isnull=False)
        .values_list("rule_id", "activity_id", "bonus", "points", "reason", "at", "kind")
    }


def state(lead: Lead) -> tuple:
    lead.refresh_from_db()
    row = LeadScore.objects.get(lead=lead, is_primary=True)
    carried = decayed(row.engagement, row.engagement_at, timezone.now(), 30)
    return (
        lead.score,
        lead.fit_score,
        lead.band,
        lead.grade,
        lead.quadrant,
        row.last_engaged_at,
        round(carried, 6),
    )


def rescored_in_full(lead: Lead) -> tuple[set[tuple], tuple]:
    """The ledger and state a full rescore gives the lead from nothing, now."""
    ScoreEntry.objects.filter(lead=lead).delete()
    LeadScore.objects.filter(lead=lead).delete()
    lead_score(lead_id=lead.pk)
    return ledger(lead), state(lead)


# --- The fast path writes what the full path writes ---------------------------------------


def test_events_from_the_tracking_api_and_the_service_score_as_a_full_rescore_would(
    client, default_events, clock, fallbacks, django_capture_on_commit_callbacks
):
    # Given a decaying model with caps, a bonus and a window, and a lead with a long
    # history, identified through the tracking API
    from leads.models import TrackingKey

    standard_model()
    _, key = TrackingKey.objects.issue(name="Website")
    identify = {"userId": "u-1", "traits": {"email": "ada@fleet.example", "title": "Head of IT"}}
    with django_capture_on_commit_callbacks(execute=True):
        assert send(client, "identify", identify, key=key).status_code == 200
    lead = Lead.objects.get()
    history(lead, 300, clock.at)

    # When page views arrive through the tracking API and opens and a form through the
    # service, an hour or two apart, each scored by the score_lead task as it commits
    for path in ["/features", "/pricing", "/features", "/careers", "/features", "/pricing"]:
        clock.tick(minutes=70)
        page = {"userId": "u-1", "properties": {"url": SITE + path}}
        with django_capture_on_commit_callbacks(execute=True):
            assert send(client, "page", page, key=key).status_code == 200
    for type_ in [ActivityType.EMAIL_OPEN, ActivityType.FORM_SUBMISSION, ActivityType.EMAIL_OPEN]:
        clock.tick(hours=2)
        with django_capture_on_commit_callbacks(execute=True):
            event(lead, type_)
    fast = ledger(lead), state(lead)

    # Then each took the fast path, and a full rescore at the same instant gives the
    # same active entries (reasons and times included) and the same scores
    assert fallbacks() == []
    assert not Activity.objects.unscored().exists()
    assert fast == rescored_in_full(lead)
    assert list(scores_verify()) == []


def test_awards_that_leave_a_recency_window_are_reversed_as_the_full_path_reverses_them(
    db, clock, fallbacks, django_capture_on_commit_callbacks
):
    # Given a form submission worth 10 points for 7 days, and a lead that sent one
    standard_model()
    lead = LeadFactory(job_title="Head of IT")
    lead_score(lead_id=lead.pk)
    with django_capture_on_commit_callbacks(execute=True):
        event(lead, ActivityType.FORM_SUBMISSION)
    form_award = ScoreEntry.objects.get(lead=lead, kind="engagement")

    # When, eight days later, the lead views the pricing page
    clock.tick(days=8)
    with django_capture_on_commit_callbacks(execute=True):
        visit(lead, "/pricing")

    # Then the fast path reversed the form's award, worth what it is worth now, and gave
    # the view its points, as a full rescore would
    assert fallbacks() == []
    reversal = ScoreEntry.objects.get(reversal_of=form_award)
    assert reversal.reason == f"No longer applies: reverses entry {form_award.pk}"
    assert reversal.points == pytest.approx(-10 * 0.5 ** (8 / 30))
    assert list(scores_verify()) == []
    assert (ledger(lead), state(lead)) == rescored_in_full(lead)


def test_a_window_partner_that_leaves_the_recency_range_takes_its_award_back(
    db, clock, fallbacks, django_capture_on_commit_callbacks
):
    # Given a rule worth 13 points for a page view within 2 days that is the second in a
    # day, and a lead whose two views an hour apart earned it once, as they came
    model = ScoringModel.objects.create(
        name="Windows", status=ModelStatus.ACTIVE, is_default=True, decay_half_life_days=30
    )
    rule(model, 13, ActivityType.PAGE_VIEW, recency_days=2, window_days=1, window_min=2)
    lead = LeadFactory()
    lead_score(lead_id=lead.pk)
    with django_capture_on_commit_callbacks(execute=True):
        visit(lead, "/")
    clock.tick(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        visit(lead, "/blog")
    assert ScoreEntry.objects.filter(lead=lead, kind="engagement").count() == 1

    # When, two days and half an hour after the first view, an activity no rule reads
    # comes in: the first view has left the 2 days, the second has not
    clock.tick(days=2, minutes=-30)
    with django_capture_on_commit_callbacks(execute=True):
        event(lead, ActivityType.CUSTOM)

    # Then the second view's award is reversed, as a full rescore finds: its window no
    # longer holds two views
    assert fallbacks()[-1:] == [Fallback.WINDOW_MOVED]
    assert list(scores_verify()) == []
    assert (ledger(lead), state(lead)) == rescored_in_full(lead)
    assert ledger(lead) == set()


def test_a_surge_is_announced_once_by_the_fast_path(
    db, clock, fallbacks, django_capture_on_commit_callbacks
):
    # Given a model that calls 60 points within a day a surge, and a lead that earned 25
    standard_model(surge_points=60, surge_hours=24)
    lead = LeadFactory(job_title="Head of IT")
    lead_score(lead_id=lead.pk)
    with django_capture_on_commit_callbacks(execute=True):
        visit(lead, "/pricing")
    surges = []

    def heard(sender, lead_id, points, **kwargs):
        surges.append((lead_id, points))

    signals.score_surged.connect(heard, weak=False)
    try:
        # When a demo request (40) and, later that day, another one arrive
        for hours in (3, 2):
            clock.tick(hours=hours)
            with django_capture_on_commit_callbacks(execute=True):
                event(lead, ActivityType.DEMO_REQUEST)
    finally:
        signals.score_surged.disconnect(heard)

    # Then the first made a surge of the window's 65 points, announced once
    assert fallbacks() == []
    assert surges == [(lead.pk, 65.0)]
    assert LeadScore.objects.get(lead=lead).surged_at == clock.at - timedelta(hours=2)


def test_a_drain_of_many_leads_scores_each_by_the_path_it_needs(
    db, clock, fallbacks, django_capture_on_commit_callbacks
):
    # Given three scored leads, one of whose job title changed (its rescore still queued)
    standard_model()
    leads = [LeadFactory(job_title="Head of IT") for _ in range(3)]
    for lead in leads:
        history(lead, 40, clock.at, seed=lead.pk)
    leads[1].job_title = "Intern"
    lead_save_profile(lead=leads[1], changed_fields=["job_title"])

    # When a batch of page views for all three is stored and drained at once
    clock.tick(minutes=5)
    views = [
        Activity(lead_id=lead.pk, type=ActivityType.PAGE_VIEW, url=SITE + "/pricing")
        for lead in leads
    ]
    for view in views:
        view.occurred_at = clock.at
    with django_capture_on_commit_callbacks(execute=True):
        activities_record_many(activities=views)

    # Then the changed lead was scored in full (its fit drops) and the others by the fast
    # path, and every score checks out
    assert fallbacks() == [Fallback.PROFILE_CHANGED]
    assert list(scores_verify()) == []
    assert [LeadScore.objects.get(lead=lead).fit for lead in leads] == [20, 0, 20]


# --- The fast path reads no more for a long history -----------------------------------------

READS = """
    SELECT relname, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
    FROM pg_stat_xact_user_tables WHERE relname IN ('leads_activity', 'scoring_scoreentry')
"""


def rows_read(action) -> tuple[int, int]:
    """The queries ``action`` runs and the rows it reads from the activity and ledger
    tables (PostgreSQL's counters of the current transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(READS)
        before = dict(cursor.fetchall())
        with CaptureQueriesContext(connection) as queries:
            action()
        cursor.execute(READS)
        after = dict(cursor.fetchall())
    return len(queries), sum(after[name] - before.get(name, 0) for name in after)


@pytest.mark.postgres
def test_scoring_a_new_activity_reads_as_little_for_2000_activities_of_history_as_for_10(db):
    # Given two leads, one with 10 activities of history, one with 2,000, scored (with
    # sales already: no threshold moves a stage)
    standard_model()
    start = timezone.now()
    short, long = (LeadFactory(job_title="Head of IT", stage=Stage.SQL) for _ in range(2))
    history(short, 10, start)
    history(long, 2000, start)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE leads_activity; ANALYZE scoring_scoreentry")
        # On tables this small the planner may scan one whole rather than use an index,
        # depending on statistics earlier tests left; at scale it takes the index. What
        # is measured is that the statements can be answered from the index alone.
        cursor.execute("SET LOCAL enable_seqscan = off")

    # When each views the pricing and features pages and the score_lead task drains them
    def score_new_views(lead: Lead):
        for path in ("/pricing", "/features"):
            visit(lead, path, at=timezone.now())
        load_ruleset()  # the cached rules, as a busy worker has them
        return rows_read(lambda: score_lead(lead.pk, pending_only=True))

    short_queries, short_rows = score_new_views(short)
    long_queries, long_rows = score_new_views(long)

    # Then both ran the same queries and read a handful of rows, however long the history
    assert long_queries == short_queries
    assert long_rows <= short_rows + 10
    assert long_rows < 40
    # While the full path reads the whole history
    visit(long, "/pricing", at=timezone.now())
    _, full_rows = rows_read(lambda: lead_score(lead_id=long.pk))
    assert full_rows > 2000


# --- Every lead it cannot score exactly goes to the full path -----------------------------


def test_a_score_on_a_rounding_edge_is_decided_by_the_full_sum(
    db, clock, fallbacks, django_capture_on_commit_callbacks
):
    # Given a model with a one-day half-life and 3 points a page view, and a lead that
    # earned them, its score rewritten 387 minutes later (3 x 0.83 = 2.49 rounds to 2)
    model = ScoringModel.objects.create(
        name="Edge", status=ModelStatus.ACTIVE, is_default=True, decay_half_life_days=1
    )
    rule(model, 3, ActivityType.PAGE_VIEW)
    lead = LeadFactory(job_title="")
    lead_score(lead_id=lead.pk)
    with django_capture_on_commit_callbacks(execute=True):
        visit(lead, "/")
    clock.tick(minutes=387)
    with django_capture_on_commit_callbacks(execute=True):
        event(lead, ActivityType.NOTE)
    stored = LeadScore.objects.get(lead=lead)
    assert (stored.score, stored.engagement_at) == (2, clock.at)

    # When the lead is scored again exactly one half-life after the points: 1.5, which
    # rounds to 2, while carried forward from the stored 2.49 it would round to 1
    clock.tick(minutes=1440 - 387)
    carried = decayed(stored.engagement, stored.engagement_at, clock.at, 1)
    assert round_half_up(carried) == 1
    with django_capture_on_commit_callbacks(execute=True):
        event(lead, ActivityType.NOTE)

    # Then the full sum decided it
    assert fallbacks() == [Fallback.ROUNDING_EDGE]
    lead.refresh_from_db()
    assert lead.score == 2
    assert list(scores_verify()) == []


def _profile_changed(lead: Lead, clock: Clock) -> None:
    lead.job_title = "Intern"
    lead_save_profile(lead=lead, changed_fields=["job_title"])


def _rescore_queued(lead: Lead, clock: Clock) -> None:
    # The pricing page is worth more from now on; the rule's rescore is queued.
    pricing = Rule.objects.get(pattern="/pricing")
    before = rule_snapshot(rule=pricing)
    pricing.points = 30
    clock.tick(seconds=1)
    pricing.save()
    assert rule_save(rule=pricing, before=before, by=None)


def _score_row_missing(lead: Lead, clock: Clock) -> None:
    LeadScore.objects.filter(lead=lead).delete()


def _decay_changed(lead: Lead, clock: Clock) -> None:
    model = ScoringModel.objects.get()
    model.decay_half_life_days = 7
    clock.tick(seconds=1)
    model.save()  # a new decay version, whose rescore was not queued


def _scored_ahead(lead: Lead, clock: Clock) -> None:
    # By a worker whose clock ran two days ahead: its engagement decayed to then.
    row = LeadScore.objects.get(lead=lead)
    ahead = clock.at + timedelta(days=2)
    row.engagement = decayed(row.engagement, row.engagement_at, ahead, 30)
    row.engagement_at = ahead
    row.save(update_fields=["engagement", "engagement_at"])


def _company_grew(lead: Lead, clock: Clock) -> None:
    # A rule on the company's size, given while it was small; the company grows (a change
    # to a company rescores none of its leads).
    Rule.objects.create(
        model=ScoringModel.objects.get(),
        name="Big company",
        kind=RuleKind.FIT,
        points=15,
        field="company.employee_count",
        operator="gte",
        value="500",
    )
    lead_score(lead_id=lead.pk)
    Company.objects.filter(pk=lead.company_id).update(employee_count=1000)


def _awarded_but_unscored(lead: Lead, clock: Clock) -> None:
    Activity.objects.filter(lead=lead).update(scored_at=None)


def _ahead_then_due(lead: Lead, clock: Clock) -> None:
    visit(lead, "/pricing", at=clock.at + timedelta(hours=1))
    lead_score(lead_id=lead.pk)
    clock.tick(hours=2)


def _features_late(lead: Lead, clock: Clock) -> None:
    for _ in range(2):
        clock.tick(minutes=1)
        visit(lead, "/features")
    lead_score(lead_id=lead.pk)


def _window_let_go(lead: Lead, clock: Clock) -> None:
    model = ScoringModel.objects.get()
    rule(model, 3, ActivityType.EMAIL_CLICK, max_per_day=1, recency_days=2)
    event(lead, ActivityType.EMAIL_CLICK, at=clock.at - timedelta(days=1))
    lead_score(lead_id=lead.pk)
    clock.tick(days=1, hours=1)


def _last_engagement_left(lead: Lead, clock: Clock) -> None:
    # Its one engagement, a form (worth points for seven days), is over a week old.
    event(lead, ActivityType.FORM_SUBMISSION, at=clock.at)
    lead_score(lead_id=lead.pk)
    clock.tick(days=7, hours=1)


# What each fallback guards against, the page then viewed, and whether the lead has a
# history before that.
FALLBACKS = {
    Fallback.PROFILE_CHANGED: (_profile_changed, "/pricing", True),
    Fallback.RESCORE_PENDING: (_rescore_queued, "/pricing", True),
    Fallback.MODELS_CHANGED: (_score_row_missing, "/pricing", True),
    Fallback.DECAY_CHANGED: (_decay_changed, "/pricing", True),
    Fallback.SCORE_AHEAD: (_scored_ahead, "/pricing", True),
    Fallback.FIT_CHANGED: (_company_grew, "/pricing", True),
    Fallback.ALREADY_AWARDED: (_awarded_but_unscored, "/pricing", True),
    Fallback.DUE_ACTIVITY: (_ahead_then_due, "/blog", True),
    Fallback.LATE_ACTIVITY: (_features_late, "/features", True),
    Fallback.WINDOW_MOVED: (_window_let_go, "/blog", True),
    Fallback.LAST_ENGAGEMENT_LEFT: (_last_engagement_left, "/blog", False),
}


@pytest.mark.parametrize("why", list(FALLBACKS), ids=[f.name for f in FALLBACKS])
def test_a_lead_the_fast_path_cannot_score_exactly_is_scored_in_full(
    db, clock, fallbacks, django_capture_on_commit_callbacks, why
):
    # Given a scored lead, and then a change the fast path cannot build on
    standard_model()
    lead = LeadFactory(job_title="Head of IT", company=CompanyFactory(employee_count=50))
    arrange, path, with_history = FALLBACKS[why]
    if with_history:
        history(lead, 60, clock.at)
    lead_score(lead_id=lead.pk)
    arrange(lead, clock)

    # When a page view arrives (the features page: older than the views already scored)
    at = clock.at - timedelta(minutes=30) if why == Fallback.LATE_ACTIVITY else clock.at
    with django_capture_on_commit_callbacks(execute=True):
        visit(lead, path, at=at)

    # Then the lead was scored in full: its ledger and scores check out, and are what a
    # full rescore from nothing gives
    assert fallbacks() == [why]
    assert not Activity.objects.unscored().exists()
    assert list(scores_verify()) == []
    assert (ledger(lead), state(lead)) == rescored_in_full(lead)


def test_a_new_activity_dated_ahead_of_the_clock_is_scored_in_full(
    db, clock, fallbacks, django_capture_on_commit_callbacks
):
    # Given a scored lead
    standard_model()
    lead = LeadFactory(job_title="Head of IT")
    history(lead, 20, clock.at)

    # When an activity stored by the service is dated after now
    with django_capture_on_commit_callbacks(execute=True):
        visit(lead, "/pricing", at=clock.at + timedelta(minutes=10))

    # Then the full path scored the lead (and left the view for when it is due)
    assert fallbacks() == [Fallback.FUTURE_ACTIVITY]
    assert not ScoreEntry.objects.filter(lead=lead, at__gt=clock.at).exists()
    assert list(scores_verify()) == []


def test_a_manual_adjustment_is_scored_in_full(db, clock, marketer):
    # Given a scored lead
    standard_model()
    lead = LeadFactory(job_title="Head of IT")
    history(lead, 20, clock.at)

    # When a marketer adjusts its score
    leads_adjust_score(lead_ids=[lead.pk], points=7, reason="Met at a fair", by=marketer)

    # Then the adjustment is in its score (the fast path would carry the stored one)
    assert LeadScore.objects.get(lead=lead).adjustment == 7
    assert list(scores_verify()) == []


def test_deleting_the_person_who_adjusted_a_score_keeps_the_adjustment(db, clock, marketer):
    # Given a score adjusted by hand (the ledger holds no database constraint on who)
    standard_model()
    lead = LeadFactory(job_title="Head of IT")
    leads_adjust_score(lead_ids=[lead.pk], points=7, reason="Met at a fair", by=marketer)
    entry = ScoreEntry.objects.get(lead=lead, kind="manual")
    assert entry.by == marketer
    score = Lead.objects.get(pk=lead.pk).score

    # When that person is deleted
    marketer.delete()

    # Then the entry stays, by no one, and so does the score
    entry.refresh_from_db()
    assert (entry.by, entry.points, entry.reason) == (
        None,
        7,
        "Adjusted by marketer: Met at a fair",
    )
    assert Lead.objects.get(pk=lead.pk).score == score
    assert list(scores_verify()) == []

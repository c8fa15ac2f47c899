"""Scoring under load: a real Celery worker on Redis, PostgreSQL, activities from many threads.

The worker runs in a thread of this process (``celery_worker_live``), so scoring signals
are received here. Each recording thread has its own database connection and
transaction, the way web requests do.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from django.core.cache import cache
from django.db import connections

from leads.activities import activities_record
from leads.models import Activity, ActivityType, Lead, Stage, StageChange
from scoring.lead_scoring import leads_score
from scoring.models import (
    ModelStatus,
    RescoreJob,
    RescoreStatus,
    Rule,
    RuleKind,
    ScoreEntry,
    ScoringModel,
)
from scoring.outbox import DRAIN_KEY
from scoring.rescore_jobs import rescore_job_run, rescore_job_start
from scoring.signals import lead_qualified
from scoring.verification import scores_verify
from tests.factories import LeadFactory

pytestmark = [
    pytest.mark.worker,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

PRICING = "https://hotlist.example/pricing"
DRAIN_SECONDS = 60


def make_model() -> tuple[ScoringModel, Rule]:
    """Fit 30 for a factory lead (head of …, in DE); +1 per page view, uncapped."""
    model = ScoringModel.objects.create(
        name="Default", status=ModelStatus.ACTIVE, is_default=True, surge_points=0
    )
    for field, operator, value, points in (
        ("job_title", "contains", "head", 20),
        ("country", "equals", "DE", 10),
    ):
        Rule.objects.create(
            model=model,
            name=field,
            kind=RuleKind.FIT,
            points=points,
            field=field,
            operator=operator,
            value=value,
        )
    views = Rule.objects.create(
        model=model,
        name="page views",
        kind=RuleKind.ENGAGEMENT,
        points=1,
        activity_type=ActivityType.PAGE_VIEW,
    )
    return model, views


@pytest.fixture
def worker(celery_worker_live):
    return celery_worker_live


@pytest.fixture
def qualified() -> Iterator[list[dict]]:
    got: list[dict] = []

    def receiver(sender, signal, **kwargs) -> None:
        got.append(kwargs)

    lead_qualified.connect(receiver, weak=False)
    yield got
    lead_qualified.disconnect(receiver)


def in_threads(targets: list[Callable[[], object]]) -> list[BaseException]:
    """Run each target in its own thread, all released at once; return what they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(targets))

    def run(target: Callable[[], object]) -> None:
        try:
            start.wait()
            target()
        except BaseException as exc:  # collected and asserted on by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DRAIN_SECONDS)
    return errors


def record_view(lead_id: int) -> Callable[[], object]:
    def record() -> object:
        return activities_record(
            lead=Lead(pk=lead_id), activities=[Activity(type=ActivityType.PAGE_VIEW, url=PRICING)]
        )

    return record


def drain(finished: Counter, jobs: list[int] = ()) -> None:
    """Wait until every activity is scored, no drain is queued, and the jobs are done."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        done = (
            not Activity.objects.unscored().exists()
            and finished["scoring.tasks.score_lead"] >= 1
            and cache.get(DRAIN_KEY) is None
            and not RescoreJob.objects.filter(pk__in=jobs)
            .exclude(status__in=[RescoreStatus.DONE, RescoreStatus.FAILED])
            .exists()
        )
        if done:
            return
        time.sleep(0.1)
    pytest.fail(
        f"not drained in {DRAIN_SECONDS} s: {Activity.objects.unscored().count()} unscored, "
        f"tasks finished {dict(finished)}"
    )


def test_fifty_concurrent_activities_end_with_the_score_equal_to_the_ledger(
    worker, finished_tasks, qualified
):
    # Given a lead at 30 fit points, and +1 per page view
    make_model()
    lead = LeadFactory()
    leads_score(lead_ids=[lead.pk])

    # When 50 page views are recorded at once, each in its own transaction
    errors = in_threads([record_view(lead.pk) for _ in range(50)])
    assert errors == []
    drain(finished_tasks)

    # Then every view counted exactly once and the stored score is what the ledger says
    lead.refresh_from_db()
    assert lead.score == 30 + 50
    assert ScoreEntry.objects.filter(lead=lead, activity__isnull=False).count() == 50
    assert not ScoreEntry.objects.filter(lead=lead, reversal_of__isnull=False).exists()
    assert list(scores_verify()) == []
    # And crossing MQL on the way moved the lead and was announced once
    assert lead.stage == Stage.MQL
    assert [q["stage"] for q in qualified] == [Stage.MQL]


def test_rescore_running_while_activities_arrive_ends_clean(worker, finished_tasks):
    # Given 20 leads each scored for one page view at +1
    model, views = make_model()
    leads = [LeadFactory() for _ in range(20)]
    for lead in leads:
        activities_record(
            lead=lead, activities=[Activity(type=ActivityType.PAGE_VIEW, url=PRICING)]
        )
    drain(finished_tasks)
    assert set(Lead.objects.values_list("score", flat=True)) == {31}

    # When a page view is worth 3, a rescore job is queued on the worker and another runs
    # here, while every lead records another page view
    views.points = 3
    views.save()
    queued = rescore_job_start(model=model, reason="page views matter more")
    direct = RescoreJob.objects.create(model=model, reason="rescore command")
    errors = in_threads(
        [lambda: rescore_job_run(job_id=direct.pk, chunk_size=5)]
        + [record_view(lead.pk) for lead in leads]
    )
    assert errors == []
    drain(finished_tasks, jobs=[queued.pk, direct.pk])

    # Then both jobs finished, every lead has both views at 3, and the ledger agrees
    assert set(RescoreJob.objects.values_list("status", flat=True)) == {RescoreStatus.DONE}
    assert set(Lead.objects.values_list("score", flat=True)) == {30 + 2 * 3}
    assert list(scores_verify()) == []


def test_crossing_mql_under_concurrency_announces_once(worker, finished_tasks, qualified):
    # Given two leads at 30 points, MQL from 50
    make_model()
    leads = [LeadFactory(), LeadFactory()]
    leads_score(lead_ids=[lead.pk for lead in leads])

    # When each gets 25 page views at once
    errors = in_threads([record_view(lead.pk) for lead in leads for _ in range(25)])
    assert errors == []
    drain(finished_tasks)

    # Then each lead qualified once, moved once by the system, and is scored right
    assert Counter(q["lead_id"] for q in qualified) == {lead.pk: 1 for lead in leads}
    assert {q["stage"] for q in qualified} == {Stage.MQL}
    for lead in leads:
        lead.refresh_from_db()
        assert (lead.score, lead.stage) == (55, Stage.MQL)
        (change,) = StageChange.objects.filter(lead=lead)
        assert change.by is None
        assert "crossed the MQL threshold 50" in change.reason
    assert list(scores_verify()) == []

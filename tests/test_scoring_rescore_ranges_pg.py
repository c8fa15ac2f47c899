"""A set-based rescore split into lead-id ranges, each a task on the bulk queue (PostgreSQL).

The ranges of one job may run in any order, at the same time in several workers, and
more than once (a task is acknowledged late, so a lost worker's range is delivered
again): whatever happens, each lead is scored once per job, each range counts once,
and only the last range to finish ends the job.
"""

import threading

import pytest
from django.db import connection, connections

from leads.models import Activity, Lead, Stage, StageChange
from scoring import rescore_jobs, ruleset, signals
from scoring.lead_scoring import leads_score
from scoring.models import RescoreJob, RescoreStatus, ScoreEntry
from scoring.rescore_jobs import (
    model_rescore_in_process,
    rescore_job_range,
    rescore_job_ranges,
    rescore_job_run,
    rescore_job_start,
)
from scoring.verification import scores_verify
from tests.factories import LeadFactory, active_model, page_rule

pytestmark = pytest.mark.postgres

PRICING = "https://example.com/pricing"


def pricing_world(leads: int = 5):
    """A model giving +10 per pricing-page view and leads with one view each, scored."""
    model = active_model()
    rule = page_rule(model, 10, "/pricing")
    people = [LeadFactory() for _ in range(leads)]
    for lead in people:
        Activity.objects.create(lead=lead, type="page_view", url=PRICING)
    leads_score(lead_ids=[lead.pk for lead in people])
    assert set(Lead.objects.values_list("score", flat=True)) == {10}
    return model, rule, people


def running_job(model) -> tuple[RescoreJob, list[tuple[int, int]]]:
    """A claimed job and its ranges, as ``rescore_job_run`` leaves them before queueing."""
    job = RescoreJob.objects.create(model=model, reason="test", status=RescoreStatus.RUNNING)
    ranges = rescore_job_ranges(job)
    RescoreJob.objects.filter(pk=job.pk).update(total=Lead.objects.count(), ranges=len(ranges))
    return job, ranges


def test_a_rescore_runs_as_ranges_that_together_finish_the_job(
    db, settings, django_capture_on_commit_callbacks
):
    # Given five scored leads and ranges of two leads
    settings.SCORING_RESCORE_RANGE = 2
    model, rule, people = pricing_world()

    # When the rule's points change and its model is rescored through the queue
    rule.points = 12
    rule.save()
    with django_capture_on_commit_callbacks(execute=True):
        job = rescore_job_start(model=model, reason="pricing matters more")

    # Then three ranges ran, each counted once, and the job is done with every lead
    job.refresh_from_db()
    assert job.status == RescoreStatus.DONE
    assert job.finished_at is not None
    assert (job.ranges, len(job.finished_ranges), job.done, job.total) == (3, 3, 5, 5)
    assert job.percent == 100
    assert job.changed_entries == 2 * len(people)  # a reversal and a new award each
    assert set(Lead.objects.values_list("score", flat=True)) == {12}
    assert list(scores_verify()) == []


def test_a_range_delivered_twice_counts_once_and_does_not_end_the_job_early(db, settings):
    # Given a running job of three ranges
    settings.SCORING_RESCORE_RANGE = 2
    model, rule, _ = pricing_world()
    rule.points = 15
    rule.save()
    job, ranges = running_job(model)
    assert len(ranges) == 3

    # When the first range runs, then runs again, then the second runs
    assert rescore_job_range(job_id=job.pk, lo=ranges[0][0], hi=ranges[0][1])
    entries = ScoreEntry.objects.count()
    assert rescore_job_range(job_id=job.pk, lo=ranges[0][0], hi=ranges[0][1])
    assert ScoreEntry.objects.count() == entries
    assert rescore_job_range(job_id=job.pk, lo=ranges[1][0], hi=ranges[1][1])

    # Then the job still waits for the third range, which ends it
    job.refresh_from_db()
    assert job.status == RescoreStatus.RUNNING
    assert (len(job.finished_ranges), job.done) == (2, 4)
    assert rescore_job_range(job_id=job.pk, lo=ranges[2][0], hi=ranges[2][1])
    job.refresh_from_db()
    assert (job.status, job.done, job.changed_entries) == (RescoreStatus.DONE, 5, 10)
    assert set(Lead.objects.values_list("score", flat=True)) == {15}

    # And a range delivered after the end changes nothing
    entries = ScoreEntry.objects.count()
    assert not rescore_job_range(job_id=job.pk, lo=ranges[0][0], hi=ranges[0][1])
    assert ScoreEntry.objects.count() == entries
    assert list(scores_verify()) == []


def test_a_failing_range_fails_the_job_and_later_ranges_skip(db, settings, monkeypatch):
    # Given a job of three ranges whose second range fails
    settings.SCORING_RESCORE_RANGE = 2
    model, rule, _ = pricing_world()
    rule.points = 20
    rule.save()
    job = RescoreJob.objects.create(model=model, reason="test")

    real = rescore_jobs.rescore_range
    calls = []

    def second_fails(**kwargs):
        calls.append(kwargs["lo"])
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(**kwargs)

    monkeypatch.setattr(rescore_jobs, "rescore_range", second_fails)

    # When it runs (the ranges run eagerly, in order)
    with pytest.raises(RuntimeError, match="disk full"):
        rescore_job_run(job_id=job.pk)

    # Then the job failed and says why; the first range's leads were rescored, the rest
    # were left as they were, and a late delivery of the third range does nothing
    job.refresh_from_db()
    assert job.status == RescoreStatus.FAILED
    assert "disk full" in job.error
    assert job.finished_ranges == [calls[0]]
    scores = sorted(Lead.objects.values_list("score", flat=True))
    assert scores == [10, 10, 10, 20, 20]
    (lo, hi) = rescore_job_ranges(job)[2]
    assert not rescore_job_range(job_id=job.pk, lo=lo, hi=hi)
    assert sorted(Lead.objects.values_list("score", flat=True)) == scores
    # The check names exactly the leads the failed job left behind
    left = set(Lead.objects.filter(score=10).values_list("pk", flat=True))
    assert {difference.lead_id for difference in scores_verify()} == left


@pytest.mark.django_db(transaction=True)
def test_ranges_running_at_once_in_several_workers_end_the_job_once(settings):
    # Given a running job of four ranges over eight scored leads
    settings.SCORING_RESCORE_RANGE = 2
    model, rule, _ = pricing_world(leads=8)
    rule.points = 30
    rule.save()
    job, ranges = running_job(model)
    assert len(ranges) == 4

    # When four workers each take a range at the same moment
    start, errors, outcomes = threading.Barrier(len(ranges)), [], []

    def worker(lo: int, hi: int) -> None:
        try:
            start.wait(timeout=10)
            outcomes.append(rescore_job_range(job_id=job.pk, lo=lo, hi=hi))
        except BaseException as exc:  # asserted on below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=bounds) for bounds in ranges]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then every range ran and counted once, and the job ended with all of them
    assert errors == []
    assert outcomes == [True] * 4
    job.refresh_from_db()
    assert job.status == RescoreStatus.DONE
    assert sorted(job.finished_ranges) == [lo for lo, _ in ranges]
    assert (job.done, job.total, job.changed_entries) == (8, 8, 16)
    assert set(Lead.objects.values_list("score", flat=True)) == {30}
    assert list(scores_verify()) == []


def test_a_first_rescore_sums_each_leads_entries_through_the_lead_index(db):
    """A first rescore writes a range's entries before any ANALYZE has seen them, so the
    planner takes the ledger for nearly empty. Summed by a join, that made it scan every
    entry of the range once for each lead (over 11 minutes for a range of 20,000 leads);
    each lead's entries are read through the ledger's lead index instead."""
    # Given unscored leads with activity, a model, and a ledger the planner knows nothing of
    model = active_model()
    page_rule(model, 10, "/pricing")
    for lead in [LeadFactory() for _ in range(40)]:
        Activity.objects.create(lead=lead, type="page_view", url=PRICING)
    with connection.cursor() as cursor:
        # As before its first ANALYZE (rolled back with the test).
        cursor.execute(
            "UPDATE pg_class SET reltuples = -1, relpages = 0 WHERE relname = 'scoring_scoreentry'"
        )
    plans: list[str] = []

    def explain_sums(execute, sql, params, many, context):
        if sql.lstrip().startswith("WITH targets"):
            execute(f"EXPLAIN {sql}", params, many, context)
            plans.append("\n".join(row for (row,) in context["cursor"].fetchall()))
        return execute(sql, params, many, context)

    # When the model is rescored for the first time
    with connection.execute_wrapper(explain_sums):
        job = model_rescore_in_process(model=model, reason="first rescore")

    # Then every lead was scored, each range reading its leads' entries one lead at a time
    assert job is not None
    assert job.status == RescoreStatus.DONE
    assert set(Lead.objects.values_list("score", flat=True)) == {10}
    assert plans
    for plan in plans:
        assert "Materialize" not in plan, plan
        assert "Index Cond: ((lead_id = l.id) AND (model_id = " in plan, plan
    assert list(scores_verify()) == []


def test_a_points_change_reacts_once_to_each_lead_it_moves(
    db, settings, django_capture_on_commit_callbacks
):
    # Given bands warm from 25 and hot from 40, MQL at 40, a pricing page worth 10 points,
    # and leads with one, two and three views, one of them a customer already
    settings.SCORING_RESCORE_RANGE = 2
    model = active_model(warm_from=25, hot_from=40, mql_threshold=40, sql_threshold=90)
    rule = page_rule(model, 10, "/pricing")
    one, two, three = LeadFactory(), LeadFactory(), LeadFactory()
    customer = LeadFactory(stage=Stage.CUSTOMER)
    unseen = LeadFactory()
    for lead, views in ((one, 1), (two, 2), (three, 3), (customer, 3)):
        for _ in range(views):
            Activity.objects.create(lead=lead, type="page_view", url=PRICING)
    with django_capture_on_commit_callbacks(execute=True):
        leads_score(lead_ids=[lead.pk for lead in (one, two, three, customer, unseen)])
    assert [lead.band for lead in Lead.objects.order_by("pk")] == [
        "cold", "cold", "warm", "warm", "cold"
    ]  # fmt: skip
    heard: list[tuple[str, tuple]] = []

    def band(sender, lead_id, old_band, new_band, score, **kwargs):
        heard.append(("band", (lead_id, old_band, new_band, score)))

    def bands(sender, model_id, changes, **kwargs):
        heard.append(("bands", (model_id, changes)))

    def qualified(sender, lead_id, stage, score, **kwargs):
        heard.append(("qualified", (lead_id, stage, score)))

    signals.band_changed.connect(band, weak=False)
    signals.bands_changed.connect(bands, weak=False)
    signals.lead_qualified.connect(qualified, weak=False)
    try:
        # When the page's points rise to 15 and the range rescore revalues them
        rule.points = 15
        rule.save()
        with django_capture_on_commit_callbacks(execute=True):
            job = rescore_job_start(model=model, reason="pricing", rule=rule, points_before=10)
    finally:
        signals.band_changed.disconnect(band)
        signals.bands_changed.disconnect(bands)
        signals.lead_qualified.disconnect(qualified)

    # Then each lead shows its new score; the leads whose band moved are announced once
    # each, those of a range together, and only the one that crossed MQL from a stage
    # scoring may move is moved
    job.refresh_from_db()
    assert job.status == RescoreStatus.DONE
    rows = {lead.pk: (lead.score, lead.band, lead.stage) for lead in Lead.objects.all()}
    assert rows == {
        one.pk: (15, "cold", Stage.NEW),
        two.pk: (30, "warm", Stage.NEW),
        three.pk: (45, "hot", Stage.MQL),
        customer.pk: (45, "hot", Stage.CUSTOMER),
        unseen.pk: (0, "cold", Stage.NEW),
    }
    assert [what for kind, what in heard if kind == "band"] == []
    announced = [what for kind, what in heard if kind == "bands"]
    assert {model_id for model_id, _ in announced} == {model.pk}
    assert sorted(change for _, changes in announced for change in changes) == [
        (two.pk, "cold", "warm", 30),
        (three.pk, "warm", "hot", 45),
        (customer.pk, "warm", "hot", 45),
    ]
    # Ranges of two ids hold the three leads in two ranges: one announcement each
    assert len(announced) == 2
    assert [what for kind, what in heard if kind == "qualified"] == [(three.pk, Stage.MQL, 45)]
    (move,) = StageChange.objects.filter(lead=three, to_stage=Stage.MQL)
    assert "crossed the MQL threshold 40" in move.reason
    assert not StageChange.objects.filter(lead__in=[one, two, customer, unseen]).exists()
    assert list(scores_verify()) == []


def test_the_ranges_of_a_job_compile_its_rules_once(db, settings, monkeypatch):
    # Given a running job of three ranges, and a count of the compilations of the rules
    settings.SCORING_RESCORE_RANGE = 2
    model, rule, people = pricing_world()
    compiled: list[int] = []
    compile_model = ruleset.compile_model

    def counted(*args, **kwargs):
        compiled.append(1)
        return compile_model(*args, **kwargs)

    monkeypatch.setattr(ruleset, "compile_model", counted)
    rule.points = 12
    rule.save()
    job, ranges = running_job(model)

    # When two of its ranges run, the rules are compiled once for both
    for lo, hi in ranges[:2]:
        rescore_job_range(job_id=job.pk, lo=lo, hi=hi)
    assert len(compiled) == 1

    # When the rule changes before the last range, that range compiles them again and
    # scores with the change
    rule.points = 14
    rule.save()
    lo, hi = ranges[2]
    rescore_job_range(job_id=job.pk, lo=lo, hi=hi)
    assert len(compiled) == 2
    scores = dict(Lead.objects.values_list("pk", "score"))
    assert [scores[lead.pk] for lead in people] == [12, 12, 12, 12, 14]

    # And another job's ranges compile them afresh, even with nothing changed
    other, other_ranges = running_job(model)
    lo, hi = other_ranges[0]
    rescore_job_range(job_id=other.pk, lo=lo, hi=hi)
    assert len(compiled) == 3

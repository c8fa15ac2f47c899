"""Bulk rescore jobs: queue one (its row is the outbox), resume lost ones, and run it,
split on PostgreSQL into lead-id ranges rescored set-based on the bulk queue
(``scoring.bulk``), elsewhere in chunks through ``leads_score``; with the job's progress
and the reactions to the scores it changed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from crm.resilience import task_enqueue
from leads.models import Lead

from .batch_writes import LeadResult
from .bulk import RangeResult, refresh_statistics, rescore_range
from .lead_scoring import leads_score
from .lead_sets import CHUNK_SIZE, chunks, lead_id_ranges, segment_lead_ids
from .models import LeadScore, RescoreJob, RescoreStatus, Rule, ScoreEntry, ScoringModel
from .reactions import BandChange, announce, bands_announce, result_react, score_target
from .ruleset import CompiledModel, Ruleset, load_job_ruleset, load_ruleset
from .signals import rescore_finished, score_surged
from .thresholds import ThresholdMoves, thresholds_catch_up

if TYPE_CHECKING:
    from crm.models import User


def rescore_job_start(
    *,
    model: ScoringModel,
    reason: str,
    by: User | None = None,
    rule: Rule | None = None,
    thresholds_before: tuple[int, int] | None = None,
    basis_before: tuple[str, int] | None = None,
    points_before: int | None = None,
) -> RescoreJob:
    """Queue a rescore of one rule's matches, or of the whole model, after commit.

    ``thresholds_before``: the model's (MQL, SQL) thresholds before a change that lowered
    one, or moved the score the model decides on (``basis_before``: its ``decide_on`` and
    ``predictive_share`` before); the job then moves the leads already past the new one
    (``scoring.thresholds``).
    ``points_before``: only the points of ``rule`` changed, from these (the job may
    revalue its awards: ``scoring.revaluations``).
    The job row is the outbox: when the broker cannot be reached it stays queued and
    ``rescore_jobs_resume`` queues it again.
    """
    mql_before, sql_before = thresholds_before or (None, None)
    decide_on_before, share_before = basis_before or ("", None)
    job = RescoreJob.objects.create(
        model=model,
        rule=rule,
        reason=reason[:200],
        requested_by=by,
        mql_threshold_before=mql_before,
        sql_threshold_before=sql_before,
        decide_on_before=decide_on_before,
        predictive_share_before=share_before,
        points_before=points_before if rule is not None else None,
    )
    transaction.on_commit(partial(rescore_job_request, job_id=job.pk))
    return job


def rescore_job_request(*, job_id: int) -> bool:
    """Queue the job's run; call after commit. Whether it was queued."""
    return task_enqueue("scoring.tasks.rescore_model", job_id, what=f"Rescore job {job_id}")


RESCORE_STALLED_AFTER = timedelta(minutes=5)


def rescore_jobs_resume(*, now: datetime | None = None) -> int:
    """Beat: queue again the jobs still queued a while after they were requested (their
    message was lost); how many were. A job queued twice runs once: the run claims it."""
    older_than = (now or timezone.now()) - RESCORE_STALLED_AFTER
    ids = RescoreJob.objects.filter(
        status=RescoreStatus.QUEUED, created_at__lt=older_than
    ).values_list("pk", flat=True)
    return sum(rescore_job_request(job_id=pk) for pk in ids[:100])


def rescore_job_run(
    *, job_id: int, chunk_size: int = CHUNK_SIZE, in_process: bool = False
) -> RescoreJob | None:
    """Rescore every lead the job's model can touch, recording progress.

    On PostgreSQL, for an active model, the job is split into lead-id ranges, each a
    ``rescore_range`` task on the bulk queue (``rescore_job_range``): as many bulk
    workers as run share the job, and the range that finishes last marks it done.
    With ``in_process`` (commands), the ranges run here, one after another.
    Elsewhere it scores chunks of leads here, one after another.

    Each range or chunk is one transaction with its leads locked, so real-time scoring
    that runs meanwhile either waits for it or is applied on top of it; both orders
    end in the same ledger and scores. Call it outside a transaction (a task or a
    command): the queued ranges read the job's row.
    """
    claimed = RescoreJob.objects.filter(pk=job_id, status=RescoreStatus.QUEUED).update(
        status=RescoreStatus.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return None
    job = RescoreJob.objects.select_related("model", "rule").get(pk=job_id)
    try:
        if connection.vendor == "postgresql" and job.model.status == "active":
            _rescore_ranges_queue(job, in_process)
        else:
            _rescore_in_batches(job, chunk_size)
            _rescore_job_finished(job.pk)
    except Exception as exc:
        _rescore_job_failed(job.pk, exc)
        raise
    job.refresh_from_db()
    return job


def model_rescore_in_process(
    *, model: ScoringModel, reason: str, chunk_size: int = CHUNK_SIZE
) -> RescoreJob | None:
    """Rescore ``model``'s leads here and now (commands), recorded as a job like any
    rescore; its ranges run one after another in this process. Call it outside a
    transaction. None when another run claimed the job first."""
    job = RescoreJob.objects.create(model=model, reason=reason[:200])
    return rescore_job_run(job_id=job.pk, chunk_size=chunk_size, in_process=True)


def rescore_job_ranges(job: RescoreJob) -> list[tuple[int, int]]:
    """The lead-id ranges a set-based rescore of ``job`` visits, in order."""
    # The same width for a rule's rescore: a range holds its leads until it commits, and
    # a wider one saves little (docs/PERFORMANCE.md).
    return lead_id_ranges(settings.SCORING_RESCORE_RANGE)


def _rescore_ranges_queue(job: RescoreJob, in_process: bool) -> None:
    ranges = rescore_job_ranges(job)
    RescoreJob.objects.filter(pk=job.pk).update(total=Lead.objects.count(), ranges=len(ranges))
    if not ranges:
        _rescore_job_finished(job.pk)
        return
    for lo, hi in ranges:
        if in_process:
            rescore_job_range(job_id=job.pk, lo=lo, hi=hi)
        else:
            current_app.tasks["scoring.tasks.rescore_range"].delay(job.pk, lo, hi)


def rescore_job_range(*, job_id: int, lo: int, hi: int) -> bool:
    """Rescore the job's leads with ids in ``lo..hi`` with set-based statements
    (``scoring.bulk``), react to what changed, and count the range done.

    Returns False, doing nothing, when the job is no longer running (it failed, or was
    deleted). Running a range twice changes nothing the second time.
    """
    job = (
        RescoreJob.objects.select_related("model", "rule")
        .filter(pk=job_id, status=RescoreStatus.RUNNING)
        .first()
    )
    if job is None:
        return False
    try:
        ruleset = load_job_ruleset(job.pk)
        compiled = next((m for m in ruleset.models if m.id == job.model_id), None)
        if compiled is None:
            raise RuntimeError(f"{job.model} is no longer active; rescore it again.")
        segment_ids = list(job.model.segment_product_lines.values_list("pk", flat=True))
        rule_ids = {job.rule_id} if job.rule_id else None
        refresh_statistics()
        with transaction.atomic():
            result = rescore_range(
                model=compiled,
                segment_ids=segment_ids,
                lo=lo,
                hi=hi,
                now=timezone.now(),
                rule_ids=rule_ids,
                # Beyond that, summed once when the job ends (``refresh_accounts_on_rescore``).
                accounts_at_most=settings.SCORING_ACCOUNTS_INLINE,
                points_before=job.points_before,
            )
            range_react(result=result, model=compiled, ruleset=ruleset)
            moves = _thresholds_catch_up(job, lo, hi)
    except Exception as exc:
        _rescore_job_failed(job_id, exc)
        raise
    _rescore_range_finished(
        job_id, lo, hi, result.reversed + result.appended, moves, result.accounts_left
    )
    return True


def _thresholds_catch_up(job: RescoreJob, lo: int, hi: int) -> ThresholdMoves:
    """The moves of a job whose change lowered a threshold, for leads ``lo..hi``."""
    if job.mql_threshold_before is None and job.sql_threshold_before is None:
        return ThresholdMoves()
    return thresholds_catch_up(
        model=ScoringModel.objects.get(pk=job.model_id),
        old_mql=job.mql_threshold_before,
        old_sql=job.sql_threshold_before,
        old_basis=(job.decide_on_before, job.predictive_share_before or 0)
        if job.decide_on_before
        else None,
        lo=lo,
        hi=hi,
    )


def _rescore_range_finished(
    job_id: int, lo: int, hi: int, entries: int, moves: ThresholdMoves, accounts_left: bool
) -> None:
    """Count a range done, once however often it ran; the last one ends the job."""
    leads = Lead.objects.filter(pk__range=(lo, hi)).count()
    with transaction.atomic():
        job = RescoreJob.objects.select_for_update().get(pk=job_id)
        if lo in job.finished_ranges:
            return
        job.finished_ranges.append(lo)
        job.done += leads
        job.changed_entries += entries
        job.moved_to_mql += moves.to_mql
        job.moved_to_sql += moves.to_sql
        job.accounts_pending |= accounts_left
        fields = [
            "finished_ranges",
            "done",
            "changed_entries",
            "moved_to_mql",
            "moved_to_sql",
            "accounts_pending",
        ]
        if job.status == RescoreStatus.RUNNING and len(job.finished_ranges) >= job.ranges:
            job.status, job.finished_at = RescoreStatus.DONE, timezone.now()
            fields += ["status", "finished_at"]
            _announce_finished(job)
        job.save(update_fields=fields)


def _rescore_job_finished(job_id: int) -> None:
    with transaction.atomic():
        finished = RescoreJob.objects.filter(pk=job_id, status=RescoreStatus.RUNNING).update(
            status=RescoreStatus.DONE, finished_at=timezone.now()
        )
        if finished:
            _announce_finished(RescoreJob.objects.get(pk=job_id))


def _announce_finished(job: RescoreJob) -> None:
    """Send ``rescore_finished`` once the job's end is committed."""
    job_id, model_id = job.pk, job.model_id

    def announce_finished() -> None:
        rescore_finished.send(sender=ScoringModel, job_id=job_id, model_id=model_id)

    transaction.on_commit(announce_finished, robust=True)


def _rescore_job_failed(job_id: int, exc: Exception) -> None:
    RescoreJob.objects.filter(pk=job_id).update(
        status=RescoreStatus.FAILED, error=repr(exc)[:2000], finished_at=timezone.now()
    )


def range_react(
    *,
    result: RangeResult,
    model: CompiledModel,
    ruleset: Ruleset,
    quiet: Collection[int] = frozenset(),
) -> None:
    """Stage moves, hooks and surge alerts for the leads whose score or band a set-based
    range rescore changed, but for the ``quiet`` ones (``scoring.quiet_rescore``); in
    the range's transaction."""
    _react_to_changes([row for row in result.changed if row[0] not in quiet], ruleset)
    for lead_id, points in result.surges:
        if lead_id not in quiet:
            announce(score_surged, model, lead_id, points=points, hours=model.surge_hours)


def _react_to_changes(changed: list[tuple[int, int | None, str]], ruleset: Ruleset) -> None:
    """Stage moves and hooks for leads whose score or band a set-based rescore changed."""
    if not changed:
        return
    before = {lead_id: (score, band) for lead_id, score, band in changed}
    models = {m.id: m for m in ruleset.models}
    # Each lead's primary model and predictive score there (a set-based rescore leaves
    # the predictive score as it was: a model deciding on it compares before and after
    # with the same one).
    primary: dict[int, CompiledModel] = {}
    predictive: dict[int, int | None] = {}
    for lead_id, primary_id, score in LeadScore.objects.filter(
        lead_id__in=before, is_primary=True
    ).values_list("lead_id", "model_id", "predictive_score"):
        if primary_id in models:
            primary[lead_id], predictive[lead_id] = models[primary_id], score
    # A range may change the score of thousands of leads, and most of them at most have
    # their band change announced: those are read as four values, and only the leads
    # whose stage moves are loaded in full (the move saves them). The band changes are
    # announced together, one ``bands_changed`` a model.
    movers: list[int] = []
    bands: dict[int, list[BandChange]] = defaultdict(list)
    for lead_id, score, band, stage in Lead.objects.filter(pk__in=primary).values_list(
        "id", "score", "band", "stage"
    ):
        model, (old_score, old_band) = primary[lead_id], before[lead_id]
        if band != old_band:
            bands[model.id].append((lead_id, old_band, band, score))
        target, _ = score_target(
            model,
            before=(old_score, predictive[lead_id]),
            after=(score, predictive[lead_id]),
            stage=stage,
        )
        if target is not None:
            movers.append(lead_id)
    for lead in Lead.objects.filter(pk__in=movers).order_by("pk"):
        result = LeadResult(
            lead=lead,
            before=before[lead.pk],
            primary=primary[lead.pk],
            predictive_before=predictive[lead.pk],
            predictive=predictive[lead.pk],
        )
        result_react(result, band=False)
    for model_id, changes in sorted(bands.items()):
        bands_announce(model_id, sorted(changes))


def _rescore_in_batches(job: RescoreJob, chunk_size: int) -> None:
    """Any database: score chunks of leads through the same path as real-time scoring."""
    # A model that was archived or turned back into a draft still has entries to reverse.
    ids = sorted(
        set(segment_lead_ids(job.model))
        | set(_leads_with_entries(job.model))
        # Leads that left the segment with a score but no entries in the model.
        | set(LeadScore.objects.filter(model=job.model).values_list("lead_id", flat=True))
    )
    RescoreJob.objects.filter(pk=job.pk).update(total=len(ids))
    ruleset = load_ruleset(fresh=True)
    for chunk in chunks(ids, chunk_size):
        results = leads_score(lead_ids=chunk, ruleset=ruleset)
        job.done += len(chunk)
        job.changed_entries += sum(r.new_entries for r in results)
        RescoreJob.objects.filter(pk=job.pk).update(
            done=job.done, changed_entries=job.changed_entries
        )
    if job.model.status == "active":
        with transaction.atomic():
            moves = _thresholds_catch_up(job, 0, Lead.objects.aggregate(top=Max("pk"))["top"] or 0)
        RescoreJob.objects.filter(pk=job.pk).update(
            moved_to_mql=moves.to_mql, moved_to_sql=moves.to_sql
        )


def _leads_with_entries(model: ScoringModel) -> Any:
    return (
        ScoreEntry.objects.filter(model=model)
        .order_by("lead_id")
        .values_list("lead_id", flat=True)
        .distinct()
    )

"""Scoring actions: score leads, rescore a model, adjust by hand, decay, explain, verify."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from crm.resilience import cache_call, task_enqueue
from leads.models import Activity, Lead, Stage
from leads.stages import lead_move_to_stage_locked

from . import rules as R
from .decay import decay_params, decay_sql
from .engine import (
    Batch,
    CompiledModel,
    LeadResult,
    Ruleset,
    load_ruleset,
    model_settings,
    state_from,
)
from .models import (
    ChangeLog,
    EntryKind,
    LeadScore,
    ProfileRescore,
    RescoreJob,
    RescoreStatus,
    Rule,
    ScoreEntry,
    ScoringModel,
)
from .signals import band_changed, lead_qualified, score_surged

if TYPE_CHECKING:
    from crm.models import User

log = logging.getLogger(__name__)

CHUNK_SIZE = 500
# Scoring never moves a lead backward, nor past SQL, nor out of these stages.
AUTO_QUALIFIABLE = {Stage.NEW, Stage.RECYCLED, Stage.MQL}


def leads_score(
    *, lead_ids: Sequence[int], now: datetime | None = None, ruleset: Ruleset | None = None
) -> list[LeadResult]:
    """Score the leads against the active models, in one transaction with their rows locked.

    Applies every pending activity, appends ledger entries for what changed,
    updates the materialized scores, moves stages on upward threshold crossings,
    and announces crossings, band changes and surges after commit. Idempotent.
    """
    with transaction.atomic():
        leads = list(
            Lead.objects.select_for_update(of=("self",))
            .filter(pk__in=lead_ids)
            .select_related("company")
            .order_by("pk")
        )
        if not leads:
            return []
        # Only once the leads are locked: a run that committed while this one waited used a
        # later "now", and what it applied must not look like the future (and be reversed).
        now = now or timezone.now()
        ruleset = ruleset or load_ruleset()
        batch = Batch(leads, ruleset, now)
        pending = list(
            Activity.objects.unscored()
            .filter(lead_id__in=[lead.pk for lead in leads])
            .order_by()
            .values_list("pk", flat=True)
        )
        results = batch.run()
        # The changed fields were read under the lock: their rescore is done.
        ProfileRescore.objects.filter(lead_id__in=[lead.pk for lead in leads]).delete()
        for start in range(0, len(pending), CHUNK_SIZE):
            Activity.objects.filter(
                pk__in=pending[start : start + CHUNK_SIZE], scored_at__isnull=True
            ).update(scored_at=now)
        for result in results:
            _react(result)
    return results


def lead_score(*, lead_id: int, now: datetime | None = None) -> LeadResult | None:
    results = leads_score(lead_ids=[lead_id], now=now)
    return results[0] if results else None


PENDING_BATCH = 100
DRAIN_KEY = "scoring:drain-queued"
DRAIN_QUEUED_SECONDS = 30
DRAIN_SECONDS = 10.0


def pending_scoring_request(*, lead_id: int) -> bool:
    """Queue a drain of waiting activities unless one is queued already.

    Call after commit. A burst of events then costs one task, not one per event: the
    queued drain deletes the marker when it starts, so an event stored while it runs
    queues the next one. The marker expires, and the sweeper re-queues, in case a
    message is lost. Returns whether a task was queued.

    The activities are stored already: when the broker or the cache cannot be reached
    the request that stored them still succeeds, and the sweeper scores them once it is
    back. Without the cache the drain is queued unmarked (a second drain finds nothing).
    """
    from .tasks import score_lead

    if not _drain_mark(lead_id):
        return False
    if task_enqueue(score_lead, lead_id, pending_only=True, what=f"Scoring of lead {lead_id}"):
        return True
    _drain_unmark()
    return False


def _drain_mark(lead_id: int) -> bool:
    """Mark a drain queued; False when one is already. True when the cache is down."""
    mark = partial(cache.add, DRAIN_KEY, lead_id, timeout=DRAIN_QUEUED_SECONDS)
    return cache_call(mark, default=True, what="Scoring drain marker")


def _drain_unmark() -> None:
    """Forget the marker: the drain it stood for was not queued, or has started. (When
    the cache is down it expires by itself; the sweeper queues the next drain then.)"""
    cache_call(partial(cache.delete, DRAIN_KEY), default=False, what="Scoring drain unmark")


def profile_rescore_record(*, lead_id: int) -> None:
    """Record that the lead's explicit fields changed; call in the transaction that
    changed them. A later change moves the request's time on."""
    ProfileRescore.objects.bulk_create(
        [ProfileRescore(lead_id=lead_id, requested_at=timezone.now())],
        update_conflicts=True,
        unique_fields=["lead"],
        update_fields=["requested_at"],
    )


def lead_score_request(*, lead_id: int) -> bool:
    """Queue a rescore of the lead (its explicit fields changed); call after commit.

    When the broker cannot be reached the change stays saved and the failure is logged;
    the recorded ``ProfileRescore`` brings the lead to the sweeper.
    """
    from .tasks import score_lead

    return task_enqueue(score_lead, lead_id, what=f"Rescore of lead {lead_id}")


def pending_drain(*, lead_id: int | None = None, seconds: float = DRAIN_SECONDS) -> int:
    """Score every lead with waiting activities, a batch at a time; how many were scored.

    Starts with ``lead_id`` when given. Stops when nothing is left (leads another
    worker holds are left to it) or after ``seconds``, then queues the next drain.
    """
    _drain_unmark()
    deadline = time.monotonic() + seconds
    scored = 0
    while True:
        batch = leads_score_pending(lead_id=lead_id)
        lead_id = None
        scored += batch
        if not batch:
            return scored
        if time.monotonic() > deadline:
            pending_scoring_request(lead_id=0)
            return scored


def leads_score_pending(*, lead_id: int | None, batch: int = PENDING_BATCH) -> int:
    """Apply the lead's unscored activities, and those of other waiting leads, in one go.

    A burst of events queues one task per event; the first task to run scores up to
    ``batch`` leads with pending activities in one transaction (leads another worker
    holds are skipped), so the tasks queued behind it find nothing left and return
    after one query. Returns how many leads were scored (0: nothing was pending).
    """
    pending = Activity.objects.unscored().order_by()
    if lead_id is not None and not pending.filter(lead_id=lead_id).exists():
        lead_id = None
    if lead_id is None and not pending.exists():
        return 0
    with transaction.atomic():
        # The lead this task is for is waited on; the others are taken only if free.
        target: list[int] = []
        if lead_id is not None:
            target = list(
                Lead.objects.select_for_update(of=("self",))
                .filter(pk=lead_id)
                .values_list("pk", flat=True)
            )
        waiting = pending.exclude(lead_id__in=target).values_list("lead_id", flat=True)
        others = list(
            Lead.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=list(waiting.distinct()[: batch - 1]))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        return len(leads_score(lead_ids=[*target, *others]))


def _react(result: LeadResult) -> None:
    """Move the stage on an upward crossing and queue the hooks; inside the scoring transaction."""
    lead, model = result.lead, result.primary
    if model is None:
        return
    old_score, old_band = result.before
    if lead.band != old_band:
        _announce(
            band_changed, model, lead.pk, old_band=old_band, new_band=lead.band, score=lead.score
        )
    for surge_model, points in result.surges:
        _announce(score_surged, surge_model, lead.pk, points=points, hours=surge_model.surge_hours)
    target = None
    if lead.score >= model.sql_threshold and old_score < model.sql_threshold:
        target = Stage.SQL
    elif lead.score >= model.mql_threshold and old_score < model.mql_threshold:
        target = Stage.MQL
    if target is None or lead.stage not in AUTO_QUALIFIABLE or lead.stage == target:
        return
    threshold = model.sql_threshold if target == Stage.SQL else model.mql_threshold
    reason = (
        f"Score {lead.score} crossed the {Stage(target).label} threshold {threshold} "
        f"in “{model.name}”"
    )
    lead_move_to_stage_locked(lead=lead, stage=target, by=None, reason=reason)
    _announce(lead_qualified, model, lead.pk, stage=target, score=lead.score)


def _announce(signal: Any, model: CompiledModel, lead_id: int, **payload: Any) -> None:
    send = partial(signal.send, sender=ScoringModel, lead_id=lead_id, model_id=model.id, **payload)
    transaction.on_commit(send)


# --- Bulk rescore ----------------------------------------------------------------


def segment_lead_ids(model: ScoringModel) -> Any:
    """The ids of the leads a model scores (a queryset, evaluated in chunks)."""
    leads = Lead.objects.all()
    if not model.is_default:
        leads = leads.filter(product_interests__in=model.segment_product_lines.all())
    return leads.order_by("pk").values_list("pk", flat=True).distinct()


def rescore_job_start(
    *, model: ScoringModel, reason: str, by: User | None = None, rule: Rule | None = None
) -> RescoreJob:
    """Queue a rescore of one rule's matches, or of the whole model, after commit.

    The job row is the outbox: when the broker cannot be reached it stays queued and
    ``rescore_jobs_resume`` queues it again.
    """
    job = RescoreJob.objects.create(model=model, rule=rule, reason=reason[:200], requested_by=by)
    transaction.on_commit(partial(rescore_job_request, job_id=job.pk))
    return job


def rescore_job_request(*, job_id: int) -> bool:
    """Queue the job's run; call after commit. Whether it was queued."""
    from .tasks import rescore_model

    return task_enqueue(rescore_model, job_id, what=f"Rescore job {job_id}")


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


def rescore_job_ranges(job: RescoreJob) -> list[tuple[int, int]]:
    """The lead-id ranges a set-based rescore of ``job`` visits, in order."""
    # The same width for a rule's rescore: a range holds its leads until it commits, and
    # a wider one saves little (docs/PERFORMANCE.md).
    return lead_id_ranges(settings.SCORING_RESCORE_RANGE)


def lead_id_ranges(size: int) -> list[tuple[int, int]]:
    """Consecutive ranges of ``size`` lead ids that together cover every lead, in order."""
    bounds = Lead.objects.aggregate(lo=Min("pk"), hi=Max("pk"))
    if bounds["lo"] is None:
        return []
    return [(lo, lo + size - 1) for lo in range(bounds["lo"], bounds["hi"] + 1, size)]


def _rescore_ranges_queue(job: RescoreJob, in_process: bool) -> None:
    from .tasks import rescore_range

    ranges = rescore_job_ranges(job)
    RescoreJob.objects.filter(pk=job.pk).update(total=Lead.objects.count(), ranges=len(ranges))
    if not ranges:
        _rescore_job_finished(job.pk)
        return
    for lo, hi in ranges:
        if in_process:
            rescore_job_range(job_id=job.pk, lo=lo, hi=hi)
        else:
            rescore_range.delay(job.pk, lo, hi)


def rescore_job_range(*, job_id: int, lo: int, hi: int) -> bool:
    """Rescore the job's leads with ids in ``lo..hi`` with set-based statements
    (``scoring.bulk``), react to what changed, and count the range done.

    Returns False, doing nothing, when the job is no longer running (it failed, or was
    deleted). Running a range twice changes nothing the second time.
    """
    from .bulk import refresh_statistics, rescore_range

    job = (
        RescoreJob.objects.select_related("model", "rule")
        .filter(pk=job_id, status=RescoreStatus.RUNNING)
        .first()
    )
    if job is None:
        return False
    try:
        ruleset = load_ruleset(fresh=True)
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
            )
            _react_to_changes(result.changed, ruleset)
            for lead_id, points in result.surges:
                _announce(
                    score_surged, compiled, lead_id, points=points, hours=compiled.surge_hours
                )
    except Exception as exc:
        _rescore_job_failed(job_id, exc)
        raise
    _rescore_range_finished(job_id, lo, hi, result.reversed + result.appended)
    return True


def _rescore_range_finished(job_id: int, lo: int, hi: int, entries: int) -> None:
    """Count a range done, once however often it ran; the last one ends the job."""
    leads = Lead.objects.filter(pk__range=(lo, hi)).count()
    with transaction.atomic():
        job = RescoreJob.objects.select_for_update().get(pk=job_id)
        if lo in job.finished_ranges:
            return
        job.finished_ranges.append(lo)
        job.done += leads
        job.changed_entries += entries
        fields = ["finished_ranges", "done", "changed_entries"]
        if job.status == RescoreStatus.RUNNING and len(job.finished_ranges) >= job.ranges:
            job.status, job.finished_at = RescoreStatus.DONE, timezone.now()
            fields += ["status", "finished_at"]
        job.save(update_fields=fields)


def _rescore_job_finished(job_id: int) -> None:
    RescoreJob.objects.filter(pk=job_id, status=RescoreStatus.RUNNING).update(
        status=RescoreStatus.DONE, finished_at=timezone.now()
    )


def _rescore_job_failed(job_id: int, exc: Exception) -> None:
    RescoreJob.objects.filter(pk=job_id).update(
        status=RescoreStatus.FAILED, error=repr(exc)[:2000], finished_at=timezone.now()
    )


def _react_to_changes(changed: list[tuple[int, int, str]], ruleset: Ruleset) -> None:
    """Stage moves and hooks for leads whose score or band a set-based rescore changed."""
    if not changed:
        return
    before = {lead_id: (score, band) for lead_id, score, band in changed}
    models = {m.id: m for m in ruleset.models}
    primary: dict[int, int] = dict(
        LeadScore.objects.filter(lead_id__in=before, is_primary=True).values_list(
            "lead_id", "model_id"
        )
    )
    for lead in Lead.objects.filter(pk__in=before):
        result = LeadResult(lead=lead, before=before[lead.pk])
        model_id = primary.get(lead.pk)
        result.primary = models.get(model_id) if model_id is not None else None
        _react(result)


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
    for chunk in _chunks(ids, chunk_size):
        results = leads_score(lead_ids=chunk, ruleset=ruleset)
        job.done += len(chunk)
        job.changed_entries += sum(r.new_entries for r in results)
        RescoreJob.objects.filter(pk=job.pk).update(
            done=job.done, changed_entries=job.changed_entries
        )


def _leads_with_entries(model: ScoringModel) -> Any:
    return (
        ScoreEntry.objects.filter(model=model)
        .order_by("lead_id")
        .values_list("lead_id", flat=True)
        .distinct()
    )


def _chunks(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


# --- Manual adjustments ------------------------------------------------------------


def leads_adjust_score(
    *, lead_ids: Sequence[int], points: int, reason: str, by: User | None
) -> int:
    """Add (or take off) points by hand on each lead's primary model; returns how many leads."""
    reason = reason.strip()
    if not reason:
        raise ValueError("Say why the score is adjusted.")
    if not points:
        raise ValueError("Give a non-zero number of points.")
    now = timezone.now()
    ruleset = load_ruleset()
    adjusted = []
    with transaction.atomic():
        leads = (
            Lead.objects.select_for_update()
            .filter(pk__in=lead_ids)
            .prefetch_related("product_interests")
            .order_by("pk")
        )
        for lead in leads:
            slugs = [product.slug for product in lead.product_interests.all()]
            models = ruleset.for_lead(slugs)
            if not models:
                continue
            primary = max(models, key=lambda m: (m.priority, m.is_default, -m.id))
            who = by.get_username() if by else "system"
            ScoreEntry.objects.create(
                lead=lead,
                model_id=primary.id,
                kind=EntryKind.MANUAL,
                points=points,
                reason=f"Adjusted by {who}: {reason}"[:300],
                at=now,
                created_at=now,
                by=by,
            )
            adjusted.append(lead.pk)
        if adjusted:
            # Scored at its own, post-lock "now" (see leads_score), not the pre-lock one.
            leads_score(lead_ids=adjusted, ruleset=ruleset)
    return len(adjusted)


# --- Decay ---------------------------------------------------------------------------


def scores_decay(*, now: datetime | None = None) -> int:
    """Bring every lead's materialized score to ``now``: one set-based UPDATE per range
    of ``SCORING_DECAY_RANGE`` lead ids, each range a transaction of its own.

    Only the lead row changes: its primary ``LeadScore`` keeps the engagement at
    the time it was last scored, and the decay formula carries it forward. Leads
    whose band the decay changed are announced (``band_changed``) after their range
    commits. Returns the number of leads updated.
    """
    now = now or timezone.now()
    postgres = connection.vendor == "postgresql"
    return sum(
        _decay_range(now, lo, hi, postgres=postgres)
        for lo, hi in lead_id_ranges(settings.SCORING_DECAY_RANGE)
    )


def _decay_range(now: datetime, lo: int, hi: int, *, postgres: bool) -> int:
    params = decay_params(now, postgres=postgres, lo=lo, hi=hi)
    with transaction.atomic(), connection.cursor() as cursor:
        if postgres:
            # Lock first, then read: an UPDATE that found a lead locked by real-time
            # scoring would, once let through, write the engagement it read before that
            # scoring committed. Real-time scoring of a lead waits for one range at most;
            # rows that only reference these leads (NO KEY) do not wait at all.
            cursor.execute(
                "SELECT id FROM leads_lead WHERE id BETWEEN %s AND %s "
                "ORDER BY id FOR NO KEY UPDATE",
                [lo, hi],
            )
        cursor.execute(decay_sql(postgres=postgres, returning=True), params)
        changes = cursor.fetchall()
        cursor.execute(decay_sql(postgres=postgres), params)
        updated = cursor.rowcount
        for lead_id, model_id, old_band, new_band, score in changes:
            transaction.on_commit(
                partial(
                    band_changed.send,
                    sender=ScoringModel,
                    lead_id=lead_id,
                    model_id=model_id,
                    old_band=old_band,
                    new_band=new_band,
                    score=int(score),
                )
            )
    return updated


# --- Explanation and history ------------------------------------------------------


@dataclass(frozen=True)
class RuleLine:
    rule_id: int | None
    reason: str
    kind: str
    times: int
    points: float
    value_now: float


def lead_explanation(
    *, lead: Lead, now: datetime | None = None, history: bool = False
) -> dict[str, Any]:
    """Why the lead has its score: points by rule, positive and negative, and the decay;
    with ``history``, also each model's score over time (``score_history``)."""
    now = now or timezone.now()
    scores = list(
        LeadScore.objects.filter(lead=lead).select_related("model").order_by("-model__priority")
    )
    models = []
    for row in scores:
        part = _explain_model(lead, row, now)
        if history:
            part["history"] = score_history(lead=lead, model=row.model, now=now)
        models.append(part)
    return {
        "lead_id": lead.pk,
        "score": lead.score,
        "band": lead.band,
        "grade": lead.grade,
        "quadrant": lead.quadrant,
        "models": models,
    }


def _explain_model(lead: Lead, row: LeadScore, now: datetime) -> dict[str, Any]:
    model = row.model
    settings = model_settings(model)
    lines: dict[tuple[Any, str], dict[str, Any]] = {}
    half_life = model.decay_half_life_days
    # Plain tuples, not model instances: the busiest leads hold thousands of entries.
    entries = _active_entries(lead.pk, model.pk).values_list(
        "pk", "rule_id", "kind", "reason", "points", "at"
    )
    for pk, rule_id, kind, reason, points, at in entries:
        key = (rule_id, kind) if kind != EntryKind.MANUAL else (pk, kind)
        line = lines.get(key)
        if line is None:
            line = lines[key] = {
                "rule_id": rule_id,
                "reason": reason,
                "kind": kind,
                "times": 0,
                "points": 0.0,
                "value_now": 0.0,
            }
        value = points
        if kind == EntryKind.ENGAGEMENT:
            value *= R.decay_factor((now - at).total_seconds(), half_life)
        line["times"] += 1
        line["points"] += points
        line["value_now"] += value
    state, effective = state_from(
        settings,
        row.fit,
        row.adjustment,
        R.decayed(row.engagement, row.engagement_at, now, model.decay_half_life_days),
        row.last_engaged_at,
        now,
    )
    ordered = sorted(lines.values(), key=lambda line: -abs(line["value_now"]))
    earned = sum(line["points"] for line in ordered if line["kind"] == EntryKind.ENGAGEMENT)
    return {
        "model": {
            "id": model.pk,
            "name": model.name,
            "primary": row.is_primary,
            "warm_from": model.warm_from,
            "hot_from": model.hot_from,
        },
        "score": state.score,
        "fit": round(state.effective_fit, 1),
        "engagement": round(effective, 1),
        "band": state.band,
        "grade": state.grade,
        "quadrant": state.quadrant,
        "decay_applied": round(earned - effective, 1),
        "positive": [_round(line) for line in ordered if line["value_now"] > 0],
        "negative": [_round(line) for line in ordered if line["value_now"] < 0],
    }


def _round(line: dict[str, Any]) -> dict[str, Any]:
    return {**line, "points": round(line["points"], 1), "value_now": round(line["value_now"], 1)}


def _active_entries(lead_id: int, model_id: int) -> Any:
    return ScoreEntry.objects.filter(
        lead_id=lead_id, model_id=model_id, reversal_of__isnull=True, reversal__isnull=True
    ).order_by("at", "pk")


def score_history(
    *, lead: Lead, model: ScoringModel, points: int = 30, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The score over time, derived from the ledger and the decay formula (no snapshots)."""
    entries = ScoreEntry.objects.filter(lead=lead, model=model).values_list("at", "kind", "points")
    series = R.score_series(
        [(at, kind == EntryKind.ENGAGEMENT, value) for at, kind, value in entries],
        now=now or timezone.now(),
        points=points,
        half_life_days=model.decay_half_life_days,
        thresholds=model.thresholds,
    )
    return [{"at": when.isoformat(), "score": score} for when, score in series]


# --- Verification ---------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    lead_id: int
    what: str
    stored: Any
    expected: Any


def scores_verify(
    *, now: datetime | None = None, chunk_size: int = CHUNK_SIZE
) -> Iterator[Difference]:
    """Recompute every lead from its activities and the active rules; yield what differs.

    Checks that the ledger holds exactly the awards the rules give, that each
    ``LeadScore`` equals its ledger under the decay formula, and that the lead's
    materialized primary score equals its ``LeadScore`` carried to the lead's
    ``engagement_at``.
    """
    now = now or timezone.now()
    ruleset = load_ruleset(fresh=True)
    ids = list(Lead.objects.order_by("pk").values_list("pk", flat=True))
    for chunk in _chunks(ids, chunk_size):
        with transaction.atomic():
            leads = list(Lead.objects.filter(pk__in=chunk).select_related("company").order_by("pk"))
            batch = Batch(leads, ruleset, now)
            for lead in leads:
                yield from _verify_lead(batch, lead, now)
            transaction.set_rollback(True)


def _verify_lead(batch: Batch, lead: Lead, now: datetime) -> Iterator[Difference]:
    stored = {(s.model_id): s for s in batch.scores.values() if s.lead_id == lead.pk}
    snapshot = (lead.score, lead.band, lead.grade, round(lead.engagement_score, 3))
    expected_primary = None
    for model in batch.ruleset.for_lead(batch.products.get(lead.pk, [])):
        pending = list(batch.new_entries)
        active, _ = batch._sync(lead, model, batch_awards(batch, lead, model, now))
        if len(batch.new_entries) != len(pending):
            yield Difference(
                lead.pk,
                f"ledger of “{model.name}”",
                "missing or stale awards",
                f"{len(batch.new_entries) - len(pending)} entries to write",
            )
        result = LeadResult(lead=lead, before=(lead.score, lead.band))
        state = batch._state(lead, model, active, result)
        row = stored.get(model.id)
        if row is None:
            yield Difference(lead.pk, f"score in “{model.name}”", None, state.score)
            continue
        adjustment = batch.adjustments.get((lead.pk, model.id), 0.0)
        if abs(row.adjustment - adjustment) > 0.001:
            yield Difference(
                lead.pk, f"manual adjustments in “{model.name}”", row.adjustment, adjustment
            )
        carried = R.decayed(row.engagement, row.engagement_at, now, model.half_life_days)
        if abs(carried - state.engagement) > 0.01 or abs(row.fit - state.fit) > 0.001:
            yield Difference(
                lead.pk,
                f"fit/engagement in “{model.name}”",
                (round(row.fit, 2), round(carried, 2)),
                (round(state.fit, 2), round(state.engagement, 2)),
            )
        if row.is_primary:
            expected_primary = (model, row)
    if expected_primary is None:
        if lead.score != 0 and stored:
            yield Difference(lead.pk, "primary score", lead.score, 0)
        return
    model, row = expected_primary
    at = lead.engagement_at or row.engagement_at
    state, effective = state_from(
        model,
        row.fit,
        row.adjustment,
        R.decayed(row.engagement, row.engagement_at, at, model.half_life_days),
        row.last_engaged_at,
        at,
    )
    expected = (state.score, state.band, state.grade, round(effective, 3))
    if snapshot[:3] != expected[:3] or abs(snapshot[3] - expected[3]) > 0.01:
        yield Difference(
            lead.pk, "materialized score (score, band, grade, engagement)", snapshot, expected
        )


def batch_awards(batch: Batch, lead: Lead, model: CompiledModel, now: datetime) -> list[R.Award]:
    from .engine import activity_facts, desired_awards, lead_facts

    slugs = batch.products.get(lead.pk, [])
    return desired_awards(
        model,
        lead_facts(lead, slugs),
        activity_facts(batch.activities.get(lead.pk, [])),
        batch.ruleset.domain_lists,
        now,
    )


def profile_rescore_lead_ids(*, older_than_seconds: int = 10, limit: int = 1_000) -> list[int]:
    """Leads whose changed fields are still waiting for their rescore (the sweeper's)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        ProfileRescore.objects.filter(requested_at__lte=cutoff)
        .order_by("requested_at")
        .values_list("lead_id", flat=True)[:limit]
    )


def unscored_lead_ids(*, older_than_seconds: int = 10, limit: int = 10_000) -> list[int]:
    """Leads with activities still waiting to be scored: the outbox the sweeper drains."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        Activity.objects.filter(scored_at__isnull=True, received_at__lte=cutoff)
        .order_by()
        .values_list("lead_id", flat=True)
        .distinct()[:limit]
    )


# --- Marketer tools ----------------------------------------------------------------------


def model_duplicate(*, model: ScoringModel, by: User | None = None) -> ScoringModel:
    """Copy a model and its rules into a new draft that can be edited and previewed safely."""
    with transaction.atomic():
        rules = list(model.rules.all())
        segment = list(model.segment_product_lines.all())
        copy = ScoringModel.objects.get(pk=model.pk)
        copy.pk = None
        copy.name = _free_name(f"{model.name} (draft)")
        copy.status = "draft"
        copy.is_default = False
        copy.save()
        copy.segment_product_lines.set(segment)
        for rule in rules:
            rule.pk = None
            rule.model = copy
        Rule.objects.bulk_create(rules)
        changelog_record(obj=copy, action="create", before=None, by=by)
    return copy


def _free_name(name: str) -> str:
    candidate, n = name, 2
    while ScoringModel.objects.filter(name=candidate).exists():
        candidate, n = f"{name} {n}", n + 1
    return candidate


def model_activate(*, model: ScoringModel, by: User | None = None) -> RescoreJob:
    """Make a draft live and rescore its leads on the bulk queue."""
    with transaction.atomic():
        before = snapshot(model)
        model.status = "active"
        model.save(update_fields=["status", "updated_at"])
        changelog_record(obj=model, action="activate", before=before, by=by)
        return rescore_job_start(model=model, reason="Model activated", by=by)


def snapshot(obj: ScoringModel | Rule) -> dict[str, Any]:
    from django.forms.models import model_to_dict

    data = model_to_dict(obj)
    data.pop("segment_product_lines", None)
    return {
        key: (str(value) if not isinstance(value, int | float | bool | str | None) else value)
        for key, value in data.items()
    }


def changelog_record(
    *, obj: ScoringModel | Rule, action: str, before: dict[str, Any] | None, by: User | None
) -> ChangeLog:
    after = None if action == "delete" else snapshot(obj)
    return ChangeLog.objects.create(
        object_type=obj._meta.model_name or "",
        object_id=obj.pk,
        object_repr=str(obj)[:200],
        action=action,
        before=before,
        after=after,
        by=by,
    )


@dataclass
class BandOutcome:
    band: str
    won: int = 0
    lost: int = 0

    @property
    def closed(self) -> int:
        return self.won + self.lost

    @property
    def conversion(self) -> float | None:
        return None if not self.closed else self.won / self.closed


def model_preview(*, model: ScoringModel, now: datetime | None = None) -> dict[str, Any]:
    """Score past won and lost leads, and today's leads, with ``model`` without saving anything.

    Answers what a marketer asks before going live: does a higher band convert
    better, how many current leads would change band or stage, and the lowest score
    among converted leads as a hint for the MQL threshold.
    """
    now = now or timezone.now()
    ruleset = load_ruleset([model])
    compiled = ruleset.models[0]
    outcomes = _lead_outcomes()
    bands = {band: BandOutcome(band) for band in ("hot", "warm", "cold")}
    converted_scores: list[int] = []
    changes = {"band": 0, "stage": 0, "scored": 0}
    ids = list(segment_lead_ids(model))
    with transaction.atomic():
        for chunk in _chunks(ids, CHUNK_SIZE):
            leads = list(Lead.objects.filter(pk__in=chunk).select_related("company"))
            batch = Batch(leads, ruleset, now)
            for lead in leads:
                result = LeadResult(lead=lead, before=(lead.score, lead.band))
                active, _ = batch._sync(lead, compiled, batch_awards(batch, lead, compiled, now))
                state = batch._state(lead, compiled, active, result)
                changes["scored"] += 1
                outcome = outcomes.get(lead.pk)
                if outcome is not None:
                    setattr(bands[state.band], outcome, getattr(bands[state.band], outcome) + 1)
                    if outcome == "won":
                        converted_scores.append(state.score)
                elif lead.stage in AUTO_QUALIFIABLE:
                    changes["band"] += state.band != lead.band
                    changes["stage"] += _would_move(lead, state.score, compiled)
        transaction.set_rollback(True)
    ordered = [bands["hot"], bands["warm"], bands["cold"]]
    rates = [b.conversion for b in ordered if b.conversion is not None]
    return {
        "model": model,
        "bands": ordered,
        "closed": sum(b.closed for b in ordered),
        "lowest_converted_score": min(converted_scores) if converted_scores else None,
        "would_change_band": changes["band"],
        "would_change_stage": changes["stage"],
        "scored": changes["scored"],
        "backwards": len(rates) >= 2 and rates != sorted(rates, reverse=True),
    }


def _would_move(lead: Lead, score: int, model: CompiledModel) -> bool:
    if score >= model.sql_threshold:
        return lead.stage != Stage.SQL
    if score >= model.mql_threshold:
        return lead.stage in (Stage.NEW, Stage.RECYCLED)
    return False


def _lead_outcomes() -> dict[int, str]:
    """Won for leads with a won deal, lost for leads whose deals were all lost."""
    from leads.models import Deal

    outcomes: dict[int, str] = {}
    for lead_id, status in Deal.objects.exclude(status="open").values_list("lead_id", "status"):
        if status == "won" or lead_id not in outcomes:
            outcomes[lead_id] = status
    return outcomes

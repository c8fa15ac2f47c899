"""The outboxes of real-time scoring: stored activities not yet scored, and leads whose
changed fields wait for their rescore (``ProfileRescore``). Requests to drain them
after commit, the drain itself, and what beat's sweeper finds still waiting."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import partial

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from crm.resilience import cache_call, task_enqueue
from leads.models import Activity, Lead

from .lead_scoring import leads_score
from .models import ProfileRescore

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
    if not _drain_mark(lead_id):
        return False
    if task_enqueue(
        "scoring.tasks.score_lead", lead_id, pending_only=True, what=f"Scoring of lead {lead_id}"
    ):
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
    profile_rescores_record(lead_ids=[lead_id])


def profile_rescores_record(*, lead_ids: list[int]) -> None:
    """``profile_rescore_record`` for many leads, one statement a thousand."""
    now = timezone.now()
    for start in range(0, len(lead_ids), 1_000):
        ProfileRescore.objects.bulk_create(
            [
                ProfileRescore(lead_id=pk, requested_at=now)
                for pk in lead_ids[start : start + 1_000]
            ],
            update_conflicts=True,
            unique_fields=["lead"],
            update_fields=["requested_at"],
        )


def leads_rescore_request(*, lead_ids: list[int]) -> bool:
    """Queue a rescore of these leads on the bulk queue; call after commit. Their
    ``ProfileRescore`` rows, recorded with the change, bring them to the sweeper when the
    broker cannot be reached."""
    return task_enqueue(
        "scoring.tasks.rescore_leads", lead_ids, what=f"Rescore of {len(lead_ids)} leads"
    )


def lead_score_request(*, lead_id: int) -> bool:
    """Queue a rescore of the lead (its explicit fields changed); call after commit.

    When the broker cannot be reached the change stays saved and the failure is logged;
    the recorded ``ProfileRescore`` brings the lead to the sweeper.
    """
    return task_enqueue("scoring.tasks.score_lead", lead_id, what=f"Rescore of lead {lead_id}")


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
    Only new activities are known to have changed: leads whose scores are current take
    the fast path (``scoring.incremental``).
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
        return len(leads_score(lead_ids=[*target, *others], incremental=True))


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

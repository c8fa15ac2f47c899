"""What scoring does when leads announce a fact: new activities are scored once their
transaction commits, a changed profile is rescored (connected in ``ScoringConfig.ready``)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from crm.resilience import task_enqueue

from .models import RescoreJob
from .outbox import lead_score_request, pending_scoring_request, profile_rescore_record
from .predictive.services import predictive_scores_missing


class _DrainRequest:
    """One request for a drain of waiting activities, which ``run`` makes once the
    transaction that stored them commits, however many leads they belong to.

    The drain scores every lead with unscored activities, starting with ``lead_id``, so
    one request covers every lead stored in the atomic block it was registered in.
    """

    def __init__(self, lead_id: int, block: list[str | None]) -> None:
        self.lead_id = lead_id
        # The savepoints open when it was registered: it serves that block and the
        # blocks nested in it.
        self.block = block
        self.done = False

    def run(self) -> None:
        self.done = True
        pending_scoring_request(lead_id=self.lead_id)

    def covers(self, connection: Any) -> bool:
        """Whether this request runs at the commit of the current block: it was registered
        in it or in a block around it, has not run, and was not dropped by the rollback of
        its savepoint."""
        if self.done or connection.savepoint_ids[: len(self.block)] != self.block:
            return False
        callbacks = reversed(connection.run_on_commit)
        return any(getattr(func, "__self__", None) is self for _, func, _ in callbacks)


def queue_activities(sender: Any, lead_id: int, **kwargs: Any) -> None:
    """Score the new activities once the transaction that stored them has committed.

    One request per atomic block: a batch naming a thousand leads asks for one drain,
    not a thousand. Nothing is asked for when the transaction rolls back. The request
    runs ``robust``: the activities are committed already, so a broker or cache that
    cannot be reached is logged and never fails the caller (the sweeper catches up).
    """
    connection = transaction.get_connection()
    request = getattr(connection, "scoring_drain_request", None)
    if connection.in_atomic_block and request is not None and request.covers(connection):
        return
    request = _DrainRequest(lead_id, block=list(connection.savepoint_ids))
    connection.scoring_drain_request = request
    transaction.on_commit(request.run, robust=True)


def queue_profile(sender: Any, lead_id: int, **kwargs: Any) -> None:
    """Rescore the lead's fit once the transaction that changed it has committed.

    The request is recorded in that transaction (``ProfileRescore``), so it survives a
    broker that cannot be reached; the message sent after commit is robust, as the drain
    request is: the change is saved whatever the broker does.
    """
    profile_rescore_record(lead_id=lead_id)

    def request_rescore() -> None:
        lead_score_request(lead_id=lead_id)

    transaction.on_commit(request_rescore, robust=True)


def fill_predictive_on_rescore(sender: Any, model_id: int, **kwargs: Any) -> None:
    """``rescore_finished``: a rescore that wrote score rows without a predictive score
    (a version just published takes over the live predictive model) has them filled on
    the bulk queue; real-time scoring fills any lead it scores before that."""
    if predictive_scores_missing(model_id=model_id):
        task_enqueue(
            "scoring.tasks.predictive_fill",
            model_id,
            what=f"Predictive scores of model {model_id}",
        )


def refresh_accounts_on_rescore(sender: Any, job_id: int, model_id: int, **kwargs: Any) -> None:
    """``rescore_finished``: when a range of the job touched too many companies to sum
    them itself (``SCORING_ACCOUNTS_INLINE``), every company's account is summed again on
    the bulk queue, once: one pass over the scores, where summing each range's companies
    would read every lead once a range. A job whose ranges summed theirs queues nothing."""
    if not RescoreJob.objects.filter(pk=job_id, accounts_pending=True).exists():
        return
    task_enqueue(
        "scoring.tasks.refresh_account_scores",
        what=f"Account scores after a rescore of model {model_id}",
    )

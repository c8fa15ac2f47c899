"""Celery tasks: thin wrappers that load ids and call one service each."""

from celery import shared_task
from django.db import OperationalError

from . import services


@shared_task(
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def score_lead(lead_id: int, pending_only: bool = False) -> None:
    """Rescore a lead (a missing lead is a no-op).

    ``pending_only``: the task was queued for new activities; score them, with other
    leads' waiting activities, unless an earlier task already has.
    """
    if pending_only:
        services.pending_drain(lead_id=lead_id or None)
    else:
        services.lead_score(lead_id=lead_id)


@shared_task(ignore_result=True)
def sweep_unscored() -> int:
    """Re-queue leads whose activities or changed fields are still unscored, in case a
    message was lost; how many leads."""
    ids = services.unscored_lead_ids()
    if ids:
        services.pending_scoring_request(lead_id=ids[0])
    changed = services.profile_rescore_lead_ids()
    for lead_id in changed:
        services.lead_score_request(lead_id=lead_id)
    return len(ids) + len(changed)


@shared_task(ignore_result=True, acks_late=True)
def rescore_model(job_id: int) -> None:
    services.rescore_job_run(job_id=job_id)


@shared_task(ignore_result=True)
def rescore_resume() -> int:
    """Beat's sweeper: queue again the rescore jobs whose message was lost."""
    return services.rescore_jobs_resume()


@shared_task(ignore_result=True, acks_late=True)
def rescore_range(job_id: int, lo: int, hi: int) -> None:
    """One lead-id range of a rescore job (PostgreSQL); running it twice changes nothing."""
    services.rescore_job_range(job_id=job_id, lo=lo, hi=hi)


@shared_task(ignore_result=True)
def decay_scores() -> int:
    return services.scores_decay()

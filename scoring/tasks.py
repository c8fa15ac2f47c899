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
def score_lead(lead_id: int) -> None:
    """Apply a lead's pending activities and field changes (a missing lead is a no-op)."""
    services.lead_score(lead_id=lead_id)


@shared_task(ignore_result=True)
def sweep_unscored() -> int:
    """Re-queue leads whose activities are still unscored, in case a message was lost."""
    ids = services.unscored_lead_ids()
    for lead_id in ids:
        score_lead.delay(lead_id)
    return len(ids)


@shared_task(ignore_result=True, acks_late=True)
def rescore_model(job_id: int) -> None:
    services.rescore_job_run(job_id=job_id)


@shared_task(ignore_result=True)
def decay_scores() -> int:
    return services.scores_decay()

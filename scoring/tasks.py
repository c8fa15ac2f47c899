"""Celery tasks: thin wrappers that load ids and call one service each."""

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from crm.models import User

from .accounts import accounts_refresh_all
from .decay import scores_decay
from .lead_scoring import lead_score, leads_score_chunked
from .models import ScoringModel
from .outbox import (
    lead_score_request,
    pending_drain,
    pending_scoring_request,
    profile_rescore_lead_ids,
    unscored_lead_ids,
)
from .predictive.distill_runs import model_distillation_run
from .predictive.services import (
    NotEnoughData,
    predictive_retrain_all,
    predictive_scores_fill,
    predictive_train,
)
from .rescore_jobs import rescore_job_range, rescore_job_run, rescore_jobs_resume
from .snapshots import scores_snapshot
from .suggestion_runs import model_suggestion_run


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
        pending_drain(lead_id=lead_id or None)
    else:
        lead_score(lead_id=lead_id)


@shared_task(ignore_result=True)
def sweep_unscored() -> int:
    """Re-queue leads whose activities or changed fields are still unscored, in case a
    message was lost; how many leads."""
    ids = unscored_lead_ids()
    if ids:
        pending_scoring_request(lead_id=ids[0])
    changed = profile_rescore_lead_ids()
    for lead_id in changed:
        lead_score_request(lead_id=lead_id)
    return len(ids) + len(changed)


@shared_task(ignore_result=True, acks_late=True)
def rescore_leads(lead_ids: list[int]) -> int:
    return leads_score_chunked(lead_ids=lead_ids)


@shared_task(ignore_result=True, acks_late=True)
def rescore_model(job_id: int) -> None:
    rescore_job_run(job_id=job_id)


@shared_task(ignore_result=True)
def rescore_resume() -> int:
    """Beat's sweeper: queue again the rescore jobs whose message was lost."""
    return rescore_jobs_resume()


@shared_task(ignore_result=True, acks_late=True)
def rescore_range(job_id: int, lo: int, hi: int) -> None:
    """One lead-id range of a rescore job (PostgreSQL); running it twice changes nothing."""
    rescore_job_range(job_id=job_id, lo=lo, hi=hi)


@shared_task(ignore_result=True)
def decay_scores() -> int:
    """Beat's nightly job: the decay, then the snapshot of the scores it left (the score
    trend's record)."""
    now = timezone.now()
    updated = scores_decay(now=now)
    scores_snapshot(now=now)
    return updated


@shared_task(ignore_result=True, acks_late=True)
def refresh_account_scores() -> int:
    """Beat's nightly job: every company's account scores summed again from its people's
    scores, decayed to now."""
    return accounts_refresh_all()


@shared_task(ignore_result=True)
def suggest_weights(model_id: int, key: str) -> None:
    """Fit a model's suggested weights and keep them (``scoring.suggestion_runs``)."""
    model_suggestion_run(model_id=model_id, key=key)


@shared_task(ignore_result=True)
def predictive_distill_weights(model_id: int, key: str) -> None:
    """Fit the rule weights derived from a model's live predictive model and keep them
    (``scoring.predictive.distill_runs``)."""
    model_distillation_run(model_id=model_id, key=key)


@shared_task(ignore_result=True, acks_late=True)
def predictive_train_model(model_id: int, user_id: int | None = None) -> None:
    """Train a predictive model for one scoring model (missing model: no-op; too few closed
    leads: nothing trained)."""
    model = ScoringModel.objects.filter(pk=model_id).first()
    if model is None:
        return
    by = User.objects.filter(pk=user_id).first() if user_id else None
    try:
        predictive_train(model=model, by=by)
    except NotEnoughData:
        return


@shared_task(ignore_result=True, acks_late=True)
def predictive_fill(model_id: int) -> int:
    """Give the model's scored leads without a predictive score the live model's."""
    return predictive_scores_fill(model_id=model_id)


@shared_task(ignore_result=True)
def predictive_retrain() -> int:
    """Beat's weekly retrain of every active model with enough closed leads."""
    return predictive_retrain_all()

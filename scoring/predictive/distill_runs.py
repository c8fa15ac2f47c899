"""Rule weights from the live predictive model, fitted in the background: the fit reads the
model's features and the rule matrix of up to 20,000 leads, seconds of work, so a page or
the API asks for it (``model_distillation_request``), a bulk worker fits it
(``scoring.tasks.predictive_distill_weights`` calling ``model_distillation_run``) and
keeps it in the shared cache (``scoring.predictive.distilling``), and the next request
reads it (``scoring.background_fits``). A draft is made only from a kept fit
(``model_draft_from_kept_distillation``): no request fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial

from crm.models import User
from crm.resilience import task_enqueue

from ..background_fits import COMPUTING, READY, fit_request, fit_run
from ..models import ScoringModel
from .distilling import (
    WHAT,
    Distillation,
    DistillationError,
    distillation_basis,
    kept_distillation,
    model_distillation,
    model_draft_from_distillation,
)


@dataclass(frozen=True)
class DistillationState:
    """Where a model's rule weights from its predictive model stand: ``ready`` with the
    distillation (which may say why there is none), or ``computing`` since a time, with
    the error of the last attempt if it failed."""

    status: str
    distillation: Distillation | None = None
    since: datetime | None = None
    error: str = ""

    @property
    def ready(self) -> bool:
        return self.status == READY


def model_distillation_request(*, model: ScoringModel) -> DistillationState:
    """The kept distillation (or why there can be none), else the fit queued on the bulk
    queue, once, after the caller's commit."""
    basis = distillation_basis(model=model)
    if basis.key is None:
        return DistillationState(READY, basis.base)
    kept = kept_distillation(key=basis.key)
    if kept is not None:
        return DistillationState(READY, kept)
    enqueue = partial(_enqueue, model.pk, basis.key)
    since, error = fit_request(key=basis.key, enqueue=enqueue, what=WHAT)
    return DistillationState(COMPUTING, since=since, error=error)


def _enqueue(model_id: int, key: str) -> None:
    task_enqueue(
        "scoring.tasks.predictive_distill_weights",
        model_id,
        key,
        what=f"Rule weights from the predictive model of {model_id}",
    )


def model_distillation_run(*, model_id: int, key: str) -> Distillation | None:
    """Fit and keep the distillation of the model (a missing model is a no-op); clear the
    marker the request set under ``key``. A failure is kept for the next request to tell,
    and raised."""

    def fit() -> Distillation | None:
        model = ScoringModel.objects.filter(pk=model_id).first()
        return None if model is None else model_distillation(model=model)

    return fit_run(key=key, fit=fit, what=WHAT)


def model_draft_from_kept_distillation(*, model: ScoringModel, by: User | None) -> ScoringModel:
    """A draft version of ``model`` with the points proposed by the kept distillation.
    Raises ``DistillationError`` when none is kept yet (its fit is queued) or when it
    proposes nothing."""
    state = model_distillation_request(model=model)
    if not state.ready or state.distillation is None:
        raise DistillationError(
            "The rule weights from the predictive model are still being computed in the "
            "background; make the draft once they are shown."
        )
    return model_draft_from_distillation(model=model, by=by, distillation=state.distillation)

"""Suggested weights fitted in the background: the fit reads every closed lead of a model's
segment and takes tens of seconds at a hundred thousand of them, so a page or the API
asks for it (``model_suggestion_request``), a bulk worker fits it
(``scoring.tasks.suggest_weights`` calling ``model_suggestion_run``) and keeps it where
``scoring.suggestions`` keeps every suggestion (the shared cache, under a key that
changes with the model, its rules and its closed leads), and the next request reads it.

While the fit runs a marker under the same key says since when, so that requests
meanwhile queue nothing more and can say "computing"; a fit that failed leaves its
error for the next request to tell, which then queues the fit again
(``scoring.background_fits``).

"Make a draft with these weights" (``model_draft_request``) makes the draft from the
kept suggestion only. Once it is no longer kept (``CACHE_SECONDS`` after the fit, or
the model, its rules or its closed leads changed) the fit is queued, or joined, as
for reading it, and no draft is made: the weights fitted again may differ from those
the person saw, so they see them before a draft is made of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial

from crm.models import User
from crm.resilience import task_enqueue

from .background_fits import COMPUTING, READY, fit_request, fit_run
from .models import ScoringModel
from .suggestions import (
    WeightSuggestion,
    kept_suggestion,
    model_draft_from_suggestion,
    model_suggestion,
    suggestion_basis,
)

__all__ = [
    "COMPUTING",
    "READY",
    "REFITTING",
    "SuggestionState",
    "model_draft_request",
    "model_suggestion_request",
]

WHAT = "Suggested weights"
# What the surfaces tell someone who asked for a draft of weights no longer kept.
REFITTING = (
    "The suggested weights are kept for a while only, and these were no longer: they are "
    "being fitted again on the closed leads as they are now. Check them when they show, "
    "then make the draft."
)


@dataclass(frozen=True)
class SuggestionState:
    """Where a model's suggested weights stand: ``ready`` with the suggestion (which may
    say that too few leads are closed), or ``computing`` since a time, with the error of
    the last attempt if it failed."""

    status: str
    suggestion: WeightSuggestion | None = None
    since: datetime | None = None
    error: str = ""

    @property
    def ready(self) -> bool:
        return self.status == READY


def model_suggestion_request(*, model: ScoringModel) -> SuggestionState:
    """The model's suggested weights if they are kept (or if too few leads are closed to
    fit any), else the fit queued on the bulk queue, once, after the caller's commit."""
    basis = suggestion_basis(model=model)
    if basis.key is None:
        return SuggestionState(READY, basis.base)
    kept = kept_suggestion(key=basis.key)
    if kept is not None:
        return SuggestionState(READY, kept)
    enqueue = partial(_enqueue, model.pk, basis.key)
    since, error = fit_request(key=basis.key, enqueue=enqueue, what=WHAT)
    return SuggestionState(COMPUTING, since=since, error=error)


def model_draft_request(
    *, model: ScoringModel, by: User | None
) -> tuple[ScoringModel | None, SuggestionState]:
    """A draft version of ``model`` with its kept suggested weights, and where the
    suggestion stands. Never fits: when the suggestion is no longer kept, no draft
    (None) and the fit queued or joined (``model_suggestion_request``), the state
    ``computing``; the caller answers as while the suggestion is fitted, telling
    ``REFITTING``. Raises ``SuggestionError`` when too few leads are closed to suggest
    any."""
    state = model_suggestion_request(model=model)
    if not state.ready:
        return None, state
    assert state.suggestion is not None
    return model_draft_from_suggestion(model=model, by=by, suggestion=state.suggestion), state


def _enqueue(model_id: int, key: str) -> None:
    task_enqueue(
        "scoring.tasks.suggest_weights", model_id, key, what=f"Suggested weights of {model_id}"
    )


def model_suggestion_run(*, model_id: int, key: str) -> WeightSuggestion | None:
    """Fit the suggestion of the model (a missing model is a no-op) and keep it; clear the
    marker the request set under ``key``. A failure is kept for the next request to tell,
    and raised."""

    def fit() -> WeightSuggestion | None:
        model = ScoringModel.objects.filter(pk=model_id).first()
        return None if model is None else model_suggestion(model=model)

    return fit_run(key=key, fit=fit, what=WHAT)

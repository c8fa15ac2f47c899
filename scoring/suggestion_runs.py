"""Suggested weights fitted in the background: the fit reads every closed lead of a model's
segment and takes tens of seconds at a hundred thousand of them, so a page or the API
asks for it (``model_suggestion_request``), a bulk worker fits it
(``scoring.tasks.suggest_weights`` calling ``model_suggestion_run``) and keeps it where
``scoring.suggestions`` keeps every suggestion (the shared cache, under a key that
changes with the model, its rules and its closed leads), and the next request reads it.

While the fit runs a marker under the same key says since when, so that requests
meanwhile queue nothing more and can say "computing"; a fit that failed leaves its
error for the next request to tell, which then queues the fit again.

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

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from crm.models import User
from crm.resilience import cache_call, task_enqueue

from .models import ScoringModel
from .suggestions import (
    WeightSuggestion,
    kept_suggestion,
    model_draft_from_suggestion,
    model_suggestion,
    suggestion_basis,
)

# A fit not done by then is taken as lost (its worker died): the next request queues it.
PENDING_SECONDS = 15 * 60
FAILED_SECONDS = 10 * 60
READY, COMPUTING = "ready", "computing"
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


def _get(key: str) -> object:
    return cache_call(partial(cache.get, key), default=None, what="Suggested weights")


def model_suggestion_request(*, model: ScoringModel) -> SuggestionState:
    """The model's suggested weights if they are kept (or if too few leads are closed to
    fit any), else the fit queued on the bulk queue, once, after the caller's commit."""
    basis = suggestion_basis(model=model)
    if basis.key is None:
        return SuggestionState(READY, basis.base)
    kept = kept_suggestion(key=basis.key)
    if kept is not None:
        return SuggestionState(READY, kept)
    pending, failed = f"{basis.key}:pending", f"{basis.key}:failed"
    error = _get(failed)
    if error is not None:
        cache_call(partial(cache.delete, failed), default=None, what="Suggested weights")
    since = _get(pending)
    if isinstance(since, datetime):
        return SuggestionState(COMPUTING, since=since, error=str(error or ""))
    now = timezone.now()
    add = partial(cache.add, pending, now, PENDING_SECONDS)
    if cache_call(add, default=True, what="Suggested weights"):
        transaction.on_commit(partial(_enqueue, model.pk, basis.key))
    return SuggestionState(COMPUTING, since=now, error=str(error or ""))


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
    model = ScoringModel.objects.filter(pk=model_id).first()
    try:
        if model is None:
            return None
        return model_suggestion(model=model)
    except Exception as exc:
        keep = partial(cache.set, f"{key}:failed", f"The fit failed: {exc}", FAILED_SECONDS)
        cache_call(keep, default=None, what="Suggested weights")
        raise
    finally:
        cache_call(partial(cache.delete, f"{key}:pending"), default=None, what="Suggested weights")

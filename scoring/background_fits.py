"""Fits too slow for a request, run once on the bulk queue and kept in the shared cache.

A page or the API asks for a result under a key that changes with what it is fitted
on. When nothing is kept under the key, ``fit_request`` sets a marker saying since when
the fit runs (so that requests meanwhile queue nothing more and can say "computing")
and queues the fit after the caller's commit; ``fit_run``, called by the worker, clears
the marker and, when the fit fails, keeps its error for the next request to tell, which
then queues the fit again. Suggested weights (``scoring.suggestion_runs``) and rule
weights from a predictive model (``scoring.predictive.distilling``) both run this way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TypeVar

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from crm.resilience import cache_call

# A fit not done by then is taken as lost (its worker died): the next request queues it.
PENDING_SECONDS = 15 * 60
FAILED_SECONDS = 10 * 60
READY, COMPUTING = "ready", "computing"

T = TypeVar("T")


def fit_request(*, key: str, enqueue: Callable[[], None], what: str) -> tuple[datetime, str]:
    """Queue the fit kept under ``key`` (``enqueue``, after the caller's commit) unless it
    is queued already; since when it runs, and why the last attempt failed ("" if not)."""
    pending, failed = f"{key}:pending", f"{key}:failed"
    error = cache_call(partial(cache.get, failed), default=None, what=what)
    if error is not None:
        cache_call(partial(cache.delete, failed), default=None, what=what)
    since = cache_call(partial(cache.get, pending), default=None, what=what)
    if isinstance(since, datetime):
        return since, str(error or "")
    now = timezone.now()
    if cache_call(partial(cache.add, pending, now, PENDING_SECONDS), default=True, what=what):
        transaction.on_commit(enqueue)
    return now, str(error or "")


def fit_run(*, key: str, fit: Callable[[], T], what: str) -> T:
    """Run ``fit`` (which keeps its result under ``key``) and clear the marker the request
    set; a failure is kept for the next request to tell, and raised."""
    try:
        return fit()
    except Exception as exc:
        keep = partial(cache.set, f"{key}:failed", f"The fit failed: {exc}", FAILED_SECONDS)
        cache_call(keep, default=None, what=what)
        raise
    finally:
        cache_call(partial(cache.delete, f"{key}:pending"), default=None, what=what)

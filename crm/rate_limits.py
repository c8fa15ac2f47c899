"""Limits on public endpoints: fixed-window request counters in the shared cache (Redis
in production, files locally) and body sizes."""

from __future__ import annotations

import math
import time

from django.core.cache import cache
from django.http import HttpRequest

from .resilience import cache_call


def rate_limit_hit(key: str, *, limit: int, window_seconds: int) -> int | None:
    """Count one request against ``key``; the seconds to wait when it is over ``limit``.

    Returns None while the current window has room. Every web process shares the
    counter through the cache, so the limit holds across processes. While the cache
    cannot be reached nothing is counted and every request passes (logged): a form post
    or an event lost to an outage would cost more than a burst let through.
    """
    now = time.time()
    window_start = int(now // window_seconds) * window_seconds
    counter = f"rate:{key}:{window_start}"
    count = cache_call(
        lambda: _count(counter, timeout=window_seconds + 1), default=0, what=f"Rate limit {key}"
    )
    if count <= limit:
        return None
    return max(1, math.ceil(window_start + window_seconds - now))


def _count(counter: str, *, timeout: int) -> int:
    """Add one to the counter, created for ``timeout`` seconds; its new value."""
    cache.add(counter, 0, timeout=timeout)
    try:
        return cache.incr(counter)
    except ValueError:  # the counter expired between add() and incr()
        cache.set(counter, 1, timeout=timeout)
        return 1


def body_exceeds(request: HttpRequest, limit: int) -> bool:
    """Whether the request's body is over ``limit`` bytes, by its declared length or
    what arrived (a missing or garbled Content-Length counts as what arrived)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    return declared > limit or len(request.body) > limit

"""Working on while Redis, the broker and the shared cache, cannot be reached.

A down dependency delays work but never loses what a user sent: the database row is
the outbox (an unscored activity, a pending delivery, a queued message) and a beat
sweeper queues it again once the broker is back. So a request never fails because a
task could not be sent or the cache did not answer: ``task_enqueue`` logs the failed
send, and ``cache_call`` answers a default instead of the cache's.

A Redis that hangs rather than refuses costs a request the whole socket timeout; so
after a slow failure this process leaves the broker, or the cache, alone for a few
seconds (``Breaker``) instead of making every request wait for it. A refused connection
costs nothing, and is tried again at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Task, current_app
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# What sending a task raises when the broker cannot be reached: kombu wraps most
# connection errors, a connection that breaks mid-publish can surface as the client's own.
BROKER_ERRORS: tuple[type[Exception], ...] = (KombuOperationalError, RedisError, OSError)
# What the cache raises when its server cannot be reached (Redis), or its folder cannot
# be written (the file cache of a local install).
CACHE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)
# What the database raises when it cannot take a request now: unreachable, restarting,
# a lost connection, a deadlock or a cancelled statement. Nothing can be stored then,
# so a request answers 503 with Retry-After: the client sends it again later.
STORAGE_ERRORS: tuple[type[Exception], ...] = (DatabaseOperationalError, DatabaseInterfaceError)
RETRY_AFTER_SECONDS = 30
UNAVAILABLE_MESSAGE = "Hotlist cannot store this right now. Send it again later."


# How long this process leaves Redis alone after it failed slowly (took this long).
SKIP_SECONDS = 5.0
SLOW_FAILURE_SECONDS = 0.2

T = TypeVar("T")


class Breaker:
    """Whether to leave a server alone for now: for ``SKIP_SECONDS`` after a call to it
    failed slowly (timed out, rather than being refused)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failed_at: float | None = None

    def open(self) -> bool:
        return self.failed_at is not None and time.monotonic() - self.failed_at < SKIP_SECONDS

    def failed(self, *, started: float) -> None:
        """A call begun at ``started`` (``time.monotonic()``) failed."""
        now = time.monotonic()
        if now - started >= SLOW_FAILURE_SECONDS:
            self.failed_at = now

    def reset(self) -> None:
        self.failed_at = None


broker = Breaker("broker")
shared_cache = Breaker("cache")


def task_enqueue(task: Task | str, *args: Any, what: str, **kwargs: Any) -> bool:
    """Send ``task`` (a task, or its registered name) with the arguments; whether it was sent.

    Services name their tasks ("leads.tasks.handoff_assign"): a tasks module imports the
    services it wraps, so a service importing it back would make a cycle.

    Call after commit, for work whose row a beat sweeper finds again: when the broker
    cannot be reached (or timed out moments ago) the failure is logged (``what`` names the
    work, e.g. "Scoring of lead 42") and the caller goes on. The broker settings keep
    the attempt short.
    """
    if broker.open():
        log.warning("%s not queued: the broker timed out moments ago", what)
        return False
    if isinstance(task, str):
        task = current_app.tasks[task]
    started = time.monotonic()
    try:
        task.delay(*args, **kwargs)
    except BROKER_ERRORS as exc:
        broker.failed(started=started)
        log.warning("%s not queued: the broker is unreachable (%s)", what, exc)
        return False
    broker.reset()
    return True


def cache_call(call: Callable[[], T], *, default: T, what: str) -> T:
    """``call()``, which uses the shared cache; ``default`` when the cache cannot be
    reached (or timed out moments ago), logged with ``what`` (e.g. "Rate limit form:3")."""
    if shared_cache.open():
        return default
    started = time.monotonic()
    try:
        result = call()
    except CACHE_ERRORS as exc:
        shared_cache.failed(started=started)
        log.warning("%s skipped: the cache is unreachable (%s)", what, exc)
        return default
    shared_cache.reset()
    return result

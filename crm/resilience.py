"""Working on while Redis, the broker and the shared cache, cannot be reached.

A down dependency delays work but never loses what a user sent: the database row is
the outbox (an unscored activity, a pending delivery, a queued message) and a beat
sweeper queues it again once the broker is back. So a request never fails because a
task could not be sent or the cache did not answer: ``task_enqueue`` logs the failed
send, and callers of the cache catch ``CACHE_ERRORS`` and go on without it.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
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


def task_enqueue(task: Task, *args: Any, what: str, **kwargs: Any) -> bool:
    """Send ``task`` with the arguments; whether it was sent.

    Call after commit, for work whose row a beat sweeper finds again: when the broker
    cannot be reached the failure is logged (``what`` names the work, e.g. "Scoring of
    lead 42") and the caller goes on. The broker settings keep the attempt short.
    """
    try:
        task.delay(*args, **kwargs)
    except BROKER_ERRORS as exc:
        log.warning("%s not queued: the broker is unreachable (%s)", what, exc)
        return False
    return True

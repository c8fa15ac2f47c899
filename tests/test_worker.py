"""A real Celery worker, fed through Redis, runs the project's tasks."""

from __future__ import annotations

import time

import pytest
from celery.result import EagerResult

from crm.models import WorkerHeartbeat
from crm.tasks import record_heartbeat


def wait_for(condition, timeout: float = 20.0, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_runs_the_heartbeat_and_healthz_reports_it(celery_worker_live, client):
    # Given a live worker and no heartbeat yet
    assert client.get("/healthz").json()["worker"]["ok"] is False

    # When the heartbeat task is sent through the broker
    result = record_heartbeat.delay()

    # Then the worker, not this process, runs it
    assert not isinstance(result, EagerResult)
    assert wait_for(WorkerHeartbeat.objects.exists), "no heartbeat within 20 s"
    body = client.get("/healthz").json()
    assert body["worker"]["ok"] is True
    assert body["broker"] == {"ok": True, "transport": "redis"}
    assert body["status"] == "ok"

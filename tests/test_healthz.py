"""``/healthz`` reports the database, the broker and the workers."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from django.db import OperationalError, connections
from django.utils import timezone

from crm.celery import app as celery_app
from crm.models import WorkerHeartbeat
from crm.tasks import record_heartbeat


def get_health(client) -> tuple[int, dict]:
    response = client.get("/healthz")
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response.status_code, response.json()


def test_healthz_answers_json_with_each_part(db, client):
    status, body = get_health(client)

    assert status == 200
    assert set(body) == {"database", "broker", "worker", "status"}
    assert body["database"] == {"ok": True, "vendor": connections["default"].vendor}
    assert body["broker"]["ok"] is True


def test_healthz_needs_no_login(db, client):
    status, _ = get_health(client)

    assert status == 200


def test_worker_is_down_before_any_heartbeat(db, client):
    _, body = get_health(client)

    assert body["worker"] == {"ok": False, "last_heartbeat": None, "age_seconds": None}
    assert body["status"] == "degraded"


def test_worker_is_ok_after_a_heartbeat(db, client):
    # Given the heartbeat task ran (eagerly, as beat would send it to a worker)
    before = timezone.now()
    record_heartbeat.delay()

    # When /healthz is asked
    status, body = get_health(client)

    # Then it reports that heartbeat as fresh
    assert status == 200
    assert body["worker"]["ok"] is True
    assert dt.datetime.fromisoformat(body["worker"]["last_heartbeat"]) >= before
    assert 0 <= body["worker"]["age_seconds"] < 5
    assert body["status"] == "ok"


def test_heartbeat_task_keeps_one_row_per_host(db):
    record_heartbeat.delay()
    first = WorkerHeartbeat.objects.get().beat_at

    record_heartbeat.delay()

    assert WorkerHeartbeat.objects.count() == 1
    assert WorkerHeartbeat.objects.get().beat_at >= first


def test_stale_heartbeat_reports_worker_down(db, client, settings):
    settings.HOTLIST_HEARTBEAT_STALE_SECONDS = 60
    WorkerHeartbeat.objects.create(
        hostname="old-box", beat_at=timezone.now() - dt.timedelta(seconds=61)
    )

    status, body = get_health(client)

    assert status == 200
    assert body["worker"]["ok"] is False
    assert body["worker"]["age_seconds"] >= 61
    assert body["status"] == "degraded"


def test_newest_heartbeat_of_several_workers_counts(db, client, settings):
    settings.HOTLIST_HEARTBEAT_STALE_SECONDS = 60
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="old-box", beat_at=now - dt.timedelta(hours=2))
    WorkerHeartbeat.objects.create(hostname="new-box", beat_at=now)

    _, body = get_health(client)

    assert body["worker"]["ok"] is True
    assert dt.datetime.fromisoformat(body["worker"]["last_heartbeat"]) == now


def test_unreachable_database_answers_503(db, client):
    # Given the database refuses every new cursor
    refused = OperationalError("could not connect to server")
    with mock.patch.object(connections["default"], "cursor", side_effect=refused):
        # When /healthz is asked
        status, body = get_health(client)

    # Then it says the service is down, without trying the worker table
    assert status == 503
    assert body["database"]["ok"] is False
    assert body["database"]["error"] == "OperationalError"
    assert body["worker"] == {"ok": False}
    assert body["status"] == "down"


@pytest.fixture
def unreachable_broker():
    saved = celery_app.conf.broker_url, celery_app.conf.broker_transport_options
    # Port 9 on the loopback: nothing listens, so the connection is refused at once.
    celery_app.conf.broker_url = "redis://127.0.0.1:9/0"
    celery_app.conf.broker_transport_options = {}
    yield
    celery_app.conf.broker_url, celery_app.conf.broker_transport_options = saved


def test_unreachable_broker_degrades_but_still_serves(db, client, unreachable_broker):
    record_heartbeat.delay()

    status, body = get_health(client)

    assert status == 200
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is False
    assert body["status"] == "degraded"


def test_healthz_refuses_post(db, client):
    response = client.post("/healthz")

    assert response.status_code == 405

"""A Redis that hangs (accepts connections, answers nothing) costs one request its
timeouts; the requests after it leave Redis alone for a few seconds and stay fast."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from django.test import Client

from crm.celery import app as celery_app
from leads.models import Activity, WebForm
from tests.api_client import token_client
from tests.conftest import _drop_broker_pools, free_port, require
from tests.factories import LeadFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Shorter than the settings' own, to keep the test short; the first request pays them.
HUNG_TIMEOUTS = {"socket_connect_timeout": 0.5, "socket_timeout": 1.0}


@pytest.fixture
def redis_hung(settings, tmp_path) -> Iterator[None]:
    """A private redis-server, stopped with SIGSTOP, as broker and cache."""
    require(shutil.which("redis-server") is not None, "needs the redis-server program")
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until_answering(port)
        server.send_signal(signal.SIGSTOP)
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", ""),
                "OPTIONS": HUNG_TIMEOUTS,
            }
        }
        overrides = {
            "broker_url": url,
            "broker_transport_options": {"visibility_timeout": 3600, **HUNG_TIMEOUTS},
            "task_always_eager": False,
        }
        saved = {name: getattr(celery_app.conf, name) for name in overrides}
        celery_app.conf.update(overrides)
        _drop_broker_pools()
        yield
        celery_app.conf.update(saved)
        _drop_broker_pools()
    finally:
        server.send_signal(signal.SIGCONT)
        server.terminate()
        server.wait(timeout=10)


def wait_until_answering(port: int) -> None:
    client = redis.Redis(port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)


def timed(send) -> tuple[int, float]:
    started = time.monotonic()
    response = send()
    return response.status_code, time.monotonic() - started


def test_requests_after_the_first_do_not_wait_for_a_hung_redis(rep, redis_hung):
    # Given Redis, broker and cache, hanging
    lead = LeadFactory(owner=rep)
    form = WebForm.objects.create(name="Demo", field_mapping={"email": "email"})
    api = token_client(rep)

    def post_activity():
        body = {"lead": lead.pk, "type": "page_view", "url": "https://x.example/pricing"}
        return api.post("/api/v1/activities/", body, format="json")

    def post_form():
        return Client().post(
            f"/f/{form.key}/", {"email": lead.email}, HTTP_ACCEPT="application/json"
        )

    # When a first request finds out, and more follow
    first = timed(post_activity)
    following = [timed(post_activity), timed(post_form), timed(post_activity)]

    # Then every one is stored, and only the first waited for Redis
    assert first[0] == 201
    assert [status for status, _ in following] == [201, 202, 201]
    assert max(seconds for _, seconds in following) < 0.5, following
    assert Activity.objects.filter(lead=lead, scored_at__isnull=True).count() == 4

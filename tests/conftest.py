"""Shared fixtures: personas, service requirements and test-speed settings.

Tests that need PostgreSQL, Redis or a real worker carry a marker. Off CI a missing
service skips them with the reason; under ``CI=true`` it fails them, so CI can never
pass by silently skipping what it was meant to prove.
"""

from __future__ import annotations

import email
import email.policy
import importlib
import os
import socket
import uuid
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import kombu.pools
import pytest
from django.contrib.auth.models import Group

from crm.celery import app as celery_app
from crm.models import Role, Team, User

IN_CI = os.environ.get("CI") == "true"


def _worker_id() -> str:
    """``gw0``, ``gw1``, … in a pytest-xdist process; ``master`` in a serial run."""
    return os.environ.get("PYTEST_XDIST_WORKER", "master")


def _redis_url() -> str:
    """``REDIS_URL``, with a database of its own for each parallel test process.

    The queues are keys of one Redis database: a worker started by one process would
    take the tasks another process queued and run them against the wrong test database
    (a drain there scores whatever is pending), while the tasks' own process waits for
    them in vain. Under pytest-xdist, process ``gwN`` uses the database N + 1 above the
    one ``REDIS_URL`` names.
    """
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    worker = _worker_id()
    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    database = int(parts.path.lstrip("/") or 0) + 1 + int(worker[2:])
    return urlunsplit(parts._replace(path=f"/{database % 16}"))


REDIS_URL = _redis_url()


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required services must be present)")
    pytest.skip(reason)


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(autouse=True)
def _service_markers(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("postgres"):
        from django.db import connection

        require(connection.vendor == "postgresql", "needs PostgreSQL (set DATABASE_URL)")
    if request.node.get_closest_marker("redis") or request.node.get_closest_marker("worker"):
        require(redis_available(), f"needs Redis at {REDIS_URL}")


@pytest.fixture
def private_rate_limits(monkeypatch):
    """Rate-limit counters in a cache of this test's own: the shared cache (Redis under
    CI) is cleared by the tests that other parallel processes start meanwhile."""
    from django.core.cache.backends.locmem import LocMemCache

    import crm.rate_limits

    monkeypatch.setattr(crm.rate_limits, "cache", LocMemCache(f"rate-limits-{uuid.uuid4()}", {}))


def pytest_configure(config: pytest.Config) -> None:
    """Each parallel test process keeps its own cache entries: a key prefix of its own in
    Redis, a folder of its own for the file cache.

    Set here, before collection: collecting a module that imports ``cache`` already opens
    the cache (pytest probes module attributes), and a cache opened with the shared
    settings would keep them for the whole run.
    """
    from django.conf import settings

    cache = settings.CACHES["default"]
    cache["KEY_PREFIX"] = f"test-{_worker_id()}"
    if cache["BACKEND"].endswith("FileBasedCache"):
        cache["LOCATION"] = f"{cache['LOCATION']}-{_worker_id()}"


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    """The cache lives in files or Redis, beyond one test: start each test without this
    process's entries (Redis's clear() would empty the whole database, the other
    processes' entries too)."""
    from django.core.cache import caches

    default = caches["default"]
    assert default.key_prefix == f"test-{_worker_id()}", (
        "the cache was opened before it was made private"
    )
    if default.__class__.__name__ == "RedisCache":
        client = default._cache.get_client(write=True)
        keys = list(client.scan_iter(match=f"{default.key_prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    else:
        default.clear()


@pytest.fixture(autouse=True)
def _redis_not_skipped() -> None:
    """Each test starts with the broker and the cache trusted again: a failure that an
    earlier test provoked would otherwise make this process skip them for a few seconds."""
    from crm.resilience import broker, shared_cache

    broker.reset()
    shared_cache.reset()


@pytest.fixture(autouse=True)
def _fast_settings(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture(autouse=True, scope="session")
def _static_root() -> None:
    """WhiteNoise warns on every request while STATIC_ROOT is missing (no collectstatic)."""
    from django.conf import settings

    settings.STATIC_ROOT.mkdir(parents=True, exist_ok=True)


@pytest.fixture(autouse=True, scope="session")
def _eager_celery() -> None:
    """Tasks run in-process unless a test starts a real worker."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


def make_user(username: str, role: Role | None, **fields) -> User:
    user = User.objects.create_user(
        username=username, password="pw", email=f"{username}@example.com", **fields
    )
    if role is not None:
        user.groups.add(Group.objects.get(name=role.label))
    return user


@pytest.fixture
def team(db) -> Team:
    return Team.objects.create(name="North")


@pytest.fixture
def manager(team) -> User:
    user = make_user("manager", Role.MANAGER, team=team)
    team.manager = user
    team.save(update_fields=["manager"])
    return user


@pytest.fixture
def rep(team) -> User:
    return make_user("rep1", Role.REP, team=team)


@pytest.fixture
def other_rep(team) -> User:
    return make_user("rep2", Role.REP, team=team)


@pytest.fixture
def marketer(db) -> User:
    return make_user("marketer", Role.MARKETER, is_staff=True)


@pytest.fixture
def admin_user(db) -> User:
    return User.objects.create_superuser("admin", "admin@example.com", "pw")


@pytest.fixture
def outsider(db) -> User:
    """Signed in, but holds no role: must see and change nothing."""
    return make_user("outsider", None)


@pytest.fixture
def default_events(db) -> None:
    """The tracked-event mapping that a data migration seeds; transactional tests flush
    the tables, so tests that rely on it seed it again here."""
    from django.apps import apps

    seed = importlib.import_module("leads.migrations.0006_tracked_event_defaults")
    seed.add_defaults(apps, None)


def _drop_broker_pools() -> None:
    # The app caches connection and producer pools for the broker it first used;
    # Celery drops them the same way after a fork.
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    # kombu keeps closed pools registered per broker URL; forget them too.
    kombu.pools.reset()


@pytest.fixture
def celery_worker_live(transactional_db):
    """A real Celery worker in a thread, consuming every queue from Redis at ``REDIS_URL``.

    While it runs, ``.delay()`` sends through the broker instead of running eagerly, so
    use it with ``@pytest.mark.django_db(transaction=True)``: the worker has its own
    database connection and sees committed rows only. The project's queues in that Redis
    database are emptied first: each parallel process of one run has a database of its
    own (see ``_redis_url``), separate runs side by side need ``REDIS_URL`` to differ by
    more than their process count. Fails under ``CI=true`` when Redis is missing.
    """
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun
    from django.db import connections

    require(redis_available(), f"needs Redis at {REDIS_URL}")

    def close_worker_connections(task=None, **kwargs) -> None:
        # The worker thread's connections would outlive the test and block the
        # database flush that follows it.
        if not getattr(task.request, "is_eager", False):
            connections.close_all()

    overrides = {
        "broker_url": REDIS_URL,
        "broker_transport_options": {},
        "task_always_eager": False,
        "worker_hijack_root_logger": False,
    }
    saved = {name: getattr(celery_app.conf, name) for name in overrides}
    celery_app.conf.update(overrides)
    _drop_broker_pools()
    task_postrun.connect(close_worker_connections, weak=False)
    try:
        celery_app.control.purge()
        with start_worker(
            celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING"
        ) as worker:
            yield worker
    finally:
        task_postrun.disconnect(close_worker_connections)
        celery_app.conf.update(saved)
        _drop_broker_pools()


# --- A real SMTP server -------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"

    def text_of(self, index: int) -> str:
        return self.messages[index].get_body(preferencelist=("plain",)).get_content()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_inbox(settings) -> Iterator[Inbox]:
    """A real SMTP server on 127.0.0.1, and Django's SMTP backend pointed at it."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = controller.hostname
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def finished_tasks() -> Iterator[Counter]:
    """How many times each task finished in the worker while the test runs."""
    from celery.signals import task_postrun

    counts: Counter = Counter()

    def count(sender=None, task=None, **kwargs) -> None:
        if not getattr(task.request, "is_eager", False):
            counts[task.name] += 1

    task_postrun.connect(count, weak=False)
    yield counts
    task_postrun.disconnect(count)


@pytest.fixture
def threshold_pair(db, settings, django_capture_on_commit_callbacks):
    """Two new records of one person, each under the MQL threshold of 40 alone and over
    it together: a /demo visit (30) on one, two /pricing visits (5 each) on the other.
    Marketing hands leads to sales at MQL. For merges that move a stage."""
    import datetime as dt

    from django.utils import timezone

    from leads.activities import activities_record
    from leads.models import Activity, ActivityType, Stage
    from scoring.lead_scoring import lead_score
    from tests.factories import LeadFactory, active_model, page_rule

    settings.HANDOFF_STAGE = Stage.MQL
    model = active_model(mql_threshold=40, sql_threshold=90)
    page_rule(model, 30, "/demo", max_per_lead=1)
    page_rule(model, 5, "/pricing")
    a, b = LeadFactory(stage=Stage.NEW), LeadFactory(stage=Stage.NEW)
    visits = [(a, "/demo", 0), (b, "/pricing", 0), (b, "/pricing", 1)]
    with django_capture_on_commit_callbacks(execute=True):
        for lead, path, days_ago in visits:
            at = timezone.now() - dt.timedelta(days=days_ago)
            page = Activity(
                type=ActivityType.PAGE_VIEW, url=f"https://x.example{path}", occurred_at=at
            )
            activities_record(lead=lead, activities=[page])
    for lead in (a, b):
        lead_score(lead_id=lead.pk)
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.stage, b.stage) == (Stage.NEW, Stage.NEW)
    return a, b

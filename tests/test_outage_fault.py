"""A fault test of the production shape: what a user sent survives Redis and worker failures.

Real processes, each started here and stopped by its own id: a private ``redis-server``
(broker and cache, on a free port; the shared Redis is never touched), gunicorn serving
the app, a Celery worker and Celery beat, all against this test's PostgreSQL database
and configured only through the environment, as in production. While events arrive
through the REST API, the Segment-compatible tracking endpoint and a web form, Redis is
stopped and started again (losing whatever was queued) and the worker is killed with
SIGKILL and restarted. Every answer must be a success or a 503 with ``Retry-After``;
afterwards every accepted event is stored once and scored, and ``scoring_verify`` agrees.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection

from crm.models import ApiToken, Role
from leads.models import Activity, ActivityType, Lead, TrackingKey, WebForm
from tests.conftest import free_port, make_user, require
from tests.factories import LeadFactory, active_model, page_rule

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parent.parent
# The sweeper leaves activities younger than this to the drain their request queued.
SWEEPER_GRACE_SECONDS = 10
SETTLE_SECONDS = 45


class Process:
    """One program this test runs, stopped by its own process id."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.argv, self.env, self.logs = name, argv, env, logs
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.logs / f"{self.name}-{self.starts}.log").open("wb")
        self.popen = subprocess.Popen(
            self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.popen = None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self) -> str:
        path = self.logs / f"{self.name}-{self.starts}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"not within {timeout} s: {what}")


def database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.monotonic()
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    return Answer(response.status, dict(response.getheaders()), data, time.monotonic() - started)


@dataclass
class Surface:
    """One way in: ``send(n)`` posts event ``n`` and says how it was answered."""

    name: str
    send: Callable[[int], Answer]
    accepted: list[int] = field(default_factory=list)
    answers: list[tuple[int, Answer]] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            answer = self.send(n)
            self.answers.append((n, answer))
            if 200 <= answer.status < 400:
                self.accepted.append(n)
            time.sleep(0.05)


@pytest.fixture
def stack(tmp_path, default_events) -> Iterator[dict[str, Any]]:
    """Redis, gunicorn, a worker and beat, each a process of this test."""
    require(shutil.which("redis-server") is not None, "needs the redis-server program")
    redis_port, web_port = free_port(), free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "HOTLIST_VAR_DIR": str(tmp_path / "var"),
        "SCORE_SWEEP_SECONDS": "1",
        "FORM_RATE_PER_IP": "100000",
        "FORM_RATE_PER_FORM": "100000",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("CACHE_URL", None)
    python = sys.executable
    processes = {
        "redis": Process(
            "redis",
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            env,
            logs,
        ),
        "web": Process(
            "web",
            [
                python,
                "-m",
                "gunicorn",
                "crm.wsgi:application",
                "--bind",
                f"127.0.0.1:{web_port}",
                "--workers",
                "2",
                "--timeout",
                "60",
            ],
            env,
            logs,
        ),
        "worker": Process(
            "worker",
            [
                python,
                "-m",
                "celery",
                "-A",
                "crm",
                "worker",
                "--queues",
                "realtime,bulk,email,default",
                "--pool",
                "solo",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "WARNING",
                "--hostname",
                f"fault-{uuid.uuid4()}",
            ],
            env,
            logs,
        ),
        "beat": Process(
            "beat",
            [
                python,
                "-m",
                "celery",
                "-A",
                "crm",
                "beat",
                "--loglevel",
                "WARNING",
                "--schedule",
                str(tmp_path / "beat-schedule"),
            ],
            env,
            logs,
        ),
    }
    try:
        for process in processes.values():
            process.start()
        wait_until(lambda: _answers(web_port), 30, "gunicorn answering")
        yield {"processes": processes, "web_port": web_port}
    finally:
        # The worker, beat and web hold connections to the test database, which is
        # flushed after the test.
        for process in reversed(processes.values()):
            process.stop()


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        conn.close()
    except OSError:
        return False
    return True


def surfaces(port: int) -> list[Surface]:
    """The REST API, tracking (track and batch calls) and a browser's form post."""
    rep = make_user("rep1", Role.REP)
    _, token = ApiToken.objects.issue(user=rep, name="fault test")
    lead = LeadFactory(owner=rep, email="known@x.example")
    _, write_key = TrackingKey.objects.issue(name="Website")
    basic = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    form = WebForm.objects.create(
        name="Demo", field_mapping={"email": "email"}, redirect_url="https://x.example/thanks"
    )
    identify = {"userId": "u-1", "traits": {"email": lead.email}}
    json_headers = {"Content-Type": "application/json", "Authorization": basic}
    assert post(port, "/v1/identify", json.dumps(identify).encode(), json_headers).status == 200

    def rest(n: int) -> Answer:
        body = {"lead": lead.pk, "type": "page_view", "url": f"https://x.example/pricing?api={n}"}
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": f"api-{n}",
        }
        return post(port, "/api/v1/activities/", json.dumps(body).encode(), headers)

    def tracking(n: int) -> Answer:
        if n % 2:
            body: dict[str, Any] = {
                "userId": "u-1",
                "event": "Content Downloaded",
                "messageId": f"track-{n}",
                "properties": {"url": f"https://x.example/pricing?track={n}"},
            }
            return post(port, "/v1/track", json.dumps(body).encode(), json_headers)
        page = {
            "type": "page",
            "userId": "u-1",
            "messageId": f"track-{n}",
            "properties": {"url": f"https://x.example/pricing?track={n}"},
        }
        body = {"batch": [page]}
        return post(port, "/v1/batch", json.dumps(body).encode(), json_headers)

    def web_form(n: int) -> Answer:
        body = urlencode({"email": f"form-{n}@x.example"}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return post(port, f"/f/{form.key}/", body, headers)

    return [Surface("api", rest), Surface("tracking", tracking), Surface("form", web_form)]


def test_every_accepted_event_is_stored_once_and_scored_through_broker_and_worker_failures(
    stack,
):
    # Given an active model that scores pricing pages, and the whole stack running
    model = active_model(mql_threshold=1000, sql_threshold=2000)
    page_rule(model, 5, "/pricing")
    processes, port = stack["processes"], stack["web_port"]
    redis, worker = processes["redis"], processes["worker"]
    ways_in = surfaces(port)

    # When events arrive through all three surfaces while Redis goes down and comes back
    # (without its queue) and the worker is killed and restarted
    stop = threading.Event()
    senders = [threading.Thread(target=s.run, args=(stop,), daemon=True) for s in ways_in]
    for sender in senders:
        sender.start()
    try:
        time.sleep(2)
        redis.stop()
        outage_started = {s.name: len(s.answers) for s in ways_in}
        time.sleep(3)
        outage_ended = {s.name: len(s.answers) for s in ways_in}
        redis.start()
        time.sleep(1.5)
        worker.stop(signal.SIGKILL)
        time.sleep(1.5)
        worker.start()
        time.sleep(2)
        worker.stop(signal.SIGKILL)
        worker.start()
        time.sleep(2)
    finally:
        stop.set()
        for sender in senders:
            sender.join(timeout=30)

    # Then every answer was a success, or a 503 that says when to come back, and quick
    for surface in ways_in:
        for n, answer in surface.answers:
            assert 200 <= answer.status < 400 or (
                answer.status == 503 and "Retry-After" in answer.headers
            ), (surface.name, n, answer)
        during = surface.answers[outage_started[surface.name] : outage_ended[surface.name]]
        assert during, f"no {surface.name} event was sent while Redis was down"
        assert any(200 <= a.status < 400 for _, a in during), (surface.name, during)
        assert max(a.seconds for _, a in during) < 2, (surface.name, during)

    # and once the sweeper has caught up, everything accepted is stored once and scored
    assert redis.alive(), redis.log_tail()
    assert processes["beat"].alive(), processes["beat"].log_tail()
    wait_until(
        lambda: not Activity.objects.filter(scored_at__isnull=True).exists(),
        SWEEPER_GRACE_SECONDS + SETTLE_SECONDS,
        "every activity scored by the worker: " + worker.log_tail(),
    )
    api, tracking, form = ways_in
    api_urls = list(Activity.objects.filter(url__contains="?api=").values_list("url", flat=True))
    assert sorted(api_urls) == sorted(f"https://x.example/pricing?api={n}" for n in api.accepted)
    track_keys = list(
        Activity.objects.filter(idempotency_key__startswith="track-").values_list(
            "idempotency_key", flat=True
        )
    )
    assert sorted(track_keys) == sorted(f"track-{n}" for n in tracking.accepted)
    form_leads = Lead.objects.filter(email__startswith="form-")
    assert sorted(form_leads.values_list("email", flat=True)) == sorted(
        f"form-{n}@x.example" for n in form.accepted
    )
    submissions = Activity.objects.filter(lead__in=form_leads, type=ActivityType.FORM_SUBMISSION)
    assert submissions.count() == len(form.accepted)
    assert Lead.objects.get(email="known@x.example").score > 0

    # and the stored scores agree with a recomputation from the ledger and the rules
    verify = subprocess.run(
        [sys.executable, "manage.py", "scoring_verify"],
        env=processes["web"].env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr

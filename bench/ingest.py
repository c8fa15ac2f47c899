"""Ingestion through HTTP: the REST bulk endpoint, Segment's ``/v1/batch`` and web forms.

    python bench/ingest.py                        # 3 runs of 20 s per load, print only
    python bench/ingest.py --seconds 30 --record  # and write docs/PERFORMANCE.md

Benchmarks: every HTTP figure stands beside the raw PostgreSQL rate of the same rows
into the same table, measured in the same run, and the table goes to docs/PERFORMANCE.md
(section "ingest") with ``--record``. Medians of ``--runs`` runs; the ratios are taken
within each run, since the machine is shared.

Runs against its own database (``BENCH_DATABASE_URL``, default ``hotlist_bench_ingest``,
rebuilt every run unless ``--reuse``), Redis database 8 as broker and cache
(``BENCH_INGEST_BROKER_URL``) and gunicorn on port 8765, started here with the production
command line (``--workers 2``, sync workers), ``DEBUG=false`` and HTTPS as a proxy in
front would announce it (``X-Forwarded-Proto``). No Celery worker runs: scoring is queued
for real (on commit, through Redis) and waits; the figures are ingestion alone.

Each run:

1. raw limits into ``leads_activity`` (all its indexes, the same row shape as the API
   stores) on one connection: multi-row ``INSERT`` of 1,000 rows a statement, committed
   per statement; ``COPY``; one ``INSERT`` committed per row;
2. ``POST /api/v1/activities/bulk/``: ``--clients`` threads post batches of 1,000
   activities (random leads among all, unique idempotency keys) for ``--seconds``;
   stored rows are counted in PostgreSQL afterwards (committed = durable: ``fsync`` and
   ``synchronous_commit`` are on) and must equal what the answers said was created;
3. ``POST /v1/batch``: the same with Segment ``track`` and ``page`` calls as a client
   library sends them (``context``, ``messageId``, ``sentAt``), as many as fit in 450 KB;
4. ``POST /f/<key>/``: ``--posts`` urlencoded posts of a new visitor each, one at a time
   after a warm-up, timed by the client (loopback round trip) and by gunicorn's access
   log (``%(D)s``, the time in the worker).

The load generator runs here, on the same two cores as gunicorn and PostgreSQL; its CPU
time is reported beside theirs.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import pct

ROOT = harness.ROOT
URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hotlist_bench_ingest"
)
BROKER = os.environ.get("BENCH_INGEST_BROKER_URL", "redis://127.0.0.1:6379/8")
VAR_DIR = Path(os.environ.get("HOTLIST_VAR_DIR", str(ROOT / "var" / "bench-ingest")))
HOST, PORT = "127.0.0.1", int(os.environ.get("BENCH_INGEST_PORT", "8765"))
BULK_SIZE = 1000
BATCH_BYTES = 450 * 1024  # under Segment's 500 KB per batch
TARGET_SHARE = 0.30
# Idempotency keys and message ids carry this invocation's mark, so that a run on a
# database kept with --reuse never meets the keys of an earlier one.
INVOCATION = secrets.token_hex(3)
TARGET_P95 = 0.050
COLUMNS = (
    "lead_id, type, url, duration_seconds, properties, occurred_at, received_at, source, "
    "idempotency_key, created_by_id, scored_at"
)
ACTIVITY_MIX = [
    ("page_view", "https://hotlist.example/pricing"),
    ("page_view", "https://hotlist.example/features"),
    ("page_view", "https://hotlist.example/blog/lead-scoring"),
    ("email_open", ""),
    ("email_click", ""),
    ("content_download", ""),
    ("webinar_registration", ""),
]
TRACKED_EVENTS = {
    "Pricing Viewed": "page_view",
    "Whitepaper Downloaded": "content_download",
    "Webinar Registered": "webinar_registration",
    "Email Link Clicked": "email_click",
}

# The web processes' environment: production settings, this benchmark's database and Redis.
# The per-user API throttle (600 requests a minute by default) and the per-key and per-form
# rate limits are raised so that they count every request but never refuse one.
ENVIRONMENT = {
    "DATABASE_URL": URL,
    "CELERY_BROKER_URL": BROKER,
    "HOTLIST_VAR_DIR": str(VAR_DIR),
    "DJANGO_SETTINGS_MODULE": "crm.settings",
    "DEBUG": "false",
    "SECRET_KEY": "bench-ingest-" + secrets.token_hex(24),
    "ALLOWED_HOSTS": HOST,
    "CELERY_TASK_ALWAYS_EAGER": "false",
    "API_THROTTLE_USER": "1000000/minute",
    "TRACKING_RATE_PER_KEY": "1000000",
    "FORM_RATE_PER_IP": "1000000",
    "FORM_RATE_PER_FORM": "1000000",
}
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}
# Receivers of ``activity_recorded`` timed one by one (dispatch uids; missing ones skipped).
RECEIVERS = (
    "leads.handoff.activity_recorded",
    "scoring.activity_recorded",
    "nurturing.activity_recorded",
)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="Length of each HTTP load.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4, help="Concurrent HTTP clients.")
    parser.add_argument("--posts", type=int, default=300, help="Timed form posts per run.")
    parser.add_argument("--warmup-posts", type=int, default=30)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--activities-per-lead", type=int, default=10)
    parser.add_argument("--raw-rows", type=int, default=100_000, help="Rows of INSERT and COPY.")
    parser.add_argument("--single-rows", type=int, default=3_000, help="Rows of one per commit.")
    parser.add_argument("--only", choices=["bulk", "batch", "forms"], help="One HTTP load only.")
    parser.add_argument("--reuse", action="store_true", help="Keep the database of a former run.")
    parser.add_argument("--record", action="store_true", help="Write docs/PERFORMANCE.md.")
    args = parser.parse_args()
    if URL.rsplit("/", 1)[1] in ("hotlist_bench", "hotlist_bench_rt"):
        parser.error("that database belongs to another benchmark; use one of your own")
    return args


def log(message: str) -> None:
    print(f"[{datetime.now().astimezone():%H:%M:%S}] {message}", flush=True)


def loadavg() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- The world -------------------------------------------------------------------------


@dataclass
class World:
    lead_ids: list[int]
    user_id: int
    api_key: str
    write_key: str
    form_key: str


def prepare(args: argparse.Namespace) -> World:
    """Leads with history, an integration user with a token, a write key, a web form."""
    import generate
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection

    from crm.models import ApiToken, Role, User
    from leads.models import Lead, TrackedEvent, TrackingKey, WebForm

    call_command("migrate", verbosity=0)
    if not Lead.objects.exists():
        log(f"generating {args.leads:,} leads x {args.activities_per_lead} activities")
        generate.generate(leads=args.leads, activities_per_lead=args.activities_per_lead)
    user, _ = User.objects.get_or_create(username="bench-integration")
    user.groups.add(Group.objects.get(name=Role.MARKETER.label))
    ApiToken.objects.filter(user=user).revoke()
    _, api_key = ApiToken.objects.issue(user=user, name="bench/ingest.py")
    TrackingKey.objects.filter(name="bench/ingest.py").delete()
    _, write_key = TrackingKey.objects.issue(name="bench/ingest.py")
    for name, activity_type in TRACKED_EVENTS.items():
        TrackedEvent.objects.update_or_create(name=name, defaults={"activity_type": activity_type})
    form, _ = WebForm.objects.update_or_create(
        name="Bench demo request",
        defaults={
            "field_mapping": {
                "email": "email",
                "fname": "first_name",
                "lname": "last_name",
                "company": "company",
                "title": "job_title",
            },
            "redirect_url": "https://hotlist.example/thanks",
        },
    )
    with connection.cursor() as cursor:
        # Every lead is known to tracking by its userId "u-<id>", as after an identify.
        cursor.execute(
            """
            INSERT INTO leads_trackingidentity (kind, value, lead_id, created_at)
            SELECT 'user_id', 'u-' || id, id, now() FROM leads_lead
            ON CONFLICT DO NOTHING
            """
        )
        cursor.execute("VACUUM ANALYZE")
    lead_ids = list(Lead.objects.order_by("pk").values_list("pk", flat=True))
    return World(lead_ids, user.pk, api_key, write_key, form.key)


def server_settings() -> dict[str, str]:
    from django.db import connection

    names = ("fsync", "synchronous_commit", "shared_buffers", "autovacuum")
    values = {}
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f"SHOW {name}")
            values[name] = cursor.fetchone()[0]
    return values


def activity_count(where: str, params: list) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM leads_activity WHERE {where}", params)
        return cursor.fetchone()[0]


# --- Raw PostgreSQL --------------------------------------------------------------------


def raw_rows(world: World, n: int, tag: str, rng: random.Random) -> list[tuple]:
    """Rows shaped as the bulk endpoint stores them (unscored, keyed, with a creator)."""
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        kind, url = rng.choice(ACTIVITY_MIX)
        occurred = now - timedelta(seconds=rng.randrange(3600))
        properties = json.dumps({"campaign": "spring", "step": i % 5})
        rows.append(
            (
                rng.choice(world.lead_ids),
                kind,
                url,
                None,
                properties,
                occurred,
                now,
                "bench-raw",
                f"{tag}-{i}",
                world.user_id,
                None,
            )
        )
    return rows


def raw_connection():
    import psycopg2

    return psycopg2.connect(URL)


def raw_insert_rate(rows: list[tuple]) -> float:
    """Multi-row INSERT of 1,000 rows a statement, each committed; statements built first."""
    conn = raw_connection()
    try:
        with conn.cursor() as cursor:
            row_sql = "(" + ", ".join(["%s"] * len(rows[0])) + ")"
            statements = []
            for start in range(0, len(rows), BULK_SIZE):
                values = b",".join(
                    cursor.mogrify(row_sql, row) for row in rows[start : start + BULK_SIZE]
                )
                statements.append(
                    b"INSERT INTO leads_activity (" + COLUMNS.encode() + b") VALUES " + values
                )
            began = time.perf_counter()
            for statement in statements:
                cursor.execute(statement)
                conn.commit()
            took = time.perf_counter() - began
    finally:
        conn.close()
    return len(rows) / took


def copy_text(rows: list[tuple]) -> bytes:
    """Rows in COPY's text format."""

    def field(value: object) -> str:
        if value is None:
            return "\\N"
        text = value.isoformat() if isinstance(value, datetime) else str(value)
        for plain, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
            text = text.replace(plain, escaped)
        return text

    return "".join("\t".join(field(v) for v in row) + "\n" for row in rows).encode()


def raw_copy_rate(rows: list[tuple]) -> float:
    """COPY of all rows in one transaction."""
    data = copy_text(rows)
    conn = raw_connection()
    try:
        with conn.cursor() as cursor:
            began = time.perf_counter()
            cursor.copy_expert(f"COPY leads_activity ({COLUMNS}) FROM STDIN", io.BytesIO(data))
            conn.commit()
            took = time.perf_counter() - began
    finally:
        conn.close()
    return len(rows) / took


def raw_single_rate(rows: list[tuple]) -> float:
    """One INSERT per row, each committed; statements built first."""
    conn = raw_connection()
    try:
        with conn.cursor() as cursor:
            row_sql = "(" + ", ".join(["%s"] * len(rows[0])) + ")"
            head = f"INSERT INTO leads_activity ({COLUMNS}) VALUES ".encode()
            statements = [head + cursor.mogrify(row_sql, row) for row in rows]
            began = time.perf_counter()
            for statement in statements:
                cursor.execute(statement)
                conn.commit()
            took = time.perf_counter() - began
    finally:
        conn.close()
    return len(rows) / took


# --- gunicorn ----------------------------------------------------------------------------


class Gunicorn:
    """``gunicorn crm.wsgi:application --workers 2`` as a subprocess, stopped at the end."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.errors = VAR_DIR / "gunicorn.log"
        self.access = VAR_DIR / "gunicorn-access.log"

    def command(self) -> list[str]:
        binary = Path(sys.executable).with_name("gunicorn")
        return [
            str(binary) if binary.exists() else "gunicorn",
            "crm.wsgi:application",
            "--workers",
            "2",
            "--bind",
            f"{HOST}:{PORT}",
            "--access-logfile",
            str(self.access),
            "--access-logformat",
            "%(m)s %(U)s %(s)s %(D)s",
        ]

    def start(self) -> None:
        self.access.write_text("")
        self.log = self.errors.open("w")
        log("web: gunicorn crm.wsgi:application --workers 2 --bind " + f"{HOST}:{PORT}")
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env={**os.environ, **ENVIRONMENT},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.errors}")
            with suppress(OSError):
                conn = http.client.HTTPConnection(HOST, PORT, timeout=5)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                conn.close()
                if len(self.workers()) == 2:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"gunicorn did not answer within 60 s; see {self.errors}")

    def workers(self) -> list[int]:
        if self.process is None:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        with suppress(OSError):
            return [int(pid) for pid in children.read_text().split()]
        return []

    def stop(self) -> None:
        if self.process is None:
            return
        harness.stop_session(self.process, 20, log)
        self.log.close()
        log(f"web stopped (exit {self.process.returncode})")

    def server_times(self, path_prefix: str, last: int) -> list[float]:
        """Seconds gunicorn spent on the last ``last`` requests under ``path_prefix``."""
        times = []
        for line in self.access.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[1].startswith(path_prefix):
                times.append(int(parts[3]) / 1e6)
        return times[-last:]


# --- CPU accounting ----------------------------------------------------------------------


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def backend_pids() -> list[int]:
    """PostgreSQL backends connected to the benchmark database, but this process's own."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


class CpuMeter:
    """CPU seconds used by the web workers, their PostgreSQL backends and this process.

    Backends come and go (connections are recycled after ``CONN_MAX_AGE``), so they are
    sampled every half second in a thread of their own and summed per process.
    """

    def __init__(self, web: Gunicorn) -> None:
        self.web = web
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.kind: dict[int, str] = {}
        self.stopping = threading.Event()

    def begin(self) -> None:
        self.first, self.last, self.kind = {}, {}, {}
        self.own = sum(os.times()[:2])
        self._sample(first=True)
        self.stopping.clear()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def end(self) -> dict[str, float]:
        self.stopping.set()
        self.thread.join()
        self._sample()
        used = {"web": 0.0, "db": 0.0, "load": sum(os.times()[:2]) - self.own}
        for pid, kind in self.kind.items():
            used[kind] += self.last[pid] - self.first.get(pid, 0.0)
        return used

    def _run(self) -> None:
        from django.db import connection

        try:
            while not self.stopping.wait(0.5):
                self._sample()
        finally:
            connection.close()

    def _sample(self, first: bool = False) -> None:
        pids = [(pid, "web") for pid in self.web.workers()]
        pids += [(pid, "db") for pid in backend_pids()]
        for pid, kind in pids:
            seconds = cpu_seconds(pid)
            if not seconds:
                continue
            self.kind[pid] = kind
            self.last[pid] = seconds
            if first:
                self.first[pid] = seconds


# --- HTTP load ---------------------------------------------------------------------------


def post(
    conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    """One POST on a kept connection (reopened when the server closed it)."""
    for attempt in range(2):
        try:
            conn.request("POST", path, body=body, headers={**PROXY_HEADERS, **headers})
            response = conn.getresponse()
            return response.status, response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            conn.close()
            if attempt:
                raise
    raise AssertionError("unreachable")


@dataclass
class LoadResult:
    rows_answered: int = 0
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    events_per_request: list[int] = field(default_factory=list)
    finished: list[tuple[float, int]] = field(default_factory=list)
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    rows_stored: int = 0


def run_load(
    *,
    clients: int,
    seconds: float,
    make: Callable[[random.Random, str], tuple[bytes, int]],
    send: Callable[[http.client.HTTPConnection, bytes], tuple[int, bytes]],
    stored: Callable[[int, bytes, int], int],
    meter: CpuMeter,
) -> LoadResult:
    """``clients`` threads post bodies from ``make`` until ``seconds`` have passed.

    ``stored(status, answer, events)`` says how many rows an answer reports as stored
    (-1: the request failed); requests
    under way at the deadline finish and count.
    """
    result = LoadResult()
    lock = threading.Lock()
    began = time.perf_counter()
    deadline = began + seconds

    def client(number: int) -> None:
        rng = random.Random(number)
        conn = http.client.HTTPConnection(HOST, PORT, timeout=120)
        sequence = 0
        while time.perf_counter() < deadline:
            body, events = make(rng, f"{number}-{sequence}")
            sequence += 1
            start = time.perf_counter()
            try:
                status, answer = send(conn, body)
            except OSError as exc:
                with lock:
                    result.failures.append(repr(exc))
                continue
            end = time.perf_counter()
            rows = stored(status, answer, events)
            with lock:
                result.requests += 1
                result.latencies.append(end - start)
                result.events_per_request.append(events)
                if rows < 0:
                    result.failures.append(f"{status}: {answer[:300]!r}")
                else:
                    result.rows_answered += rows
                    result.finished.append((end - began, rows))
        conn.close()

    meter.begin()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.wall = time.perf_counter() - began
    result.cpu = meter.end()
    return result


def bulk_body(world: World, tag: str) -> Callable[[random.Random, str], tuple[bytes, int]]:
    def make(rng: random.Random, request: str) -> tuple[bytes, int]:
        now = datetime.now(UTC)
        items = []
        for i in range(BULK_SIZE):
            kind, url = rng.choice(ACTIVITY_MIX)
            item = {
                "lead": rng.choice(world.lead_ids),
                "type": kind,
                "occurred_at": iso(now - timedelta(seconds=rng.randrange(3600))),
                "source": "bench-http",
                "idempotency_key": f"{tag}-{request}-{i}",
                "properties": {"campaign": "spring", "step": i % 5},
            }
            if url:
                item["url"] = url
            items.append(item)
        return json.dumps({"activities": items}).encode(), BULK_SIZE

    return make


def bulk_send(world: World) -> Callable[[http.client.HTTPConnection, bytes], tuple[int, bytes]]:
    headers = {"Authorization": f"Bearer {world.api_key}", "Content-Type": "application/json"}
    return lambda conn, body: post(conn, "/api/v1/activities/bulk/", body, headers)


def bulk_stored(status: int, answer: bytes, events: int) -> int:
    return json.loads(answer)["created"] if status == 201 else -1


def segment_stored(status: int, answer: bytes, events: int) -> int:
    """Segment answers only success: every event of an accepted batch is stored."""
    return events if status == 200 and json.loads(answer).get("success") else -1


def segment_body(world: World, tag: str) -> Callable[[random.Random, str], tuple[bytes, int]]:
    """A batch as analytics.js or analytics-python sends it, filled up to 450 KB."""
    events = list(TRACKED_EVENTS)

    def make(rng: random.Random, request: str) -> tuple[bytes, int]:
        now = datetime.now(UTC)
        messages, size, i = [], 200, 0
        while True:
            lead = rng.choice(world.lead_ids)
            message = {
                "type": "page" if i % 2 else "track",
                "userId": f"u-{lead}",
                "anonymousId": f"anon-{lead}",
                "messageId": f"{tag}-{request}-{i}",
                "timestamp": iso(now - timedelta(seconds=rng.randrange(600))),
                "context": {
                    "library": {"name": "analytics-python", "version": "2.3.3"},
                    "ip": f"203.0.113.{lead % 250}",
                    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
                    "page": {"url": "https://hotlist.example/pricing", "title": "Pricing"},
                },
                "properties": {"plan": "pro", "step": i % 5},
            }
            if message["type"] == "track":
                message["event"] = events[i % len(events)]
            else:
                message["name"] = "Pricing"
            encoded = len(json.dumps(message))
            if size + encoded + 2 > BATCH_BYTES:
                break
            messages.append(message)
            size += encoded + 2
            i += 1
        body = {"batch": messages, "sentAt": iso(now)}
        return json.dumps(body).encode(), len(messages)

    return make


def segment_send(world: World) -> Callable[[http.client.HTTPConnection, bytes], tuple[int, bytes]]:
    basic = base64.b64encode(f"{world.write_key}:".encode()).decode()
    headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/json"}
    return lambda conn, body: post(conn, "/v1/batch", body, headers)


def form_posts(world: World, web: Gunicorn, args: argparse.Namespace, tag: str) -> dict:
    """Sequential urlencoded posts of new visitors; client and server times of each."""
    conn = http.client.HTTPConnection(HOST, PORT, timeout=30)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Origin": "https://www.visitor.example",
        "Referer": "https://www.visitor.example/demo",
    }
    path = f"/f/{world.form_key}/"
    times, failures = [], []
    for i in range(args.warmup_posts + args.posts):
        body = urlencode(
            {
                "email": f"{tag}-{i}@visitor{i % 50}.example",
                "fname": "Ada",
                "lname": f"Visitor {i}",
                "company": f"Visitor Co {i % 50}",
                "title": "Head of Operations",
                "page_url": "https://www.visitor.example/demo?utm_source=google&utm_medium=cpc"
                "&utm_campaign=spring",
                "website": "",
            }
        ).encode()
        start = time.perf_counter()
        status, answer = post(conn, path, body, headers)
        took = time.perf_counter() - start
        if status != 303:
            failures.append(f"{status}: {answer[:300]!r}")
        elif i >= args.warmup_posts:
            times.append(took)
    conn.close()
    time.sleep(0.2)  # the access log line is written after the answer
    server = web.server_times("/f/", args.posts)
    return {"client": times, "server": server, "failures": failures}


# --- Where a bulk request's time goes ------------------------------------------------


def in_process_breakdown(world: World, runs: int) -> dict[str, float]:
    """Seconds per bulk request of 1,000 items through Django in this process (no HTTP),
    with every ``activity_recorded`` receiver, then without each in turn; and the
    validation alone. Medians of ``runs`` requests each."""
    from django.test import Client
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from api.activities import BulkActivitySerializer
    from crm.models import User
    from leads.signals import activity_recorded

    client, make = Client(), bulk_body(world, f"p{secrets.token_hex(3)}")
    rng, counter = random.Random(9), iter(range(10**6))
    headers = {"HTTP_AUTHORIZATION": f"Bearer {world.api_key}", "HTTP_HOST": HOST}

    def request() -> None:
        body, _ = make(rng, str(next(counter)))
        answer = client.post(
            "/api/v1/activities/bulk/",
            body,
            content_type="application/json",
            secure=True,
            **headers,
        )
        if answer.status_code != 201:
            raise RuntimeError(f"in-process bulk request: {answer.status_code} {answer.content!r}")

    request()
    figures = {"every receiver": harness.median_of(runs, request)[0]}
    removed = []
    for uid in RECEIVERS:
        receivers = {r[0]: r[1] for r in activity_recorded.receivers}
        found = [key for key in receivers if key[0] == uid]
        if not found:
            continue
        receiver = receivers[found[0]]
        if isinstance(receiver, weakref.ReferenceType):
            receiver = receiver()
        activity_recorded.disconnect(dispatch_uid=uid)
        removed.append((uid, receiver))
        label = "… without" if len(removed) == 1 else "… and without"
        figures[f"{label} `{uid}`"] = harness.median_of(runs, request)[0]
    for uid, receiver in removed:
        activity_recorded.connect(receiver, dispatch_uid=uid)
    factory_request = Request(APIRequestFactory().post("/"))
    factory_request.user = User.objects.get(pk=world.user_id)

    def validate() -> None:
        body, _ = make(rng, str(next(counter)))
        batch = BulkActivitySerializer(data=json.loads(body), context={"request": factory_request})
        if not batch.is_valid():
            raise RuntimeError(f"in-process validation: {batch.errors}")

    figures["validation alone (`BulkActivitySerializer`)"] = harness.median_of(runs, validate)[0]
    for name, value in figures.items():
        log(f"  in process: {name}: {value * 1000:.0f} ms per 1,000 items")
    return figures


# --- One run -----------------------------------------------------------------------------


def measure_raw(world: World, args: argparse.Namespace, run: int) -> dict[str, float]:
    rng = random.Random(run)
    insert = raw_insert_rate(raw_rows(world, args.raw_rows, f"ri{run}-{INVOCATION}", rng))
    copy = raw_copy_rate(raw_rows(world, args.raw_rows, f"rc{run}-{INVOCATION}", rng))
    single = raw_single_rate(raw_rows(world, args.single_rows, f"rs{run}-{INVOCATION}", rng))
    log(f"  raw: INSERT {insert:,.0f} rows/s, COPY {copy:,.0f}, one per commit {single:,.0f}")
    return {"insert": insert, "copy": copy, "single": single}


def measure_bulk(world: World, args: argparse.Namespace, run: int, meter: CpuMeter) -> LoadResult:
    tag = f"h{run}-{INVOCATION}"
    result = run_load(
        clients=args.clients,
        seconds=args.seconds,
        make=bulk_body(world, tag),
        send=bulk_send(world),
        stored=bulk_stored,
        meter=meter,
    )
    stored = activity_count("source = %s AND idempotency_key LIKE %s", ["bench-http", f"{tag}-%"])
    check_stored("bulk", result, stored)
    return result


def measure_segment(
    world: World, args: argparse.Namespace, run: int, meter: CpuMeter
) -> LoadResult:
    tag = f"t{run}-{INVOCATION}"
    result = run_load(
        clients=args.clients,
        seconds=args.seconds,
        make=segment_body(world, tag),
        send=segment_send(world),
        stored=segment_stored,
        meter=meter,
    )
    stored = activity_count("source = %s AND idempotency_key LIKE %s", ["tracking", f"{tag}-%"])
    check_stored("batch", result, stored)
    return result


def check_stored(name: str, result: LoadResult, stored: int) -> None:
    """Refuse a figure whose answers and stored rows disagree."""
    result.rows_stored = stored
    if result.failures:
        log(f"  {name}: {len(result.failures)} failed requests, first: {result.failures[0]}")
    if stored != result.rows_answered:
        log(f"  {name}: answers said {result.rows_answered:,} rows, PostgreSQL holds {stored:,}")


def queued_messages() -> int:
    import redis

    client = redis.Redis.from_url(BROKER)
    return sum(client.llen(name) for name in ("realtime", "default", "bulk", "email"))


def summarise_load(name: str, result: LoadResult) -> dict:
    stored = result.rows_stored
    halves = [0, 0]
    for at, rows in result.finished:
        halves[0 if at < result.wall / 2 else 1] += rows
    cpu = result.cpu
    per_k = {k: v / max(stored, 1) * 1000 * 1000 for k, v in cpu.items()}
    summary = {
        "rate": stored / result.wall,
        "stored": stored,
        "requests": result.requests,
        "failures": len(result.failures),
        "events": statistics.median(result.events_per_request) if result.requests else 0,
        "p50": pct(result.latencies, 50),
        "p95": pct(result.latencies, 95),
        "halves": [h / (result.wall / 2) for h in halves],
        "cpu_ms_per_1000": per_k,
        "cpu_share": {k: v / result.wall for k, v in cpu.items()},
        "wall": result.wall,
    }
    log(
        f"  {name}: {stored:,} rows stored in {result.wall:.1f} s = {summary['rate']:,.0f} rows/s "
        f"({result.requests} requests, {len(result.failures)} failed, p50 "
        f"{summary['p50'] * 1000:.0f} ms); CPU ms per 1,000 rows: web {per_k['web']:.0f}, "
        f"PostgreSQL {per_k['db']:.0f}, load generator {per_k['load']:.0f}"
    )
    return summary


def one_run(world: World, web: Gunicorn, args: argparse.Namespace, run: int) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        # Fresh statistics, as autovacuum would keep them (it is off on this server).
        cursor.execute("ANALYZE leads_activity")
    log(f"run {run}: load {loadavg()}")
    figures: dict = {"raw": measure_raw(world, args, run)}
    meter = CpuMeter(web)
    if args.only in (None, "bulk"):
        figures["bulk"] = summarise_load("bulk", measure_bulk(world, args, run, meter))
        figures["bulk"]["ratio"] = figures["bulk"]["rate"] / figures["raw"]["insert"]
    if args.only in (None, "batch"):
        figures["batch"] = summarise_load("batch", measure_segment(world, args, run, meter))
        figures["batch"]["ratio"] = figures["batch"]["rate"] / figures["raw"]["insert"]
    if args.only in (None, "forms"):
        forms = form_posts(world, web, args, f"f{run}-{secrets.token_hex(3)}")
        figures["forms"] = forms
        log(
            f"  forms: p50 {pct(forms['client'], 50) * 1000:.1f} ms, p95 "
            f"{pct(forms['client'], 95) * 1000:.1f} ms, p99 {pct(forms['client'], 99) * 1000:.1f}"
            f" ms (server p95 {pct(forms['server'], 95) * 1000:.1f} ms); "
            f"{len(forms['failures'])} failed"
        )
    return figures


# --- Report ------------------------------------------------------------------------------


def med(runs: list[dict], *path: str) -> float:
    values = []
    for figures in runs:
        value = figures
        for key in path:
            value = value[key]
        values.append(value)
    return statistics.median(values)


def verdict(met: bool) -> str:
    return "**met**" if met else "**missed**"


def render(runs: list[dict], world: World, args: argparse.Namespace, context: dict) -> str:
    n = len(runs)
    raw_insert = med(runs, "raw", "insert")
    lines = [
        "## Ingestion through the REST API and web forms",
        "",
        f"Measured by `python bench/ingest.py --seconds {args.seconds:g} --runs {n} --record` "
        f"on {context['machine']}.",
        f"Load average {context['load_before']} before, {loadavg()} after (shared machine). "
        f"PostgreSQL: fsync {context['pg']['fsync']}, synchronous_commit "
        f"{context['pg']['synchronous_commit']}, shared_buffers {context['pg']['shared_buffers']}"
        f", autovacuum {context['pg']['autovacuum']}.",
        f"Data: {len(world.lead_ids):,} leads with {args.activities_per_lead} activities each "
        "before the first run (bench/generate.py); the table grows by every run's rows. "
        "Web: `gunicorn crm.wsgi:application --workers 2` (sync workers), `DEBUG=false`, "
        "PostgreSQL, Redis as broker and cache; no Celery worker (scoring is queued on commit "
        f"and waits: {context['queued']:,} messages were queued at the end). Each figure is "
        f"the median of {n} runs.",
        "",
        "| what | rows/s (median) | of raw batched INSERT (median of per-run ratios) "
        "| per request | request p50 / p95 |",
        "| --- | --- | --- | --- | --- |",
        f"| Raw: multi-row `INSERT`, 1,000 rows a statement, committed per statement, one "
        f"connection | {raw_insert:,.0f} | 100 % | 1,000 rows | — |",
        f"| Raw: `COPY`, one transaction | {med(runs, 'raw', 'copy'):,.0f} "
        f"| {med(runs, 'raw', 'copy') / raw_insert:.0%} | {args.raw_rows:,} rows | — |",
        f"| Raw: one `INSERT` committed per row | {med(runs, 'raw', 'single'):,.0f} "
        f"| {med(runs, 'raw', 'single') / raw_insert:.1%} | 1 row "
        f"| {1000 / med(runs, 'raw', 'single'):.2f} ms a row |",
    ]
    if "bulk" in runs[0]:
        lines.append(load_line("HTTP: `POST /api/v1/activities/bulk/`", runs, "bulk", args))
    if "batch" in runs[0]:
        lines.append(load_line("HTTP: Segment `POST /v1/batch`", runs, "batch", args))
    lines.append("")
    targets = []
    if "bulk" in runs[0]:
        share = med(runs, "bulk", "ratio")
        targets.append(
            f"Target (issue 5): sustained bulk ingestion through HTTP of at least 30 % of the raw "
            f"batched INSERT rate: {verdict(share >= TARGET_SHARE)} ({share:.0%}, "
            f"{med(runs, 'bulk', 'rate'):,.0f} of {raw_insert:,.0f} rows/s)."
        )
    if "forms" in runs[0]:
        p95 = med(runs, "forms_p95")
        targets.append(
            f"Target: a single form post p95 under 50 ms at the HTTP layer: "
            f"{verdict(p95 < TARGET_P95)} (p95 {p95 * 1000:.1f} ms)."
        )
    lines += targets
    if "bulk" in runs[0]:
        lines += ["", *cpu_lines(runs, args)]
    lines += ["", *breakdown_lines(context["breakdown"])]
    if "forms" in runs[0]:
        lines += ["", *form_lines(runs, args)]
    lines += ["", *method_lines(args)]
    return "\n".join(lines)


def load_line(label: str, runs: list[dict], key: str, args: argparse.Namespace) -> str:
    halves = [min(figures[key]["halves"]) / max(max(figures[key]["halves"]), 1) for figures in runs]
    return (
        f"| {label}, {args.clients} clients for {args.seconds:g} s "
        f"(slower half at {min(halves):.0%} of the faster) "
        f"| {med(runs, key, 'rate'):,.0f} | {med(runs, key, 'ratio'):.0%} "
        f"| {med(runs, key, 'events'):,.0f} events | "
        f"{med(runs, key, 'p50') * 1000:.0f} / {med(runs, key, 'p95') * 1000:.0f} ms |"
    )


def cpu_lines(runs: list[dict], args: argparse.Namespace) -> list[str]:
    lines = [
        "CPU time per 1,000 stored rows (median of runs; the machine has "
        f"{os.cpu_count()} cores, shared by all three):",
        "",
        "| load | gunicorn workers | their PostgreSQL backends | load generator (this process) |",
        "| --- | --- | --- | --- |",
    ]
    for key, label in (("bulk", "REST bulk"), ("batch", "Segment batch")):
        if key not in runs[0]:
            continue
        cells = [
            f"{med(runs, key, 'cpu_ms_per_1000', part):.0f} ms "
            f"({med(runs, key, 'cpu_share', part):.2f} cores)"
            for part in ("web", "db", "load")
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def breakdown_lines(breakdown: dict[str, float]) -> list[str]:
    whole = next(iter(breakdown.values()))
    lines = [
        "Where a bulk request's time goes: one request of 1,000 items through Django in the "
        "benchmark process (no HTTP, no concurrency), median of runs; each line takes one "
        "more `activity_recorded` receiver away (each runs once per lead of the batch):",
        "",
        "| in process, 1,000 items | ms per request | share | rows/s of one process |",
        "| --- | --- | --- | --- |",
    ]
    for name, value in breakdown.items():
        lines.append(f"| {name} | {value * 1000:.0f} | {value / whole:.0%} | {1000 / value:,.0f} |")
    return lines


def form_lines(runs: list[dict], args: argparse.Namespace) -> list[str]:
    single = 1 / med(runs, "raw", "single")
    return [
        f"Form posts: {args.posts} timed posts a run (after {args.warmup_posts} to warm up), one "
        "at a time, urlencoded as a browser's `<form>` sends them, each a new visitor (a new "
        "lead, its company looked up or created, one form-submission activity, scoring and a "
        "fit rescore queued), answered `303` to the thank-you page.",
        "",
        "| form post | p50 | p95 | p99 |",
        "| --- | --- | --- | --- |",
        f"| HTTP round trip (client, loopback) | {med(runs, 'forms_p50') * 1000:.1f} ms "
        f"| {med(runs, 'forms_p95') * 1000:.1f} ms | {med(runs, 'forms_p99') * 1000:.1f} ms |",
        f"| in the gunicorn worker (access log `%(D)s`) | {med(runs, 'server_p50') * 1000:.1f} ms "
        f"| {med(runs, 'server_p95') * 1000:.1f} ms | {med(runs, 'server_p99') * 1000:.1f} ms |",
        f"| Raw: one `INSERT` committed (per row, same run) | {single * 1000:.2f} ms | — | — |",
    ]


def method_lines(args: argparse.Namespace) -> list[str]:
    return [
        "Method: the raw rows have the shape the bulk endpoint stores (unscored, with an "
        "idempotency key, a creator and small properties) and go into the same table with "
        "all its indexes; their statements are built before the clock starts. Through HTTP, "
        f"{args.clients} client threads with their own connections post for {args.seconds:g} s "
        "without pause; requests under way at the deadline finish and count. The rate is the "
        "rows found committed in PostgreSQL afterwards (they must equal what the answers "
        "reported) over the wall time from the first request to the last answer; "
        '"sustained" means that whole window, and the slower half of it is shown beside. '
        "Bulk items go to random leads among all (about one item per lead per request); "
        "Segment batches mix `track` and `page` calls of known users, filled up to 450 KB. "
        "Scoring is not part of these figures: the activities wait, unscored, for a worker.",
    ]


def finish_forms(runs: list[dict]) -> None:
    for figures in runs:
        forms = figures.get("forms")
        if not forms:
            continue
        for q in (50, 95, 99):
            figures[f"forms_p{q}"] = pct(forms["client"], q)
            figures[f"server_p{q}"] = pct(forms["server"], q)


def main() -> None:
    args = parse()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.update(ENVIRONMENT)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    if not args.reuse:
        harness.drop_database(URL)
    harness.setup_django(URL)
    load_before = loadavg()
    world = prepare(args)
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    context = {"machine": harness.machine(), "pg": server_settings(), "load_before": load_before}
    log(f"{len(world.lead_ids):,} leads; {context['machine']}")
    web = Gunicorn()
    runs = []
    try:
        web.start()
        log("warming up")
        warm = argparse.Namespace(**{**vars(args), "seconds": 3.0, "posts": 10, "clients": 2})
        for measure in (measure_bulk, measure_segment):
            measure(world, warm, 0, CpuMeter(web))
        form_posts(world, web, warm, f"w-{secrets.token_hex(3)}")
        for run in range(1, args.runs + 1):
            runs.append(one_run(world, web, args, run))
        context["queued"] = queued_messages()
    finally:
        web.stop()
    log("in process: one bulk request, receiver by receiver")
    context["breakdown"] = in_process_breakdown(world, args.runs)
    finish_forms(runs)
    table = render(runs, world, args, context)
    print(table)
    if args.record:
        harness.record("ingest", table)
        log(f"recorded in {harness.PERFORMANCE}")


if __name__ == "__main__":
    main()

"""Real-time scoring with one real Celery worker: event-to-score latency and throughput.

    python bench/realtime.py                # 5,000 leads, 200 events/s for 30 s, bursts
    python bench/realtime.py --rate 200 --seconds 30 --burst 2500 --burst-leads 500

Runs against its own PostgreSQL database (``BENCH_RT_DATABASE_URL``, default
``hotlist_bench_rt``, rebuilt every run unless ``--reuse``) and Redis database 7 as the
broker (``BENCH_RT_BROKER_URL``). One worker is started as a subprocess with the
production command line (``--concurrency 1``) and always stopped at the end.

Phases, each bounded to about two minutes:

1. in process, no worker: the cost of one ``lead_score`` call split by what its SQL
   does (and on a new connection each time, as in the worker), of one
   ``activities_record``, the bare SQL INSERT of the burst's rows, and ``leads_score`` on
   100 leads a call;
2. baseline: a no-op task (``crm.tasks.record_heartbeat``) sent at the same rate through
   the same broker and worker, timed by its own DB write (a trigger logs every write);
3. latency: ``activities_record`` at a steady rate (paced on a monotonic clock, run by a
   few threads), one activity per call and transaction; event-to-score = the activity's
   ``scored_at`` (set by the worker) minus the wall-clock time the recording call
   returned (commit + enqueue);
4. throughput: a burst of activities inserted in bulk, then one ``score_lead`` per lead
   (what ``activities_record`` with several activities does) and, naively, one per
   activity; timed from the first enqueue to a sentinel task queued behind the burst;
5. the latency step again at half of the measured capacity of the worker.

Every figure and its baseline come from the same run; the table goes to
docs/PERFORMANCE.md (section "realtime").
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import secrets
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from contextlib import suppress
from datetime import datetime
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import pct

ROOT = harness.ROOT
URL = os.environ.get("BENCH_RT_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hotlist_bench_rt")
BROKER = os.environ.get("BENCH_RT_BROKER_URL", "redis://127.0.0.1:6379/7")
VAR_DIR = ROOT / "var" / "bench-rt"
QUEUES = ("realtime", "bulk", "email", "default")
WORKER_ARGS = [
    "-A",
    "crm",
    "worker",
    "--queues",
    ",".join(QUEUES),
    "--concurrency",
    "1",
    "--without-gossip",
    "--without-mingle",
    "--loglevel",
    "WARNING",
]
SOURCE = "bench-rt"
GRACE = 15.0  # seconds a paced load may run over its window before waiting calls are dropped

# What the worker and this process share: production settings (DEBUG off), our DB, our broker.
ENVIRONMENT = {
    "DATABASE_URL": URL,
    "CELERY_BROKER_URL": BROKER,
    "HOTLIST_VAR_DIR": str(VAR_DIR),
    "DJANGO_SETTINGS_MODULE": "crm.settings",
    "DEBUG": "false",
    "SECRET_KEY": "bench-realtime-" + secrets.token_hex(24),
    "CELERY_TASK_ALWAYS_EAGER": "false",
    "LOG_LEVEL": "WARNING",
}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--activities-per-lead", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200, help="Events per second.")
    parser.add_argument("--seconds", type=float, default=30, help="Length of the latency load.")
    parser.add_argument("--baseline-seconds", type=float, default=10)
    parser.add_argument(
        "--producers", type=int, default=8, help="Threads recording activities (0: inline)."
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=60, help="Wait this long after a load stops."
    )
    parser.add_argument("--burst", type=int, default=2500, help="Activities in the burst.")
    parser.add_argument("--burst-leads", type=int, default=500)
    parser.add_argument(
        "--naive", type=int, default=5000, help="Activities of the naive burst (capped at ~60 s)."
    )
    parser.add_argument("--floor", type=int, default=1000, help="No-op tasks for the floor.")
    parser.add_argument("--phase-timeout", type=float, default=120)
    parser.add_argument("--profile-leads", type=int, default=80, help="Warm calls (and cold).")
    parser.add_argument("--runs", type=int, default=3, help="Runs of the in-process timings.")
    parser.add_argument(
        "--long-leads",
        type=int,
        default=20,
        help="Leads given a long history, for the latency run on long histories (0: none).",
    )
    parser.add_argument(
        "--long-history", type=int, default=100_000, help="Activities of each long history."
    )
    parser.add_argument("--reuse", action="store_true", help="Keep the database of a former run.")
    parser.add_argument("--no-record", action="store_true", help="Print only.")
    args = parser.parse_args()
    if URL.rsplit("/", 1)[1] == "hotlist_bench":
        parser.error("hotlist_bench belongs to bench/scoring.py; use a database of your own")
    return args


# --- Small helpers ---------------------------------------------------------------------


def ms(value: float, bound: float | None = None) -> str:
    if value != value:
        return "—"
    if value == float("inf"):
        return f"> {bound:.0f} s" if bound else "never"
    if value >= 10:
        return f"{value:.1f} s"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1000:.0f} ms"


def epoch(dt: datetime) -> float:
    return dt.timestamp()


def loadavg() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def log(message: str) -> None:
    print(f"[{datetime.now().astimezone():%H:%M:%S}] {message}", flush=True)


# --- Database and broker set-up ---------------------------------------------------------


INSTRUMENTATION = """
CREATE TABLE IF NOT EXISTS bench_rt_beat (
    id bigserial PRIMARY KEY, beat_at timestamptz NOT NULL,
    logged_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE OR REPLACE FUNCTION bench_rt_beat_log() RETURNS trigger AS $$
BEGIN INSERT INTO bench_rt_beat (beat_at) VALUES (NEW.beat_at); RETURN NULL; END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS bench_rt_beat_log ON crm_workerheartbeat;
CREATE TRIGGER bench_rt_beat_log AFTER INSERT OR UPDATE ON crm_workerheartbeat
    FOR EACH ROW EXECUTE FUNCTION bench_rt_beat_log();
CREATE TABLE IF NOT EXISTS bench_rt_scored (
    activity_id bigint PRIMARY KEY, written_at timestamptz NOT NULL);
CREATE OR REPLACE FUNCTION bench_rt_scored_log() RETURNS trigger AS $$
BEGIN INSERT INTO bench_rt_scored VALUES (NEW.id, clock_timestamp()) ON CONFLICT DO NOTHING;
RETURN NULL; END $$ LANGUAGE plpgsql;
"""
SCORED_TRIGGER_ON = """
DROP TRIGGER IF EXISTS bench_rt_scored_log ON leads_activity;
CREATE TRIGGER bench_rt_scored_log AFTER UPDATE OF scored_at ON leads_activity FOR EACH ROW
    WHEN (OLD.scored_at IS NULL AND NEW.scored_at IS NOT NULL)
    EXECUTE FUNCTION bench_rt_scored_log();
"""
SCORED_TRIGGER_OFF = "DROP TRIGGER IF EXISTS bench_rt_scored_log ON leads_activity;"


def sql(statement: str, params: list | None = None) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])
        return cursor.fetchall() if cursor.description else []


def prepare(args: argparse.Namespace) -> dict:
    """A fresh database with leads, the starter model and a full rescore."""
    import generate
    from django.core.management import call_command

    from demo.scoring import seed_starter_model
    from leads.models import Activity, Lead
    from scoring.lead_scoring import leads_score
    from scoring.models import RescoreJob
    from scoring.rescore_jobs import rescore_job_run

    call_command("migrate", verbosity=0)
    if not Lead.objects.exists():
        log(f"generating {args.leads:,} leads x {args.activities_per_lead} activities")
        generate.generate(leads=args.leads, activities_per_lead=args.activities_per_lead)
    model = seed_starter_model()
    stale = list(Activity.objects.filter(scored_at__isnull=True).values_list("lead_id", flat=True))
    if stale:
        leads_score(lead_ids=sorted(set(stale)))
    with harness.stopwatch() as took:
        job = RescoreJob.objects.create(model=model, reason="bench/realtime.py")
        rescore_job_run(job_id=job.pk, in_process=True)
    log(f"full rescore: {took[0]:.1f} s")
    long_ids = long_histories(args.long_leads, args.long_history)
    sql(INSTRUMENTATION)
    sql(SCORED_TRIGGER_OFF)
    sql("VACUUM ANALYZE")
    leads, activities = generate.counts()
    return {"leads": leads, "activities": activities, "long": long_ids}


def long_histories(count: int, history: int) -> list[int]:
    """Give the first ``count`` leads ``history`` page views each over the last 180 days,
    already scored (the worker's events then land on leads with long histories), and score
    those leads once in full so their stored state is current."""
    from leads.models import Activity, Lead
    from scoring.lead_scoring import leads_score

    ids = list(Lead.objects.order_by("pk").values_list("pk", flat=True)[:count])
    if not ids or Activity.objects.filter(lead_id=ids[0], source="bench-history").exists():
        return ids
    log(f"giving {len(ids)} leads {history:,} activities of history each")
    with harness.stopwatch() as took:
        sql(
            """
            INSERT INTO leads_activity (lead_id, type, url, duration_seconds, properties,
                                        occurred_at, received_at, source, idempotency_key,
                                        scored_at, created_by_id)
            SELECT l.id, 'page_view', 'https://hotlist.example/blog/' || (n %% 500), 30,
                   '{}'::jsonb, now() - (n * 15552000.0 / %s) * interval '1 second', now(),
                   'bench-history', '', now(), NULL
            FROM unnest(%s::bigint[]) AS l(id), generate_series(1, %s) AS n
            """,
            [history, ids, history],
        )
        leads_score(lead_ids=ids)
    log(f"  in {took[0]:.1f} s")
    return ids


def redis_client():
    import redis

    return redis.Redis.from_url(BROKER)


def purge() -> int:
    """Drop every waiting and unacknowledged message of our queues (Redis DB 7 is ours)."""
    from crm.celery import app

    purged = app.control.purge() or 0
    client = redis_client()
    client.delete("unacked", "unacked_index", "unacked_mutex")
    return purged


def queue_depth(client) -> int:
    return sum(client.llen(name) for name in QUEUES)


def sessions() -> int:
    return sql("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")[0][0]


# --- The worker --------------------------------------------------------------------------


def production_worker() -> harness.Worker:
    """The one worker this benchmark runs, as in production."""
    return harness.Worker(WORKER_ARGS, {**os.environ, **ENVIRONMENT}, VAR_DIR / "worker.log", log)


def last_beat_id() -> int:
    return sql("SELECT coalesce(max(id), 0) FROM bench_rt_beat")[0][0]


def wait_for_beat(after: int, timeout: float, worker: harness.Worker) -> tuple[float, float] | None:
    """Wait for a heartbeat logged after id ``after``: its (beat_at, logged_at) epochs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = sql(
            "SELECT beat_at, logged_at FROM bench_rt_beat WHERE id > %s ORDER BY id LIMIT 1",
            [after],
        )
        if row:
            return epoch(row[0][0]), epoch(row[0][1])
        if not worker.alive():
            raise RuntimeError(f"the worker exited; see {worker.logfile}")
        time.sleep(0.05)
    return None


def sentinel(worker: harness.Worker, timeout: float) -> tuple[float, float] | None:
    """A no-op queued behind everything on the realtime queue: when it runs, all before has."""
    from crm.tasks import record_heartbeat

    before = last_beat_id()
    record_heartbeat.apply_async(queue="realtime")
    return wait_for_beat(before, timeout, worker)


# --- Phase 1: in process, no worker ----------------------------------------------------


def classify(statement: str) -> str:
    s = statement.lstrip().upper()
    if s.startswith("SELECT MAX(") or ("MAX(" in s[:40] and "COUNT(" in s):
        return "ruleset fingerprint (5 aggregates, every call)"
    if "FOR UPDATE" in s:
        return "lock the lead (SELECT … FOR UPDATE)"
    if (
        s.startswith("SELECT")
        and any(
            t in s
            for t in (
                '"SCORING_RULE"',
                '"SCORING_DOMAINLIST"',
                "CUSTOMFIELDDEFINITION",
                '"SCORING_SCORINGMODEL"',
            )
        )
        and "SCORING_SCOREENTRY" not in s
    ):
        return "ruleset compile (cache miss)"
    if s.startswith("SELECT"):
        return "read activities, ledger, scores"
    return "write ledger, scores, outbox (INSERT/UPDATE)"


def profile_lead_score(n: int) -> dict:
    """Time ``lead_score`` in process for ``n`` leads with one new activity each."""
    from django.db import connection, transaction

    from leads.models import Activity, Lead
    from scoring.lead_scoring import lead_score
    from scoring.ruleset import load_ruleset

    rng = random.Random(11)
    sample = rng.sample(list(Lead.objects.values_list("pk", flat=True)), 2 * n)
    parts: list[Counter] = []
    totals, cold, counts = [], [], []
    current: Counter = Counter()
    queries = [0]

    def timer(execute, statement, params, many, context):
        start = time.perf_counter()
        try:
            return execute(statement, params, many, context)
        finally:
            current[classify(statement)] += time.perf_counter() - start
            queries[0] += 1

    original_commit = connection._commit

    def timed_commit():
        start = time.perf_counter()
        try:
            return original_commit()
        finally:
            current["COMMIT"] += time.perf_counter() - start

    load_ruleset()  # as in a warm worker
    connection._commit = timed_commit
    try:
        with connection.execute_wrapper(timer):
            # Warm and cold calls alternate, so that both meet the same load on the machine.
            # Cold as in the worker: Celery's Django fix-up closes the connection around
            # every task, so each call connects anew and meets a backend with cold caches.
            for i, lead_id in enumerate(sample):
                with transaction.atomic():
                    Activity.objects.create(
                        lead_id=lead_id,
                        type="page_view",
                        source=SOURCE,
                        url="https://hotlist.example/pricing",
                    )
                if i % 2:
                    connection.close()
                current.clear()
                queries[0] = 0
                start = time.perf_counter()
                lead_score(lead_id=lead_id)
                total = time.perf_counter() - start
                if i % 2:
                    cold.append(total)
                    continue
                current["Python (engine, ORM)"] = total - sum(current.values())
                parts.append(Counter(current))
                totals.append(total)
                counts.append(queries[0])
    finally:
        del connection._commit
    names = sorted({k for p in parts for k in p})
    breakdown = {name: statistics.median(p.get(name, 0.0) for p in parts) for name in names}
    # A cache miss happens once per CACHE_SECONDS in a busy worker; time it on its own.
    fresh, _ = harness.median_of(9, lambda: load_ruleset(fresh=True))
    cached, _ = harness.median_of(21, load_ruleset)
    connect = []
    for _ in range(15):
        connection.close()
        start = time.perf_counter()
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        connect.append(time.perf_counter() - start)
    return {
        "n": n,
        "total": statistics.median(totals),
        "cold": statistics.median(cold),
        "queries": statistics.median(counts),
        "breakdown": breakdown,
        "ruleset_fresh": fresh,
        "ruleset_cached": cached,
        "connect": statistics.median(connect),
    }


def record_cost(n: int) -> tuple[float, float]:
    """``activities_record`` alone, one thread, no worker: median wall time and CPU per call.

    The enqueued messages are purged and the activities marked scored before the worker starts.
    """
    from leads.activities import activities_record
    from leads.models import Activity, Lead

    leads = list(Lead.objects.only("id").order_by("?")[:n])
    walls = []
    cpu = time.process_time()
    for lead in leads:
        start = time.perf_counter()
        activities_record(lead=lead, activities=[Activity(type="email_open", source=SOURCE)])
        walls.append(time.perf_counter() - start)
    cpu = (time.process_time() - cpu) / len(leads)
    purge()
    sql("UPDATE leads_activity SET scored_at = now() WHERE scored_at IS NULL")
    return statistics.median(walls), cpu


def burst_rows(lead_ids: list[int], per_lead: int, rng: random.Random) -> list[tuple]:
    import generate
    from django.utils import timezone

    now = timezone.now()
    rows = []
    for lead_id in lead_ids:
        for _ in range(per_lead):
            kind, url = pick_activity(rng, generate.ACTIVITY_MIX)
            rows.append((lead_id, kind, url, now))
    return rows


def pick_activity(rng: random.Random, mix: list[tuple]) -> tuple[str, str]:
    r = rng.random()
    for share, kind, url in mix:
        if r < share:
            return kind, url
    return mix[-1][1], mix[-1][2]


def insert_rows(rows: list[tuple]) -> list[int]:
    """One INSERT … SELECT FROM unnest of the rows, unscored; their ids."""
    result = sql(
        """
        INSERT INTO leads_activity (lead_id, type, url, duration_seconds, properties,
                                    occurred_at, received_at, source, idempotency_key,
                                    scored_at, created_by_id)
        SELECT l, t, u, NULL, '{}'::jsonb, o, o, %s, '', NULL, NULL
        FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[]) AS x(l, t, u, o)
        RETURNING id
        """,
        [
            SOURCE,
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
        ],
    )
    return [r[0] for r in result]


def bare_insert_seconds(rows: list[tuple], runs: int) -> tuple[float, float]:
    """The bare SQL: INSERT the burst's rows, and that plus marking them scored; rolled back."""
    from django.db import transaction

    def insert_only():
        with transaction.atomic():
            insert_rows(rows)
            transaction.set_rollback(True)

    def insert_and_mark():
        with transaction.atomic():
            ids = insert_rows(rows)
            sql("UPDATE leads_activity SET scored_at = now() WHERE id = ANY(%s)", [ids])
            transaction.set_rollback(True)

    insert, _ = harness.median_of(runs, insert_only)
    both, _ = harness.median_of(runs, insert_and_mark)
    return insert, both


BATCH = 100


def batch_score_seconds(rows: list[tuple]) -> float:
    """``leads_score`` on the burst's leads, ``BATCH`` leads a call (no broker, no per-task
    cost); rolled back. The whole burst's time, from the median call."""
    from django.db import transaction

    from scoring.lead_scoring import leads_score
    from scoring.ruleset import load_ruleset

    lead_ids = sorted({r[0] for r in rows})
    times = []
    load_ruleset()
    with transaction.atomic():
        insert_rows(rows)
        for at in range(0, len(lead_ids), BATCH):
            start = time.perf_counter()
            leads_score(lead_ids=lead_ids[at : at + BATCH])
            times.append(time.perf_counter() - start)
        transaction.set_rollback(True)
    return statistics.median(times) * len(times)


# --- Phases 2, 3 and 5: paced load ---------------------------------------------------------


class Sampler:
    """Every half second during a load: queue depth and backends waiting on a lock."""

    def __init__(self) -> None:
        self.client = redis_client()
        self.depths: list[int] = []
        self.lock_waits = 0
        self.samples = 0
        self.next = 0.0

    def maybe(self, now: float) -> None:
        if now < self.next:
            return
        self.next = now + 0.5
        self.depths.append(queue_depth(self.client))
        self.lock_waits += sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )[0][0]
        self.samples += 1


def paced(rate: float, seconds: float, make, producers: int = 0) -> dict:
    """Offer ``rate`` calls a second for ``seconds`` on a monotonic clock.

    ``make(i)`` (in this thread, so choices stay deterministic) returns the call to run; it
    runs inline, or on one of ``producers`` threads (each with its own database
    connection) so that one slow call does not hold back the schedule. Calls still queued
    ``GRACE`` seconds after the window are dropped, so the phase stays bounded.
    """
    total = int(rate * seconds)
    sampler = Sampler()
    lateness: list[float] = []
    finished: list[float] = []
    jobs: queue.Queue = queue.Queue()

    def run(call, due: float) -> None:
        lateness.append(time.monotonic() - due)
        call()
        finished.append(time.monotonic())

    def producer() -> None:
        from django.db import connection

        try:
            while (item := jobs.get()) is not None:
                run(*item)
        finally:
            connection.close()

    threads = [threading.Thread(target=producer, daemon=True) for _ in range(producers)]
    for thread in threads:
        thread.start()
    start = time.monotonic()
    for i in range(total):
        due = start + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        call = make(i)
        if threads:
            jobs.put((call, due))
        else:
            run(call, due)
        sampler.maybe(time.monotonic())
    dropped = 0
    if threads:
        deadline = time.monotonic() + GRACE
        while not jobs.empty() and time.monotonic() < deadline:
            sampler.maybe(time.monotonic())
            time.sleep(0.05)
        with suppress(queue.Empty):
            while True:
                jobs.get_nowait()
                dropped += 1
        for _ in threads:
            jobs.put(None)
        for thread in threads:
            thread.join(30)
    took = max(finished, default=start + 1e-9) - start
    return {
        "sent": len(finished),
        "offered": total,
        "dropped": dropped,
        "took": took,
        "achieved": len(finished) / took,
        "late": sum(x > 0.05 for x in lateness),
        "late_p95": pct(lateness, 95),
        "max_depth": max(sampler.depths, default=0),
        "end_depth": queue_depth(sampler.client),
        "lock_waits": sampler.lock_waits,
        "samples": sampler.samples,
    }


def heartbeat_baseline(rate: float, seconds: float, drain: float, worker: harness.Worker) -> dict:
    """A no-op task at ``rate``/s: each send time against the worker's own time of its write."""
    from crm.tasks import record_heartbeat

    before = last_beat_id()
    sent: list[float] = []
    publish: list[float] = []

    def send() -> None:
        start = time.perf_counter()
        record_heartbeat.delay()
        publish.append(time.perf_counter() - start)
        sent.append(time.time())

    sessions_before = sessions()
    load = paced(rate, seconds, lambda _: send)
    log(f"  sent {load['sent']:,} at {load['achieved']:.0f}/s, queue max {load['max_depth']:,}")
    stop = time.time()
    deadline = time.monotonic() + drain
    rows: list[tuple] = []
    while time.monotonic() < deadline:
        rows = sql(
            "SELECT beat_at, logged_at FROM bench_rt_beat WHERE id > %s ORDER BY id", [before]
        )
        if len(rows) >= len(sent):
            break
        time.sleep(0.2)
    # One consumer, one FIFO list, prefetch 1: the k-th write is the k-th message.
    latencies = [
        epoch(rows[k][0]) - sent[k] if k < len(rows) else float("inf") for k in range(len(sent))
    ]
    done = [epoch(rows[k][1]) - sent[k] for k in range(min(len(rows), len(sent)))]
    drained = epoch(rows[len(sent) - 1][1]) - stop if len(rows) >= len(sent) else None
    opened = sessions() - sessions_before
    beats = [epoch(r[0]) for r in rows[: len(sent)]]
    gaps = [b - a for a, b in pairwise(beats)]
    return {
        **load,
        "latencies": latencies,
        "written": done,
        "drained": drained,
        "publish": statistics.median(publish),
        "executed": len(rows),
        "gap": statistics.median(gaps) if gaps else float("nan"),
        "drain_limit": drain,
        "sessions": opened,
    }


def latency_run(
    rate: float,
    seconds: float,
    drain: float,
    worker: harness.Worker,
    seed: int,
    producers: int,
    lead_ids: list[int] | None = None,
) -> dict:
    """``activities_record`` at ``rate``/s, one activity each, on any lead or on
    ``lead_ids``; scored_at minus commit time."""
    import generate

    from leads.activities import activities_record
    from leads.models import Activity, Lead

    rng = random.Random(seed)
    leads = list(
        (Lead.objects.filter(pk__in=lead_ids) if lead_ids else Lead.objects.all()).only("id")
    )
    first_id = sql("SELECT coalesce(max(id), 0) FROM leads_activity")[0][0]
    records: list[tuple[int, float, float]] = []

    def make(_: int):
        lead = rng.choice(leads)
        kind, url = pick_activity(rng, generate.ACTIVITY_MIX)

        def record() -> None:
            activity = Activity(type=kind, url=url, source=SOURCE)
            start = time.time()
            activities_record(lead=lead, activities=[activity])
            records.append((activity.pk, start, time.time()))

        return record

    sql(SCORED_TRIGGER_ON)
    sessions_before = sessions()
    try:
        load = paced(rate, seconds, make, producers)
        log(
            f"  recorded {load['sent']:,} of {load['offered']:,} at {load['achieved']:.0f}/s "
            f"({load['late']:,} started more than 50 ms late, p95 "
            f"{ms(load['late_p95'])}), queue max {load['max_depth']:,}"
        )
        stop = time.time()
        deadline = time.monotonic() + drain
        unscored = len(records)
        while time.monotonic() < deadline:
            unscored = Activity.objects.filter(pk__gt=first_id, scored_at__isnull=True).count()
            if unscored == 0 or not worker.alive():
                break
            time.sleep(0.2)
        waited = time.time() - stop
    finally:
        sql(SCORED_TRIGGER_OFF)
    opened = sessions() - sessions_before
    ids = [r[0] for r in records]
    scored = dict(
        sql(
            "SELECT id, scored_at FROM leads_activity WHERE id = ANY(%s) AND scored_at IS NOT NULL",
            [ids],
        )
    )
    written = dict(
        sql(
            "SELECT activity_id, written_at FROM bench_rt_scored WHERE activity_id = ANY(%s)", [ids]
        )
    )
    inf = float("inf")
    latencies = [epoch(scored[pk]) - end if pk in scored else inf for pk, _, end in records]
    applied = [epoch(written[pk]) - end if pk in written else inf for pk, _, end in records]
    from_call = [epoch(scored[pk]) - start if pk in scored else inf for pk, start, _ in records]
    last = max((epoch(v) for v in written.values()), default=None)
    left = 0
    if unscored:
        # Bounded run: drop the backlog and score what is left in process, for the next phase.
        # Bounded run: drop the backlog and mark what is left as scored, so the next phase
        # starts from an empty queue. (The engine derives awards from all of a lead's
        # activities, so the next scoring of such a lead still applies them.)
        left = unscored
        purge()
        sql("UPDATE leads_activity SET scored_at = now() WHERE scored_at IS NULL")
    # Distinct task start times (scored_at) while the worker was saturated: its service time.
    starts = sorted({epoch(v) for v in scored.values()})
    gaps = [b - a for a, b in pairwise(starts)]
    return {
        **load,
        "rate": rate,
        "seconds": seconds,
        "latencies": latencies,
        "applied": applied,
        "from_call": from_call,
        "call": statistics.median(end - start for _, start, end in records),
        "scored": len(scored),
        "left": left,
        "waited": waited,
        "drained": max(0.0, last - stop) if last is not None and not left else None,
        "sessions": opened,
        "gap": statistics.median(gaps) if gaps else float("nan"),
        "drain_limit": drain,
    }


# --- Phase 4: bursts ----------------------------------------------------------------------


def burst(
    lead_ids: list[int],
    per_lead: int,
    per_activity: bool,
    timeout: float,
    worker: harness.Worker,
    seed: int,
) -> dict:
    """Insert the activities in bulk, then queue score_lead per lead (or per activity)."""
    from django.db import transaction

    from scoring.tasks import score_lead

    rng = random.Random(seed)
    rows = burst_rows(lead_ids, per_lead, rng)
    with transaction.atomic():
        ids = insert_rows(rows)
    # Per activity: in the order the activities would have arrived, leads interleaved.
    order = [r[0] for r in rows]
    if per_activity:
        rng.shuffle(order)
    else:
        order = list(dict.fromkeys(order))
    sessions_before = sessions()
    t0 = time.time()
    for lead_id in order:
        score_lead.delay(lead_id)
    queued = time.time() - t0
    done = sentinel(worker, timeout)
    finished = time.time()
    scored = dict(
        sql(
            "SELECT id, scored_at FROM leads_activity WHERE id = ANY(%s) AND scored_at IS NOT NULL",
            [ids],
        )
    )
    opened = sessions() - sessions_before
    # Per lead, the tasks' start times are the distinct scored_at values (one task, one time).
    starts = sorted({epoch(v) for v in scored.values()}) if not per_activity else []
    gaps = [b - a for a, b in pairwise(starts)]
    if done is None:
        purge()
        elapsed = finished - t0
        complete = False
    else:
        elapsed = done[0] - t0
        complete = len(scored) == len(ids)
    return {
        "activities": len(ids),
        "tasks": len(order),
        "leads": len(lead_ids),
        "elapsed": elapsed,
        "queued": queued,
        "scored": len(scored),
        "complete": complete,
        "timed_out": done is None,
        "per_second": len(scored) / elapsed,
        "tasks_per_second": len(order) / elapsed if done else float("nan"),
        "gap": statistics.median(gaps) if gaps else float("nan"),
        "sessions": opened,
    }


def floor_burst(n: int, worker: harness.Worker, timeout: float) -> dict:
    """The broker and worker alone: ``n`` built-in no-op tasks (no database), then a sentinel."""
    from crm.celery import app

    sessions_before = sessions()
    t0 = time.time()
    for _ in range(n):
        app.send_task("celery.accumulate", args=(1,), queue="realtime")
    done = sentinel(worker, timeout)
    if done is None:
        purge()
        return {
            "tasks": n,
            "elapsed": float("nan"),
            "tasks_per_second": float("nan"),
            "sessions": sessions() - sessions_before,
        }
    elapsed = done[0] - t0
    return {
        "tasks": n,
        "elapsed": elapsed,
        "tasks_per_second": n / elapsed,
        "sessions": sessions() - sessions_before,
    }


# --- Main ------------------------------------------------------------------------------------


def main() -> None:
    args = parse()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.update(ENVIRONMENT)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    if not args.reuse:
        harness.drop_database(URL)
    harness.setup_django(URL)
    load_before = loadavg()
    data = prepare(args)
    log(f"{data['leads']:,} leads, {data['activities']:,} activities; load {load_before}")

    from leads.models import Lead

    rng = random.Random(3)
    all_ids = list(Lead.objects.order_by("pk").values_list("pk", flat=True))
    pool = all_ids[:]
    rng.shuffle(pool)
    per_lead = max(1, args.burst // args.burst_leads)

    def take(n: int) -> list[int]:
        taken, pool[:] = pool[:n], pool[n:] + pool[:n]
        return taken

    # Phase 1: in process.
    log("in process: lead_score profile")
    profile = profile_lead_score(args.profile_leads)
    log(f"  lead_score {profile['total'] * 1000:.1f} ms, {profile['queries']:.0f} queries")
    profile["record_wall"], profile["record_cpu"] = record_cost(200)
    log(
        f"  activities_record alone: {profile['record_wall'] * 1000:.1f} ms wall, "
        f"{profile['record_cpu'] * 1000:.1f} ms CPU"
    )
    bare_rows = burst_rows(take(args.burst_leads), per_lead, random.Random(5))
    bare_insert, bare_both = bare_insert_seconds(bare_rows, args.runs)
    log(
        f"  bare INSERT {len(bare_rows):,} rows: {bare_insert:.3f} s, "
        f"+ mark scored {bare_both:.3f} s"
    )
    batch = batch_score_seconds(bare_rows)
    log(f"  leads_score of {args.burst_leads:,} leads, {BATCH} a call: {batch:.2f} s")

    purged = purge()
    if purged:
        log(f"purged {purged} waiting messages")
    worker = production_worker()
    results: dict = {}
    try:
        worker.start()
        ready = sentinel(worker, 90)
        if ready is None:
            raise RuntimeError(f"the worker did not answer within 90 s; see {worker.logfile}")
        log("worker ready; warming up")
        latency_run(10, 2, 30, worker, seed=1, producers=args.producers)

        log(f"baseline: no-op heartbeat at {args.rate:g}/s for {args.baseline_seconds:g} s")
        results["beat"] = heartbeat_baseline(
            args.rate, args.baseline_seconds, args.drain_timeout, worker
        )
        summary("heartbeat", results["beat"]["latencies"])
        purge()

        log(f"floor: {args.floor:,} built-in no-op tasks (celery.accumulate), no database")
        results["floor"] = floor_burst(args.floor, worker, args.phase_timeout)
        log(f"  {results['floor']['tasks_per_second']:.0f} tasks/s")

        log(f"latency: activities_record at {args.rate:g}/s for {args.seconds:g} s")
        results["latency"] = latency_run(
            args.rate, args.seconds, args.drain_timeout, worker, seed=2, producers=args.producers
        )
        summary("product", results["latency"]["latencies"])
        if data["long"]:
            purge()
            log(
                f"latency on long histories: activities_record at {args.rate:g}/s for "
                f"{args.seconds:g} s on the {len(data['long'])} leads with "
                f"{args.long_history:,} activities each"
            )
            results["long"] = latency_run(
                args.rate,
                args.seconds,
                args.drain_timeout,
                worker,
                seed=9,
                producers=args.producers,
                lead_ids=data["long"],
            )
            summary("product (long histories)", results["long"]["latencies"])

        log(f"burst: {args.burst:,} activities over {args.burst_leads:,} leads, task per lead")
        results["burst"] = burst(
            take(args.burst_leads), per_lead, False, args.phase_timeout, worker, seed=6
        )
        log(
            f"  {results['burst']['per_second']:.1f} activities/s, "
            f"{results['burst']['tasks_per_second']:.1f} tasks/s"
        )
        task_rate = results["burst"]["tasks"] / results["burst"]["elapsed"]
        naive = min(args.naive, int(task_rate * 60) // per_lead * per_lead)
        naive = max(naive, per_lead * 10)
        log(f"naive: {naive:,} activities, one score_lead per activity")
        results["naive"] = burst(
            take(naive // per_lead), per_lead, True, args.phase_timeout, worker, seed=7
        )
        log(
            f"  {results['naive']['per_second']:.1f} activities/s, "
            f"{results['naive']['tasks_per_second']:.1f} tasks/s"
        )

        slow = max(1.0, round(task_rate / 2))
        slow_seconds = min(args.seconds, 20.0)
        log(f"latency at half the worker's capacity: {slow:g}/s for {slow_seconds:g} s")
        results["slow"] = latency_run(
            slow, slow_seconds, args.drain_timeout, worker, seed=8, producers=args.producers
        )
        summary("product (half capacity)", results["slow"]["latencies"])
    finally:
        worker.stop()
        purge()
    load_after = loadavg()
    table = render(
        args,
        data,
        profile,
        bare_rows,
        bare_insert,
        bare_both,
        batch,
        results,
        load_before,
        load_after,
    )
    print()
    print(table)
    if not args.no_record:
        harness.record("realtime", table)
        print(f"\nRecorded in {harness.PERFORMANCE}")


def summary(name: str, values: list[float]) -> None:
    log(
        f"  {name}: p50 {ms(pct(values, 50))}, p95 {ms(pct(values, 95))}, "
        f"p99 {ms(pct(values, 99))}, unscored {sum(v == float('inf') for v in values)}"
    )


def render(
    args, data, profile, bare_rows, bare_insert, bare_both, batch, results, load_before, load_after
) -> str:
    beat, lat, slow = results["beat"], results["latency"], results["slow"]
    prod, naive, floor = results["burst"], results["naive"], results["floor"]
    command = "python bench/realtime.py"
    if sys.argv[1:]:
        command += " " + " ".join(sys.argv[1:])
    target_met = pct(lat["latencies"], 95) < 1.0 and (
        "long" not in results or pct(results["long"]["latencies"], 95) < 1.0
    )
    lines = [
        "## Real-time scoring with one worker",
        "",
        f"Measured by `{command}` on {harness.machine()}.",
        f"Load average {load_before} before, {load_after} after (shared machine).",
        f"Data: {data['leads']:,} leads, {data['activities']:,} activities before the run "
        "(bench/generate.py), the starter model, all scored once. One worker, as in "
        "production: `celery -A crm worker --queues realtime,bulk,email,default "
        "--concurrency 1 --without-gossip --without-mingle`, `DEBUG=false`, Redis broker.",
        "",
        f"### Event-to-score latency at {args.rate:g} events/s",
        "",
        "| what | events (achieved rate) | p50 | p95 | p99 | queue depth, max | "
        "all done after the load stopped |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def drained(run) -> str:
        if run.get("left"):
            return (
                f"no: {run['left']:,} of {run['sent']:,} unscored {run['drain_limit']:.0f} s after"
            )
        if run.get("drained") is None:
            return f"no ({run['executed']:,} of {run['sent']:,} run)"
        return f"yes, {run['drained']:.1f} s"

    def sent(run) -> str:
        text = f"{run['sent']:,} ({run['achieved']:.0f}/s)"
        if run.get("offered", run["sent"]) != run["sent"]:
            text += f" of {run['offered']:,} offered"
        return text

    def row(what, run, values, bound):
        return (
            f"| {what} | {sent(run)} | {ms(pct(values, 50), bound)} "
            f"| {ms(pct(values, 95), bound)} | {ms(pct(values, 99), bound)} "
            f"| {run['max_depth']:,} | {drained(run)} |"
        )

    bound = lat["seconds"] + lat["drain_limit"]
    lines += [
        row(
            "Hotlist: `activities_record` → `score_lead` → `scored_at`",
            lat,
            lat["latencies"],
            bound,
        ),
        row("… until the score is written (ledger, lead, outbox)", lat, lat["applied"], bound),
        row(
            f"Hotlist, every event on one of {len(data['long'])} leads with "
            f"{args.long_history:,} activities of history each",
            results["long"],
            results["long"]["latencies"],
            bound,
        )
        if "long" in results
        else None,
        row("… until the score is written", results["long"], results["long"]["applied"], bound)
        if "long" in results
        else None,
        row(
            f"Baseline: no-op task (`record_heartbeat`) at {args.rate:g}/s, same broker and worker",
            beat,
            beat["latencies"],
            args.baseline_seconds + beat["drain_limit"],
        ),
        row(
            f"Hotlist at {slow['rate']:g} events/s (half the worker's measured capacity)",
            slow,
            slow["latencies"],
            slow["seconds"] + slow["drain_limit"],
        ),
        row(
            "… until the score is written",
            slow,
            slow["applied"],
            slow["seconds"] + slow["drain_limit"],
        ),
        "",
        f"Target (issue): p95 under 1 s at {args.rate:g} events/s with one worker, for short "
        f"and long histories: **{'met' if target_met else 'missed'}** "
        f"(p95 {ms(pct(lat['latencies'], 95), bound)}"
        + (
            f"; {ms(pct(results['long']['latencies'], 95), bound)} on long histories"
            if "long" in results
            else ""
        )
        + "). Recording one activity "
        f"(transaction + enqueue) took {lat['call'] * 1000:.1f} ms (median, "
        f"{args.producers} recording threads; {profile['record_wall'] * 1000:.1f} ms alone "
        f"before the worker started); publishing one message "
        f"{beat['publish'] * 1000:.2f} ms."
        + (
            f" The benchmark process offered {args.rate:g}/s but recorded only "
            f"{lat['achieved']:.0f}/s: `activities_record` itself needs about "
            f"{profile['record_cpu'] * 1000:.0f} ms of CPU per call, and the worker, "
            "PostgreSQL and the machine's other tenants share its 2 cores."
            if lat["achieved"] < 0.95 * args.rate
            else ""
        ),
        "",
        "### Throughput of one worker",
        "",
        "| what | activities | tasks | wall | activities/s | tasks/s | median gap between "
        "tasks | bare SQL INSERT is faster by |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    bare_rate = len(bare_rows) / bare_insert
    bare_both_rate = len(bare_rows) / bare_both

    def burst_row(what, run):
        wall = f"{run['elapsed']:.1f} s" + (" (timed out)" if run["timed_out"] else "")
        return (
            f"| {what} | {run['activities']:,} | {run['tasks']:,} | {wall} "
            f"| {run['per_second']:,.0f} | {run['tasks_per_second']:,.1f} "
            f"| {ms(run['gap'])} | {bare_rate / run['per_second']:,.0f}x |"
        )

    lines += [
        burst_row(f"Hotlist: burst over {prod['leads']:,} leads, one `score_lead` per lead", prod),
        burst_row(f"Naive: one `score_lead` per activity ({naive['leads']:,} leads)", naive),
        f"| Floor: built-in no-op task (`celery.accumulate`, no database), same broker and "
        f"worker | — | {floor['tasks']:,} | {floor['elapsed']:.1f} s | — "
        f"| {floor['tasks_per_second']:,.0f} | — | — |",
        f"| No-op with one DB write (`record_heartbeat`, queue backed up) | — "
        f"| {beat['executed']:,} | — | — | {1 / beat['gap']:,.1f} | {ms(beat['gap'])} | — |"
        if beat["max_depth"] > 10
        else None,
        f"| Baseline: bare SQL `INSERT` of the same rows (rolled back, median) "
        f"| {len(bare_rows):,} | — | {bare_insert:.2f} s | {bare_rate:,.0f} | — | — | 1x |",
        f"| … and `UPDATE` them as scored | {len(bare_rows):,} | — | {bare_both:.2f} s "
        f"| {bare_both_rate:,.0f} | — | — | {bare_rate / bare_both_rate:.1f}x |",
        f"| In process, no broker: `leads_score` of the {args.burst_leads:,} leads, {BATCH} a "
        f"call (median call x calls) | {len(bare_rows):,} | {args.burst_leads // BATCH} "
        f"| {batch:.2f} s | {len(bare_rows) / batch:,.0f} "
        f"| — | — | {bare_rate / (len(bare_rows) / batch):,.0f}x |",
        "",
        "### Where a task's time goes",
        "",
        f"In process, `lead_score` of one lead with one new activity (median of "
        f"{profile['n']} leads each, warm and cold calls alternating): "
        f"**{profile['total'] * 1000:.1f} ms** on an open "
        f"connection with a warm ruleset cache ({profile['queries']:.0f} SQL statements), "
        f"**{profile['cold'] * 1000:.1f} ms** when every call opens a new connection, as "
        "in the worker.",
        "",
        "| part of a warm call | ms (median) |",
        "| --- | --- |",
    ]
    for name, value in sorted(profile["breakdown"].items(), key=lambda kv: -kv[1]):
        if value >= 0.00005:
            lines.append(f"| {name} | {value * 1000:.1f} |")
    worker_gap = prod["gap"]
    per_task_sessions = prod["sessions"] / (prod["tasks"] + 1)
    warm, cold = profile["total"], profile["cold"]
    python = profile["breakdown"].get("Python (engine, ORM)", 0.0)
    floor_ms = 1 / floor["tasks_per_second"]
    rest = max(0.0, worker_gap - cold - floor_ms)
    lines += [
        f"| all of `load_ruleset()` on a warm cache (fingerprint SQL and ORM) "
        f"| {profile['ruleset_cached'] * 1000:.1f} |",
        "| *not in a warm call:* | |",
        f"| ruleset compile on a cache miss (at most every 5 s; `load_ruleset(fresh=True)`) "
        f"| {profile['ruleset_fresh'] * 1000:.1f} |",
        f"| a new PostgreSQL connection (connect + `SELECT 1`) | {profile['connect'] * 1000:.1f} |",
        f"| a new connection's cold backend (fresh-connection call, less warm call and connect) "
        f"| {(profile['cold'] - profile['total'] - profile['connect']) * 1000:.1f} |",
        "",
        f"In the worker a `score_lead` task took {ms(worker_gap)} (median gap between "
        "consecutive tasks' `scored_at` in the burst). Of that, about "
        f"{warm * 1000:.0f} ms is the scoring itself on an open connection ("
        f"{python * 1000:.0f} ms of it Python outside SQL, in the engine and the ORM; "
        f"`load_ruleset`'s fingerprint check alone costs "
        f"{profile['ruleset_cached'] * 1000:.1f} ms on every call), "
        f"{(cold - warm) * 1000:.0f} ms the new "
        "PostgreSQL connection and its cold backend, "
        f"{floor_ms * 1000:.1f} ms the broker and prefork pool (a built-in no-op task), and "
        f"{rest * 1000:.0f} ms is not attributed (other per-task work in the worker, CPU "
        "shared with the machine's other tenants). The worker opened "
        f"{prod['sessions']:,} PostgreSQL sessions for {prod['tasks'] + 1:,} tasks "
        f"({per_task_sessions:.2f} per task): Celery's Django fix-up closes the connection "
        "before and after every task unless `CELERY_DB_REUSE_MAX` is set (`CONN_MAX_AGE` "
        "does not apply there); the no-op heartbeat, which only writes one row, ran at "
        f"{beat_rate(beat)}. Sampled lock waits during the {args.rate:g}/s load: "
        f"{lat['lock_waits']} in {lat['samples']} samples. At {args.rate:g} events/s, one "
        f"task per event, one worker has {1000 / args.rate:.0f} ms per task.",
        "",
        "Method: latency is each activity's `scored_at` (the worker's clock when it locks the "
        "lead and applies it) minus the wall-clock time `activities_record` returned in the "
        'benchmark process (commit, then the on-commit enqueue); "until written" uses the '
        "time the `scored_at` UPDATE ran (a trigger on the benchmark database), just before "
        "the scoring transaction commits. Unscored events count as slower than the deadline. "
        "The no-op baseline pairs the k-th `record_heartbeat` sent with the k-th write of the "
        "heartbeat row (one consumer, one FIFO queue). Bursts are inserted in one statement, "
        "then timed from the first enqueue to a no-op queued behind them on the same queue.",
    ]
    return "\n".join(line for line in lines if line is not None)


def beat_rate(beat: dict) -> str:
    """The no-op's pace: its service time if the queue backed up, else the send interval."""
    if beat["max_depth"] > 10:
        return (
            f"one no-op every {ms(beat['gap'])} (median gap between writes, queue backed "
            f"up to {beat['max_depth']:,})"
        )
    return (
        f"the sending pace (one every {ms(beat['gap'])}, the queue never above "
        f"{beat['max_depth']:,})"
    )


if __name__ == "__main__":
    main()

"""Real-time scoring against a lead's history: the cost of scoring one new activity on
leads with 10, 1,000 and 100,000 activities before it.

    python bench/history.py [--histories 10,1000,100000] [--runs 7] [--no-record]

The worker's drain scores a lead's new activities through the fast path
(``leads_score(..., incremental=True)``, ``scoring.incremental``), which reads only what
the new activities need; the full path (``incremental=False``, what a profile change or
a fallback runs) loads every activity and active ledger entry of the lead, so its cost
grows with the history. Each row is the median of ``--runs`` scorings of one new page view
by each path, the rows each read from the activity and ledger tables (PostgreSQL's
per-transaction counters, one more scoring of each, rolled back), and the bare SQL the
database needs to store that activity and its one ledger entry and to update one score
row (the least work for the same result), measured in the same run. Written to
docs/PERFORMANCE.md (section "history"). The database is ``hotlist_bench_history`` on the
local PostgreSQL unless ``BENCH_HISTORY_DATABASE_URL`` names another.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

URL = os.environ.get(
    "BENCH_HISTORY_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hotlist_bench_history"
)
PAGES = ["/", "/pricing", "/features", "/blog/fleet", "/careers", "/docs"]
KINDS = ["page_view"] * 6 + ["email_open", "email_click", "content_download", "webinar_attendance"]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--histories", default="10,1000,100000")
    parser.add_argument("--runs", type=int, default=7, help="New activities scored per lead.")
    parser.add_argument("--no-record", action="store_true", help="Print only.")
    return parser.parse_args()


def lead_with_history(n: int, now: datetime, rng: random.Random) -> int:
    """A lead with ``n`` activities over the last 180 days, scored once."""
    from leads.models import Activity, Lead
    from scoring.lead_scoring import lead_score

    lead = Lead.objects.create(email=f"history-{n}@example.com", job_title="Head of Fleet")
    rows = []
    for _ in range(n):
        kind = rng.choice(KINDS)
        at = now - timedelta(seconds=rng.uniform(60, 180 * 86400))
        url = f"https://acme.example{rng.choice(PAGES)}" if kind == "page_view" else ""
        rows.append(Activity(lead=lead, type=kind, url=url, occurred_at=at, received_at=at))
    Activity.objects.bulk_create(rows, batch_size=5000)
    lead_score(lead_id=lead.pk, now=now)
    return lead.pk


class Fallbacks(logging.Handler):
    """Counts the scorings the fast path left to the full path, with their reasons."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.reasons.append(record.getMessage())


def new_pricing_view(lead_id: int, at: datetime) -> None:
    from leads.models import Activity

    Activity.objects.create(
        lead_id=lead_id, type="page_view", url="https://acme.example/pricing", occurred_at=at
    )


def scoring_seconds(lead_id: int, runs: int, start: datetime, *, incremental: bool) -> list[float]:
    """Seconds to score one new pricing-page view, ``runs`` times, a day apart from
    ``start`` on, by the fast path or the full path."""
    from scoring.lead_scoring import leads_score

    times = []
    for run in range(runs):
        at = start + timedelta(days=run + 1)
        new_pricing_view(lead_id, at)
        begin = time.perf_counter()
        leads_score(lead_ids=[lead_id], now=at + timedelta(seconds=1), incremental=incremental)
        times.append(time.perf_counter() - begin)
    return times


READ_COUNTERS = """
    SELECT relname, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
    FROM pg_stat_xact_user_tables
    WHERE relname IN ('leads_activity', 'scoring_scoreentry')
"""


def rows_read(lead_id: int, at: datetime, *, incremental: bool) -> dict[str, int]:
    """Rows one more scoring reads from the activity and ledger tables (rolled back)."""
    from django.db import connection, transaction

    from scoring.lead_scoring import leads_score

    with transaction.atomic(), connection.cursor() as cursor:
        new_pricing_view(lead_id, at)
        cursor.execute(READ_COUNTERS)
        before = dict(cursor.fetchall())
        leads_score(lead_ids=[lead_id], now=at + timedelta(seconds=1), incremental=incremental)
        cursor.execute(READ_COUNTERS)
        after = dict(cursor.fetchall())
        transaction.set_rollback(True)
    return {name: after.get(name, 0) - before.get(name, 0) for name in after}


def history_size(lead_id: int) -> tuple[int, int]:
    """The lead's activities and active ledger entries."""
    from leads.models import Activity
    from scoring.models import ScoreEntry

    activities = Activity.objects.filter(lead_id=lead_id).count()
    entries = ScoreEntry.objects.filter(
        lead_id=lead_id, reversal_of__isnull=True, reversals__isnull=True
    ).count()
    return activities, entries


def bare_seconds(lead_id: int, runs: int) -> list[float]:
    """The least the database does for the same result: store the activity, append its
    ledger entry and update one score row (and the lead's), in one transaction."""
    from django.db import connection, transaction

    times = []
    for _ in range(runs):
        start = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO leads_activity (lead_id, type, url, duration_seconds, properties, "
                "occurred_at, received_at, source, idempotency_key, scored_at) "
                "VALUES (%s, 'page_view', 'https://acme.example/pricing', NULL, '{}', now(), "
                "now(), 'bench', '', now()) RETURNING id",
                [lead_id],
            )
            (activity_id,) = cursor.fetchone()
            cursor.execute(
                "INSERT INTO scoring_scoreentry (lead_id, model_id, rule_id, activity_id, kind, "
                "bonus, points, reason, at, created_at) "
                "SELECT %s, model_id, NULL, %s, 'engagement', false, 25, 'bench', now(), now() "
                "FROM scoring_leadscore WHERE lead_id = %s AND is_primary",
                [lead_id, activity_id, lead_id],
            )
            cursor.execute(
                "UPDATE scoring_leadscore SET engagement = engagement + 25, score = score + 25 "
                "WHERE lead_id = %s AND is_primary",
                [lead_id],
            )
            cursor.execute("UPDATE leads_lead SET score = score + 25 WHERE id = %s", [lead_id])
            transaction.set_rollback(True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    args = parse()
    harness.drop_database(URL)
    harness.setup_django(URL)
    from django.core.management import call_command

    from demo.scoring import seed_starter_model

    call_command("migrate", verbosity=0)
    seed_starter_model()
    rng = random.Random(7)
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    histories = [int(n) for n in args.histories.split(",")]
    leads = {n: lead_with_history(n, now, rng) for n in histories}
    load = harness.load_average()
    harness.vacuum_analyze()
    fallbacks = Fallbacks()
    logging.getLogger("scoring.incremental").addHandler(fallbacks)
    logging.getLogger("scoring.incremental").setLevel(logging.DEBUG)
    rows = []
    for n in histories:
        lead_id = leads[n]
        fast = scoring_seconds(lead_id, args.runs, now, incremental=True)
        full_start = now + timedelta(days=args.runs)
        full = scoring_seconds(lead_id, args.runs, full_start, incremental=False)
        later = full_start + timedelta(days=args.runs + 1)
        fast_read = rows_read(lead_id, later, incremental=True)
        full_read = rows_read(lead_id, later, incremental=False)
        activities, entries = history_size(lead_id)
        bare = statistics.median(bare_seconds(lead_id, args.runs)) * 1000
        fast_ms, full_ms = statistics.median(fast) * 1000, statistics.median(full) * 1000
        reads = (sum(fast_read.values()), sum(full_read.values()))
        print(
            f"{n:>7,} activities: fast path {fast_ms:8.1f} ms, full path {full_ms:8.1f} ms, "
            f"bare {bare:.2f} ms; rows read {reads[0]:,} and {reads[1]:,}"
        )
        worst = (max(fast) * 1000, max(full) * 1000)
        rows.append((n, activities, entries, fast_ms, worst[0], full_ms, worst[1], bare, *reads))
    if fallbacks.reasons:
        print("Fell back to the full path:", *fallbacks.reasons, sep="\n  ")
    lines = [
        f"Measured by `python bench/history.py --runs {args.runs}` on {harness.machine()}; "
        f"load before {load}, after {harness.load_average()}.",
        "",
        "| history (activities, active entries) | fast path (the drain), median (max) "
        "| full path, median (max) | bare SQL | fast / bare | rows read, fast and full |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for n, activities, entries, fast_ms, fast_max, full_ms, full_max, bare, f_read, u_read in rows:
        lines.append(
            f"| {n:,} ({activities:,}, {entries:,}) | {fast_ms:,.1f} ms ({fast_max:,.1f} ms) "
            f"| {full_ms:,.1f} ms ({full_max:,.1f} ms) | {bare:.2f} ms "
            f"| {fast_ms / bare:,.1f}x | {f_read:,} and {u_read:,} |"
        )
    lines += [
        "",
        "Each row scores one new pricing-page view on a lead with that history (the starter",
        f"model, with a 30-day half-life and per-day caps; {args.runs} scorings by each path,",
        "each a day after the one before), in this process, as the worker's drain scores a",
        "lead. The fast path reads the lead's latest scored activity, that day's page views,",
        "its score rows and the few ledger entries the caps need; the full path reads every",
        "activity and active entry of the lead. The bare SQL stores the activity, appends its",
        "one ledger entry and adds its points to the score row and the lead, in one",
        "transaction (rolled back). Rows read: from the activity and ledger tables, by one",
        "more scoring of each path (PostgreSQL's per-transaction counters).",
    ]
    if fallbacks.reasons:
        lines.append(f"The fast path fell back {len(fallbacks.reasons)} times.")
    body = "\n".join(lines)
    print(body)
    if not args.no_record:
        harness.record("history", "## Real-time scoring against a lead's history\n\n" + body)
    from django.db import connections

    connections.close_all()
    harness.drop_database(URL)


if __name__ == "__main__":
    main()

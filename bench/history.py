"""Real-time scoring against a lead's history: the cost of scoring one new activity on
leads with 10, 1,000 and 100,000 activities before it.

    python bench/history.py [--histories 10,1000,100000] [--runs 7] [--no-record]

A real-time scoring of a lead (``scoring.lead_scoring.lead_score``, what the worker's
drain runs for each lead with waiting activities) loads the lead's activities and active
ledger entries to decide the awards, so its cost grows with the lead's history. Each row
is the median of ``--runs`` scorings of one new page view, beside the bare SQL the
database needs to store that activity and its one ledger entry and to update one score
row (the least work for the same result), measured in the same run. Written to
docs/PERFORMANCE.md (section "history"). The database is ``hotlist_bench_history`` on the
local PostgreSQL unless ``BENCH_HISTORY_DATABASE_URL`` names another.
"""

from __future__ import annotations

import argparse
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


def scoring_seconds(lead_id: int, runs: int, now: datetime) -> tuple[list[float], int, int]:
    """Seconds to score one new pricing-page view, ``runs`` times; the activities and
    active entries the last scoring read."""
    from leads.models import Activity
    from scoring.lead_scoring import lead_score
    from scoring.models import ScoreEntry

    times = []
    for run in range(runs):
        at = now + timedelta(days=run + 1)
        Activity.objects.create(
            lead_id=lead_id, type="page_view", url="https://acme.example/pricing", occurred_at=at
        )
        start = time.perf_counter()
        lead_score(lead_id=lead_id, now=at + timedelta(seconds=1))
        times.append(time.perf_counter() - start)
    activities = Activity.objects.filter(lead_id=lead_id).count()
    entries = ScoreEntry.objects.filter(
        lead_id=lead_id, reversal_of__isnull=True, reversal__isnull=True
    ).count()
    return times, activities, entries


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
    rows = []
    for n in histories:
        product, activities, entries = scoring_seconds(leads[n], args.runs, now)
        bare = bare_seconds(leads[n], args.runs)
        product_ms = statistics.median(product) * 1000
        bare_ms = statistics.median(bare) * 1000
        print(f"{n:>7,} activities: {product_ms:8.1f} ms, bare {bare_ms:.2f} ms")
        rows.append((n, activities, entries, product_ms, max(product) * 1000, bare_ms))
    lines = [
        f"Measured by `python bench/history.py --runs {args.runs}` on {harness.machine()}; "
        f"load before {load}, after {harness.load_average()}.",
        "",
        "| history | activities and active entries read | Hotlist, median (max) | bare SQL "
        "| ratio |",
        "| --- | --- | --- | --- | --- |",
    ]
    for n, activities, entries, product_ms, worst, bare_ms in rows:
        lines.append(
            f"| {n:,} activities | {activities:,} and {entries:,} | {product_ms:,.1f} ms "
            f"({worst:,.1f} ms) | {bare_ms:.2f} ms | {product_ms / bare_ms:,.0f}x |"
        )
    lines += [
        "",
        "Each row scores one new pricing-page view on a lead with that history (the starter",
        f"model; {args.runs} scorings, one a day later than the other), in this process, as",
        "the worker's drain scores a lead. The bare SQL stores the activity, appends its one",
        "ledger entry and adds its points to the score row and the lead, in one transaction",
        "(rolled back). The product reads every activity and active entry of the lead to",
        "decide the awards (caps per day and per lead, bonus, recency), so its cost grows",
        "with the history: scoring in O(new events) is still to be built.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_record:
        harness.record("history", "## Real-time scoring against a lead's history\n\n" + body)
    from django.db import connections

    connections.close_all()
    harness.drop_database(URL)


if __name__ == "__main__":
    main()

"""A hot lead's page reads its whole ledger: what that costs with the ledger's (lead,
model, at) index holding the columns read, and what the wider index costs the writes.

    python bench/lead_ledger.py [--leads 3000] [--hot 10] [--runs 3] [--record]

Builds a world in its own database (``BENCH_DATABASE_URL``, default
``hotlist_bench_ledger``): leads with page views over a year, a few hot leads with
thousands, scored, then one rule's points changed (a reversal and an award per match).
The ledger is then ordered by time (``CLUSTER``), as a ledger written over months is:
a lead's entries lie on as many heap pages as it has entries.

Then, with the index as it was (key columns, and kind and points) and as it is
(``entry_lead_ledger_idx``: also id, rule, written time and reversed entry):

- the explanation with the score history of the hottest leads, as the lead page asks
  for it: the pages its ledger reads touch (``EXPLAIN (ANALYZE, BUFFERS)``) and its
  median time; beside it the bare read of the same entries' columns;
- a change of one rule's points, rescored (``model_rescore_in_process``), alternating
  the two indexes ``--runs`` times: what the wider index costs a write of the ledger.

``--record`` writes the table to docs/PERFORMANCE.md (section "lead-ledger").
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/hotlist_bench_ledger"
INDEX = "entry_lead_ledger_idx"
COLUMNS = {
    "before": '("lead_id", "model_id", "at") INCLUDE ("kind", "points")',
    "after": '("lead_id", "model_id", "at") '
    'INCLUDE ("id", "rule_id", "kind", "points", "created_at", "reversal_of_id")',
}
URLS = ["https://example.com/pricing", "https://example.com/blog/a", "https://example.com/docs/b"]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=3_000)
    parser.add_argument("--hot", type=int, default=10, help="Leads with thousands of visits.")
    parser.add_argument("--runs", type=int, default=3, help="Rule changes timed per index.")
    parser.add_argument("--record", action="store_true", help="Write docs/PERFORMANCE.md.")
    return parser.parse_args()


def log(text: str) -> None:
    print(text, flush=True)


def build(args: argparse.Namespace) -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from leads.models import Activity, ActivityType, Lead
    from scoring.models import Rule, ScoringModel
    from scoring.rescore_jobs import model_rescore_in_process

    call_command("migrate", verbosity=0)
    model = ScoringModel.objects.create(
        name="Bench", status="active", is_default=True, decay_half_life_days=30
    )
    for name, path, points in (
        ("Pricing", "/pricing", 5),
        ("Blog", "/blog", 2),
        ("Docs", "/docs", 3),
    ):
        Rule.objects.create(
            model=model,
            name=name,
            kind="engagement",
            activity_type=ActivityType.PAGE_VIEW,
            target="url",
            pattern=path,
            points=points,
        )
    Lead.objects.bulk_create(
        Lead(email=f"lead{i}@example.com", first_name="Lead", last_name=str(i))
        for i in range(args.leads)
    )
    rnd = random.Random(7)
    now = timezone.now()
    activities = [
        Activity(
            lead_id=lead_id,
            type=ActivityType.PAGE_VIEW,
            url=rnd.choice(URLS),
            occurred_at=now - timedelta(seconds=rnd.random() * 365 * 86400),
        )
        for n, lead_id in enumerate(Lead.objects.order_by("pk").values_list("pk", flat=True))
        for _ in range(4_000 if n < args.hot else 150)
    ]
    rnd.shuffle(activities)
    Activity.objects.bulk_create(activities, batch_size=10_000)
    log(f"  {len(activities):,} activities; scoring …")
    model_rescore_in_process(model=model, reason="first scoring")
    rule = Rule.objects.get(model=model, name="Pricing")
    rule.points = 6
    rule.save()
    model_rescore_in_process(model=model, reason="points changed")
    with connection.cursor() as cursor:
        cursor.execute("CREATE INDEX bench_entry_at ON scoring_scoreentry (at)")
        cursor.execute("CLUSTER scoring_scoreentry USING bench_entry_at")
        cursor.execute("DROP INDEX bench_entry_at")


def use(which: str) -> int:
    """Put the index as it was or is; its size in bytes."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS entry_lead_model_at_pts_idx")
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX}")
        cursor.execute(f"CREATE INDEX {INDEX} ON scoring_scoreentry {COLUMNS[which]}")
    harness.vacuum_analyze()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_size(%s)", [INDEX])
        return cursor.fetchone()[0]


def page_reads(hot: list[int]) -> dict[str, float]:
    """The hottest leads' explanation with history: pages touched by its ledger reads
    (first lead), median time (all of them), and the bare read of the same entries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from leads.models import Lead
    from scoring.explanation import lead_explanation

    leads = list(Lead.objects.filter(pk__in=hot))
    connection.queries_log.clear()  # a full log would leave the capture empty
    with CaptureQueriesContext(connection) as queries:
        lead_explanation(lead=leads[0], history=True)
    pages = 0
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            if '"scoring_scoreentry"' in query["sql"]:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query["sql"])
                plan = cursor.fetchone()[0][0]["Plan"]
                pages += plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
    times = []
    for lead in leads * 3:
        start = time.perf_counter()
        lead_explanation(lead=lead, history=True)
        times.append(time.perf_counter() - start)
    bare = []
    with connection.cursor() as cursor:
        for lead in leads * 3:
            start = time.perf_counter()
            cursor.execute(
                "SELECT id, rule_id, kind, points, at, created_at, reversal_of_id "
                "FROM scoring_scoreentry WHERE lead_id = %s ORDER BY at, id",
                [lead.pk],
            )
            cursor.fetchall()
            bare.append(time.perf_counter() - start)
    return {
        "pages": pages,
        "ms": statistics.median(times) * 1000,
        "bare_ms": statistics.median(bare) * 1000,
    }


def rule_change(which: str) -> tuple[float, int]:
    """One rule's points changed and rescored with the index ``which``: seconds, entries."""
    from scoring.models import Rule, ScoreEntry
    from scoring.rescore_jobs import model_rescore_in_process

    use(which)
    rule = Rule.objects.get(name="Pricing")
    rule.points = 7 if rule.points != 7 else 6
    rule.save()
    before = ScoreEntry.objects.count()
    start = time.perf_counter()
    model_rescore_in_process(model=rule.model, reason="points changed")
    return time.perf_counter() - start, ScoreEntry.objects.count() - before


def main() -> None:
    args = parse()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    os.environ.setdefault("HOTLIST_VAR_DIR", str(harness.ROOT / "var" / "bench-ledger"))
    os.environ.setdefault("DEBUG", "false")
    harness.drop_database(url)
    harness.setup_django(url)
    from scoring.models import LeadScore, ScoreEntry

    loads = [harness.load_average()]
    log("Building …")
    build(args)
    settings = harness.server_settings()
    hot = list(
        LeadScore.objects.order_by("-engagement").values_list("lead_id", flat=True)[: args.hot]
    )
    entries = ScoreEntry.objects.filter(lead_id=hot[0]).count()
    total = ScoreEntry.objects.count()
    reads, sizes = {}, {}
    for which in ("before", "after"):
        sizes[which] = use(which)
        reads[which] = page_reads(hot)
        log(f"{which}: {reads[which]}, index {sizes[which] / 2**20:.0f} MiB")
    changes: dict[str, list[float]] = {"before": [], "after": []}
    written = 0
    for _ in range(args.runs):
        for which in ("before", "after"):
            took, written = rule_change(which)
            changes[which].append(took)
            log(f"rule change, index {which}: {took:.2f} s, {written:,} entries")
    loads.append(harness.load_average())
    table = render(args, entries, total, reads, sizes, changes, written, loads, settings)
    print(table)
    if args.record:
        harness.record("lead-ledger", table)
        log(f"Recorded in {harness.PERFORMANCE}")


def render(args, entries, total, reads, sizes, changes, written, loads, settings) -> str:
    before, after = (statistics.median(changes[w]) for w in ("before", "after"))
    lines = [
        f"Measured on {harness.machine()}, load {loads[0]} → {loads[-1]}; "
        f"`{harness.command()}`: {args.leads:,} leads, "
        f"{args.hot} of them with 4,000 page views, {total:,} ledger entries in time "
        "order; the hottest lead holds "
        f"{entries:,}. Server: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + ".",
        "",
        "| the lead's index on the ledger | pages its ledger reads touch | explanation with "
        "history, median | bare read of the same entries | index size |",
        "| --- | --- | --- | --- | --- |",
    ]
    for which, label in (("before", "kind, points"), ("after", "also id, rule, written, reversed")):
        r = reads[which]
        lines.append(
            f"| {label} | {r['pages']:,} | {r['ms']:.1f} ms | {r['bare_ms']:.1f} ms | "
            f"{sizes[which] / 2**20:.0f} MiB |"
        )
    lines += [
        "",
        f"One rule's points changed ({written:,} entries written: a reversal and an award per "
        f"match), median of {args.runs} alternating runs: {harness.seconds(before)} with the "
        f"index as it was, {harness.seconds(after)} as it is ({after / before:.2f}x).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Rule effectiveness at scale: how soon after a rescore its figures are current, and what
keeping the rules' matches costs the rescore.

    python bench/rule_effectiveness.py [--runs 3] [--ranges 4] [--record]

Reads the world bench/pages.py builds (``BENCH_DATABASE_URL``, default
``hotlist_bench_pages``; point it at a copy to keep that world as it is: the rescore
phase writes and rolls back). Phases, each after a ``VACUUM (ANALYZE)``:

1. ``migrate``: on a world built before the rule matches existed, the one-time fill of
   ``scoring_rulematch`` from the whole ledger (timed; nothing to do otherwise).
2. The count Rule effectiveness reads after every rescore (``rule_matches_refresh``,
   queued within a minute of the job's end): median of ``--runs``. Beside it, bare SQL:
   the same grouped SELECT written with ``CREATE TABLE … AS`` into a table with no
   index; and the naive baseline, the rebuild before the matches were
   kept: the distinct never-reversed awards reduced from the whole ledger, then counted
   (one run, rolled back).
3. What the triggers that keep the matches cost a rescore: ``--ranges`` lead-id ranges
   of a rescore (5,000 leads each, as a job's) rescored with the triggers on and off,
   each in a transaction rolled back: after one engagement rule's points changed (every
   award of the rule reversed and written again), and (``--first``) with the range's
   ledger emptied first (a first rescore).

``--record`` writes the tables to docs/PERFORMANCE.md (section "rule-effectiveness").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/hotlist_bench_pages"
TARGET_SECONDS = 60.0
RANGE = 5_000
TRIGGERS = "scoring_scoreentry"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="Timed runs of each count.")
    parser.add_argument("--ranges", type=int, default=4, help="Rescore ranges timed.")
    parser.add_argument("--record", action="store_true", help="Write docs/PERFORMANCE.md.")
    parser.add_argument(
        "--no-naive", action="store_true", help="Skip the naive rebuild (minutes at scale)."
    )
    parser.add_argument("--first", action="store_true", help="Also time ranges of a first rescore.")
    return parser.parse_args()


def log(text: str) -> None:
    print(text, flush=True)


def migrate() -> float | None:
    """Bring the schema up to date; the seconds it took when it filled the rule matches
    (None when an earlier run did)."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    def filled() -> bool:
        return (
            MigrationRecorder(connection)
            .migration_qs.filter(app="scoring", name="0028_rule_match")
            .exists()
        )

    before = filled()
    start = time.perf_counter()
    call_command("migrate", verbosity=0)
    took = time.perf_counter() - start
    return None if before else took


def facts() -> dict[str, int]:
    from django.db import connection

    found = {}
    with connection.cursor() as cursor:
        for name, sql in {
            "leads": "SELECT count(*) FROM leads_lead",
            "entries": "SELECT count(*) FROM scoring_scoreentry",
            "matches": "SELECT count(*) FROM scoring_rulematch",
            "rules": "SELECT count(*) FROM scoring_rule",
        }.items():
            cursor.execute(sql)
            found[name] = cursor.fetchone()[0]
    return found


def refresh_once() -> float:
    from reports.rollups import rule_matches_refresh

    return rule_matches_refresh().seconds


def bare_once() -> float:
    """The count's SELECT into a table with no index (``CREATE TABLE … AS`` may run it in
    parallel workers, as the product's plain SELECT may); dropped after. With the
    count's own memory for its joins and grouping, and the planner's own choice of
    workers (forcing them costs this SELECT more than it saves)."""
    from django.db import connection

    from reports.rollups import REFRESH_WORK_MEM, _counts_sql

    sql, params = _counts_sql()
    select = sql[sql.index("SELECT") :]
    with connection.cursor() as cursor:
        cursor.execute("SET work_mem = %s", [REFRESH_WORK_MEM])
        cursor.execute("DROP TABLE IF EXISTS bench_rule_match_counts")
        start = time.perf_counter()
        cursor.execute(f"CREATE TABLE bench_rule_match_counts AS {select}", params)
        took = time.perf_counter() - start
        cursor.execute("DROP TABLE bench_rule_match_counts")
        cursor.execute("RESET work_mem")
    return took


def bare_plan() -> str:
    from django.db import connection

    from reports.rollups import REFRESH_WORK_MEM, _counts_sql

    sql, params = _counts_sql()
    with connection.cursor() as cursor:
        cursor.execute("SET work_mem = %s", [REFRESH_WORK_MEM])
        cursor.execute(f"EXPLAIN {sql[sql.index('SELECT') :]}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET work_mem")
    return plan


# The rebuild before the matches were kept: the distinct awards never reversed, reduced
# from the whole ledger, then counted as today.
NAIVE_MATCHES = """
CREATE TEMPORARY TABLE bench_old_matches AS
SELECT DISTINCT e.model_id, e.rule_id, e.lead_id FROM scoring_scoreentry e
WHERE e.rule_id IS NOT NULL AND e.reversal_of_id IS NULL
  AND NOT EXISTS (SELECT 1 FROM scoring_scoreentry r WHERE r.reversal_of_id = e.id)
"""


def naive_once() -> float:
    from django.db import connection, transaction

    from reports.rollups import REFRESH_WORK_MEM, _counts_sql

    sql, params = _counts_sql()
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = %s", [REFRESH_WORK_MEM])
        cursor.execute(NAIVE_MATCHES)
        counted = sql.replace('"scoring_rulematch"', "bench_old_matches")
        cursor.execute(
            "CREATE TEMPORARY TABLE bench_old_counts AS " + counted[counted.index("SELECT") :],
            params,
        )
        took = time.perf_counter() - start
        transaction.set_rollback(True)
    return took


def ranges_timed(count: int, *, first: bool) -> dict[str, list[float]]:
    """Rescore ``count`` ranges of the default model in transactions rolled back, each
    four times: after the busiest engagement rule's points changed ("rule") and with the
    range's ledger emptied first ("first"), with the ledger's triggers on and off (which
    goes first alternates from range to range)."""
    from django.db.models import Count, Max, Min

    from leads.models import Lead
    from scoring.models import ScoreEntry, ScoringModel

    model = ScoringModel.objects.get(is_default=True, status="active")
    busiest = (
        ScoreEntry.objects.filter(model=model, kind="engagement", lead_id__lt=50_000)
        .values("rule_id")
        .annotate(n=Count("*"))
        .order_by("-n")
        .first()
    )
    bounds = Lead.objects.aggregate(lo=Min("pk"), hi=Max("pk"))
    step = max((bounds["hi"] - bounds["lo"]) // count, RANGE)
    times: dict[str, list[float]] = {}
    for n in range(count):
        lo = bounds["lo"] + n * step
        for key in ("rule", "first") if first else ("rule",):
            for triggers in (True, False) if n % 2 == 0 else (False, True):
                took = range_timed(
                    model,
                    lo,
                    lo + RANGE - 1,
                    first=key == "first",
                    rule_id=busiest["rule_id"],
                    triggers=triggers,
                )
                times.setdefault(f"{key}_{'on' if triggers else 'off'}", []).append(took)
    return times


def range_timed(model, lo: int, hi: int, *, first: bool, rule_id: int, triggers: bool) -> float:
    from django.db import connection, transaction
    from django.utils import timezone

    from scoring.bulk import rescore_range
    from scoring.models import Rule
    from scoring.ruleset import load_ruleset

    with transaction.atomic():
        with connection.cursor() as cursor:
            if not triggers:
                cursor.execute(f"ALTER TABLE {TRIGGERS} DISABLE TRIGGER USER")
            if first:
                cursor.execute(
                    "DELETE FROM scoring_scoreentry WHERE model_id = %s "
                    "AND lead_id BETWEEN %s AND %s",
                    [model.pk, lo, hi],
                )
            else:
                Rule.objects.filter(pk=rule_id).update(points=99)
        compiled = next(m for m in load_ruleset(fresh=True).models if m.id == model.pk)
        start = time.perf_counter()
        rescore_range(model=compiled, segment_ids=[], lo=lo, hi=hi, now=timezone.now())
        with connection.cursor() as cursor:
            # The checks deferred to the commit, made now: the commit a job makes.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        took = time.perf_counter() - start
        transaction.set_rollback(True)
    return took


def render(world, migrated, loads, settings, refresh, bare, naive, ranges, plan) -> str:
    lines = [
        f"## Rule effectiveness at {world['leads']:,} leads",
        "",
        f"Measured by `python bench/rule_effectiveness.py --record` on {harness.machine()}.",
        f"Load average (1, 5, 15 min) {loads[0]} before, {loads[1]} after (shared machine).",
        f"Data: the world of bench/pages.py: {world['leads']:,} leads, "
        f"{world['entries']:,} ledger entries, {world['matches']:,} rule matches "
        f"(scoring_rulematch), {world['rules']:,} rules.",
        "PostgreSQL settings (the server's): "
        + ", ".join(f"{k} {v}" for k, v in settings.items())
        + ".",
        "",
        (
            f"The migration that fills the rule matches from the ledger (`scoring.0028`, once "
            f"per installation) took {harness.seconds(migrated)} on this world."
            if migrated is not None
            else "The rule matches were filled by an earlier run of the migration."
        ),
        "",
        f"Target: Rule effectiveness current within {TARGET_SECONDS:.0f} s of a rescore. The "
        "rules each lead matches are current at the rescore's commit (kept by the ledger's "
        "triggers); the page's counts per owner and day are counted again on the bulk queue "
        "once the job ends:",
        "",
        "| what | median | runs | ratio to bare |",
        "| --- | --- | --- | --- |",
        f"| Count of the matches per rule, owner and day (`rule_matches_refresh`) | "
        f"{harness.seconds(statistics.median(refresh))} | "
        f"{', '.join(harness.seconds(t) for t in refresh)} | "
        f"{statistics.median(refresh) / statistics.median(bare):.2f}x |",
        f"| Bare: the same SELECT, `CREATE TABLE … AS` into a table with no index | "
        f"{harness.seconds(statistics.median(bare))} | "
        f"{', '.join(harness.seconds(t) for t in bare)} | 1 |",
        (
            f"| Naive: the rebuild before, from the whole ledger (one run) | "
            f"{harness.seconds(naive)} | {harness.seconds(naive)} | "
            f"{naive / statistics.median(bare):.2f}x |"
            if naive is not None
            else "| Naive: the rebuild before, from the whole ledger | not run | — | — |"
        ),
        "",
        f"What keeping the matches costs a rescore: {len(ranges['rule_on'])} ranges of "
        f"{RANGE:,} leads rescored in transactions rolled back, with the ledger's triggers "
        "on and off:",
        "",
        "| range's work | triggers on, median | off, median | share of the range |",
        "| --- | --- | --- | --- |",
    ]
    for label, key in (
        ("one engagement rule's points changed", "rule"),
        ("first rescore (the range's ledger emptied)", "first"),
    ):
        if f"{key}_on" not in ranges:
            continue
        on, off = statistics.median(ranges[f"{key}_on"]), statistics.median(ranges[f"{key}_off"])
        lines.append(
            f"| {label} | {harness.seconds(on)} | {harness.seconds(off)} | "
            f"{(on - off) / on * 100:+.0f} % |"
        )
    lines += ["", "The bare count's plan:", "", "```", plan, "```"]
    return "\n".join(lines)


def main() -> None:
    args = parse()
    os.environ.setdefault("HOTLIST_VAR_DIR", str(harness.ROOT / "var" / "bench-effectiveness"))
    harness.setup_django(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    loads = [harness.load_average()]
    migrated = migrate()
    log(f"migrate: {migrated} s")
    settings = harness.server_settings()
    log(f"VACUUM (ANALYZE): {harness.vacuum_analyze():.1f} s")
    world = facts()
    log(f"{world}")
    refresh = [refresh_once() for _ in range(args.runs)]
    log(f"refresh: {refresh}")
    bare = [bare_once() for _ in range(args.runs)]
    log(f"bare: {bare}")
    naive = None if args.no_naive else naive_once()
    log(f"naive: {naive} s")
    harness.vacuum_analyze()
    ranges = ranges_timed(args.ranges, first=args.first)
    log(f"ranges: {ranges}")
    loads.append(harness.load_average())
    table = render(world, migrated, loads, settings, refresh, bare, naive, ranges, bare_plan())
    print(table)
    if args.record:
        harness.record("rule-effectiveness", table)
        log(f"Recorded in {harness.PERFORMANCE}")


if __name__ == "__main__":
    main()

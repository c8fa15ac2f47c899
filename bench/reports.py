"""The report pages at scale: server time of each beside the bare SQL of its main query.

    python bench/reports.py [--runs 5] [--record]

Reads the world bench/pages.py builds (``BENCH_DATABASE_URL``, default
``hotlist_bench_pages``: 1,000,000 leads with activities, ledger, stages, hand-offs and
deals). It first brings the schema up to date and rebuilds the reports' nightly rollup
(``reports_refresh``, timed, with its check of the leads' report facts), then writes
nothing more: the measuring session runs with ``default_transaction_read_only``. Each
report is rendered by its view, called with a ``RequestFactory`` request (no session
row to write), ``DEBUG=false``, templates included, as the admin (every lead) and as a
manager (a team's leads), over the default range (the last 180 days). The slowest
statement of one request is then run again on a plain psycopg2 connection: the bare SQL
of the page's main query. ``--record`` writes the table to docs/PERFORMANCE.md (section
"reports").
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/hotlist_bench_pages"
ENVIRONMENT = {
    "DEBUG": "false",
    "SECRET_KEY": "bench-reports-" + secrets.token_hex(24),
    "LOG_LEVEL": "WARNING",
}
PAGES = [
    ("Overview (key figures)", "/reports/"),
    ("Funnel", "/reports/funnel/"),
    ("Score vs outcome", "/reports/score/"),
    ("Sources, by source", "/reports/sources/"),
    ("Sources, by campaign", "/reports/sources/?by=campaign"),
    ("Speed to lead and reps", "/reports/speed/"),
    ("Rule effectiveness", "/reports/rules/"),
    ("Nurture", "/reports/nurture/"),
    ("Funnel CSV", "/reports/funnel/?format=csv"),
]
TARGET = 1.0


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Timed requests of each page.")
    parser.add_argument("--only", default="", help="Only the pages whose name contains this.")
    parser.add_argument("--record", action="store_true", help="Write docs/PERFORMANCE.md.")
    parser.add_argument(
        "--skip-refresh", action="store_true", help="Keep the rollup built by an earlier run."
    )
    return parser.parse_args()


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def request_page(user, path: str):
    from django.test import RequestFactory
    from django.urls import resolve

    request = RequestFactory().get(path)
    request.user = user
    match = resolve(request.path)
    response = match.func(request, *match.args, **match.kwargs)
    assert response.status_code == 200, (path, response.status_code)
    return response


def bare(url: str, sql: str, runs: int) -> float:
    import psycopg2

    connection = psycopg2.connect(url)
    connection.set_session(readonly=True)
    try:
        with connection.cursor() as cursor:
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                cursor.execute(sql)
                cursor.fetchall()
                times.append(time.perf_counter() - start)
                connection.rollback()
        return statistics.median(times)
    finally:
        connection.close()


def measure(url: str, user, path: str, runs: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    request_page(user, path)  # warm up caches and the plan cache
    with CaptureQueriesContext(connection) as captured:
        request_page(user, path)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        request_page(user, path)
        times.append(time.perf_counter() - start)
    reads = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].lstrip().startswith(("SELECT", "WITH"))
    ]
    timed = sorted(((bare(url, sql, 1), sql) for sql in reads), reverse=True)
    main_sql = timed[0][1] if timed else ""
    return {
        "queries": len(captured.captured_queries),
        "p50": statistics.median(times),
        "max": max(times),
        "bare": bare(url, main_sql, runs) if main_sql else 0.0,
        "sql": main_sql,
    }


def rebuild_rollup():
    """The nightly rollup, rebuilt as beat would: the schema brought up to date first
    (the reports' tables and indexes, the leads vacuumed), then ``reports_refresh``
    timed, vacuum and the check of the leads' report facts included."""
    from django.core.management import call_command
    from django.db import connection

    from reports.rollups import rule_matches_refresh, stale_lead_facts

    call_command("migrate", verbosity=0)
    # As autovacuum would after a migration that wrote leads (this server runs without
    # it): the report passes are index-only scans, which need the visibility map.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE leads_lead")
    start = time.perf_counter()
    rollup = rule_matches_refresh()
    took = time.perf_counter() - start
    log(f"Rule matches rebuilt: {rollup.rows:,} rows in {took:.1f} s")
    start = time.perf_counter()
    stale = len(stale_lead_facts())
    checked = time.perf_counter() - start
    log(f"Lead facts checked: {stale:,} stale in {checked:.1f} s")
    return {"rows": rollup.rows, "seconds": took, "stale": stale, "check_seconds": checked}


def facts() -> dict[str, int]:
    from django.db import connection

    found = {}
    with connection.cursor() as cursor:
        for name, sql in {
            "leads": "SELECT count(*) FROM leads_lead",
            "in_range": "SELECT count(*) FROM leads_lead "
            "WHERE created_at >= now() - interval '180 days'",
            "activities": "SELECT count(*) FROM leads_activity",
            "entries": "SELECT count(*) FROM scoring_scoreentry",
            "changes": "SELECT count(*) FROM leads_stagechange",
            "handoffs": "SELECT count(*) FROM leads_handoff",
            "deals": "SELECT count(*) FROM leads_deal",
        }.items():
            cursor.execute(sql)
            found[name] = cursor.fetchone()[0]
    return found


def render(
    rows: list[tuple[str, str, dict]], world: dict, args, took: float, loads, refresh
) -> str:
    lines = [
        f"## Reports at {world['leads']:,} leads",
        "",
        f"Measured by `python bench/reports.py --record` on {harness.machine()}.",
        f"Load average {loads[0]} before, {loads[1]} after (shared machine); "
        f"the measurement took {took / 60:.0f} min.",
        f"Data: the world of bench/pages.py, read only: {world['leads']:,} leads "
        f"({world['in_range']:,} created in the default 180-day range), "
        f"{world['activities']:,} activities, {world['entries']:,} ledger entries, "
        f"{world['changes']:,} stage changes, {world['handoffs']:,} hand-offs, "
        f"{world['deals']:,} deals.",
        (
            f"The nightly rollup of rule matches (`reports_refresh`) was rebuilt first: "
            f"{refresh['rows']:,} rows in {harness.seconds(refresh['seconds'])}; its check "
            "that every lead's furthest funnel step and deal outcome match its history and "
            f"deals took {harness.seconds(refresh['check_seconds'])} "
            f"({refresh['stale']:,} leads differed)."
            if refresh
            else "The rollup of rule matches was kept from an earlier run."
        ),
        "",
        "Server time: the report's view called in the benchmark process with a "
        f"`RequestFactory` request (`DEBUG=false`, templates rendered, no middleware), "
        f"median and slowest of {args.runs} requests after one to warm up. Bare SQL: the "
        "slowest statement of one request, run again on a plain psycopg2 connection "
        f"(median of {args.runs}, rows fetched). Target: under {TARGET:.0f} s.",
        "",
        "| report | as | queries | server p50 | server max | main query, bare SQL p50 "
        "| under 1 s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, persona, r in rows:
        ok = "yes" if r["p50"] < TARGET else "**no**"
        lines.append(
            f"| {name} | {persona} | {r['queries']} | {harness.seconds(r['p50'])} | "
            f"{harness.seconds(r['max'])} | {harness.seconds(r['bare'])} | {ok} |"
        )
    return "\n".join(lines)


def main() -> None:
    args = parse()
    os.environ.update(ENVIRONMENT)
    os.environ.setdefault("HOTLIST_VAR_DIR", str(harness.ROOT / "var" / "bench-reports"))
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    harness.setup_django(url)
    from django.core.management import call_command
    from django.db import connection

    # DEBUG=false serves hashed static names: collected under this run's own var/ folder.
    call_command("collectstatic", interactive=False, verbosity=0)

    from crm.models import Role, User

    refresh = None if args.skip_refresh else rebuild_rollup()
    with connection.cursor() as cursor:
        cursor.execute("SET default_transaction_read_only = on")
    loads = [os.getloadavg()[0]]
    started = time.perf_counter()
    personas = [
        ("admin", User.objects.filter(is_superuser=True).order_by("pk").first()),
        ("manager", User.objects.filter(groups__name=Role.MANAGER.label).order_by("pk").first()),
    ]
    rows = []
    for name, path in PAGES:
        if args.only and args.only.lower() not in name.lower():
            continue
        for persona, user in personas:
            result = measure(url, user, path, args.runs)
            log(f"{name} as {persona}: {result['p50']:.3f} s (bare {result['bare']:.3f} s)")
            rows.append((name, persona, result))
    loads.append(os.getloadavg()[0])
    table = render(
        rows, facts(), args, time.perf_counter() - started, [f"{v:.1f}" for v in loads], refresh
    )
    print(table)
    if args.record:
        harness.record("reports", table)
        log(f"Recorded in {harness.PERFORMANCE}")


if __name__ == "__main__":
    main()

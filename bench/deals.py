"""The deal board at scale: its server time beside the bare SQL of its main query.

    python bench/deals.py [--leads 1000000] [--reuse] [--record]

Builds a world in its own database (``BENCH_DATABASE_URL``, default
``hotlist_bench_deals``): leads (bench/generate.py, one activity each: the board reads
none), owned by the reps of two teams or left in the unassigned pool as in the pages'
world, and deals on a share of them, set-based: open ones spread over the default
pipeline's stages (some idle past their stage's limit), won and lost ones, in three
currencies and three product lines. Then ``/deals/`` is requested through Django's test
``Client`` in this process, ``DEBUG=false``, the real middleware and templates, as a rep,
a manager and an admin, with and without filters; the time from request to response is
the server time. Beside it the page's main query (the grouped aggregate of the open
deals) is captured and run again on a plain psycopg2 connection, and so is every read of
one request. ``--record`` writes the table to docs/PERFORMANCE.md (section "deals").
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from pages import Result, Scenario, clients, measure, ms, p50, p95

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/hotlist_bench_deals"
ENVIRONMENT = {
    "DEBUG": "false",
    "SECRET_KEY": "bench-deals-" + secrets.token_hex(24),
    "LOG_LEVEL": "WARNING",
}
TARGET_MS = 50


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument(
        "--open-per-rep", type=int, default=150, help="Open deals on each rep's leads."
    )
    parser.add_argument(
        "--closed-share", type=float, default=0.07, help="Share of owned leads with a closed deal."
    )
    parser.add_argument("--reuse", action="store_true", help="Keep the world built before.")
    parser.add_argument("--record", action="store_true", help="Write docs/PERFORMANCE.md.")
    parser.add_argument("--runs", type=int, default=200, help="Timed requests of each row.")
    parser.add_argument("--warmup", type=int, default=20, help="Untimed requests first.")
    parser.add_argument("--captures", type=int, default=20, help="Requests replayed bare.")
    parser.add_argument("--only", default="", help="Only the rows whose name contains this.")
    parser.add_argument("--build-only", action="store_true", help="Build the world and stop.")
    args = parser.parse_args()
    args.naive_runs = 0
    return args


def log(text: str) -> None:
    print(text, flush=True)


def setup(args: argparse.Namespace) -> str:
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    os.environ.update(ENVIRONMENT)
    os.environ.setdefault("HOTLIST_VAR_DIR", str(harness.ROOT / "var" / "bench-deals"))
    if not args.reuse:
        harness.drop_database(url)
    harness.setup_django(url)
    return url


# --- The world ---------------------------------------------------------------------------------


def build(args: argparse.Namespace):
    """Leads, owners and deals, set-based; kept by ``--reuse``."""
    import generate
    from django.core.management import call_command
    from django.db import connection, transaction

    from leads.deals import deal_pipeline_ensure
    from leads.models import Deal, Lead, ProductLine

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    cast = generate.people()
    if Deal.objects.exists():
        log(f"Reusing {Lead.objects.count():,} leads and {Deal.objects.count():,} deals.")
        return cast
    if Lead.objects.exists():
        raise SystemExit("The benchmark database holds an unfinished world: run without --reuse.")
    stages = [stage.pk for stage in deal_pipeline_ensure()]
    for slug, name in generate.PRODUCT_LINES:
        ProductLine.objects.get_or_create(slug=slug, defaults={"name": name})
    lines = list(ProductLine.objects.values_list("pk", flat=True))
    start = time.perf_counter()
    log(f"Generating {args.leads:,} leads …")
    generate.generate(leads=args.leads, activities_per_lead=1)
    log(f"  in {time.perf_counter() - start:.0f} s; owners and deals …")
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.31)")
        cursor.execute(_OWNERS_SQL, [cast.reps, len(cast.reps)])
        cursor.execute("SELECT count(*) FROM leads_lead WHERE owner_id IS NOT NULL")
        owned = cursor.fetchone()[0]
        opened = args.open_per_rep * len(cast.reps) / max(owned, 1)
        closed = args.closed_share
        shares = [opened / 20, opened, opened / 20 + closed / 10, opened + closed]
        cursor.execute(_DEALS_SQL, [stages, len(stages), lines, len(lines), *shares])
        deals = cursor.rowcount
        cursor.execute(_LEAD_STAGES_SQL)
    log(f"  {deals:,} deals in {time.perf_counter() - start:.0f} s")
    with transaction.atomic():
        Lead.objects.refresh_facts()
    with connection.cursor() as cursor:
        for table in ("leads_lead", "leads_deal", "leads_dealstage", "crm_user"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return cast


# Owners as in the pages' world: 30 % of the leads in the unassigned pool, the rest
# spread over the reps.
_OWNERS_SQL = """
UPDATE leads_lead SET owner_id = CASE
    WHEN random() < 0.3 THEN NULL
    ELSE (%s::bigint[])[1 + floor(random() * %s)::int] END
"""

# Deals owned by their lead's owner: open ones on about ``--open-per-rep`` of each rep's
# leads (and a twentieth of that share of the pool's), spread over the stages, a fifth
# of them idle for up to 60 days; closed ones, won or lost, on ``--closed-share`` of the
# owned leads (a tenth of it in the pool). Mostly EUR, some USD and GBP.
_DEALS_SQL = """
INSERT INTO leads_deal (lead_id, name, amount, currency, status, created_at, closed_at,
                        lost_reason, stage_id, stage_changed_at, expected_close,
                        probability, product_line_id, owner_id)
SELECT id, 'Deal ' || id, 500 + floor(r * 40) * 250,
       CASE WHEN c < 0.8 THEN 'EUR' WHEN c < 0.93 THEN 'USD' ELSE 'GBP' END,
       status, created, CASE WHEN status = 'open' THEN NULL ELSE created + interval '30 days' END,
       CASE WHEN status = 'lost' THEN 'Price too high' ELSE '' END,
       (%s::bigint[])[1 + floor(s * %s)::int],
       now() - CASE WHEN i < 0.2 THEN random() * interval '60 days'
                    ELSE random() * interval '10 days' END,
       (now() + (random() * 120 - 20) * interval '1 day')::date,
       CASE WHEN p < 0.1 THEN floor(p * 1000)::int END,
       (%s::bigint[])[1 + floor(random() * %s)::int], owner_id
FROM (
    SELECT id, owner_id, random() AS r, random() AS c, random() AS s, random() AS i,
           random() AS p, now() - random() * interval '360 days' AS created,
           CASE WHEN pick < open_share THEN 'open' WHEN random() < 0.65 THEN 'won'
                ELSE 'lost' END AS status, pick, deal_share
    FROM (
        SELECT id, owner_id, random() AS pick,
               CASE WHEN owner_id IS NULL THEN %s ELSE %s END AS open_share,
               CASE WHEN owner_id IS NULL THEN %s ELSE %s END AS deal_share
        FROM leads_lead
    ) l
) d
WHERE pick < deal_share
"""

_LEAD_STAGES_SQL = """
UPDATE leads_lead l SET stage = CASE WHEN d.won THEN 'customer' ELSE 'opportunity' END
FROM (SELECT lead_id, bool_or(status = 'won') AS won FROM leads_deal GROUP BY lead_id) d
WHERE d.lead_id = l.id
"""


# --- Scenarios ---------------------------------------------------------------------------------


def is_board_totals(sql: str) -> bool:
    return 'FROM "leads_deal"' in sql and "GROUP BY" in sql


def scenarios(users: dict, cast) -> list[Scenario]:
    rows = [
        ("rep", "", "default (the deals of the leads they see)"),
        ("rep", "owner=me", "owner: mine"),
        ("rep", "product=analytics", "product line"),
        ("manager", "", "default (the team's and the pool's)"),
        ("manager", f"owner={cast.reps[1]}", "owner: a rep of the team"),
        ("admin", "", "default (every deal)"),
        ("admin", "product=api", "product line"),
    ]
    return [
        Scenario(
            "Deal board",
            what,
            who,
            ["/deals/" + (f"?{query}" if query else "")],
            TARGET_MS,
            is_board_totals,
        )
        for who, query, what in rows
    ]


# --- Report ------------------------------------------------------------------------------------


def world(cast) -> dict[str, int]:
    from django.db import connection

    facts = {}
    with connection.cursor() as cursor:
        for name, sql in {
            "leads": "SELECT count(*) FROM leads_lead",
            "unassigned": "SELECT count(*) FROM leads_lead WHERE owner_id IS NULL",
            "deals": "SELECT count(*) FROM leads_deal",
            "open": "SELECT count(*) FROM leads_deal WHERE status = 'open'",
        }.items():
            cursor.execute(sql)
            facts[name] = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM leads_deal d JOIN leads_lead l ON l.id = d.lead_id "
            "WHERE d.status = 'open' AND (l.owner_id = %s OR l.owner_id IS NULL)",
            [cast.reps[0]],
        )
        facts["rep_open"] = cursor.fetchone()[0]
    return facts


def render(results: list[Result], facts: dict, args, loads: list[str], took: float) -> str:
    lines = [
        "## Deal board at 1,000,000 leads",
        "",
        f"Measured by `python bench/deals.py --leads {args.leads} --reuse --record` on "
        f"{harness.machine()}.",
        f"Load average {loads[0]} before, {loads[1]} after (shared machine); "
        f"the measurement took {took / 60:.0f} min.",
        f"Data (bench/deals.py over bench/generate.py): {facts['leads']:,} leads "
        f"({facts['unassigned']:,} unassigned), {facts['deals']:,} deals of which "
        f"{facts['open']:,} open, in three stages, three currencies and three product lines. "
        "Two teams of ten reps and a manager each: a rep sees the deals of their own leads "
        f"and of the pool ({facts['rep_open']:,} open), the manager the team's and the pool's, "
        "the admin all.",
        "",
        f"Server time: `django.test.Client` in the benchmark process, `DEBUG=false`, every "
        f"middleware, session in PostgreSQL, a persistent connection; {args.runs} requests "
        f"per row after {args.warmup} to warm up. Main query: the board's grouped aggregate "
        "of the open deals (count, total, weighted total and rotting per stage and "
        "currency), captured from the page and run again on a plain psycopg2 connection "
        f'{args.runs} times; "all reads" replays every SELECT of one request.',
        "",
        "| page | as | queries | server p50 | server p95 | target (p95) | main query, bare "
        "SQL p50 / p95 | all reads, bare SQL p50 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        s = r.scenario
        met = r.met()
        target = f"{s.target_ms:.0f} ms: {'met' if met else '**missed**'}"
        lines.append(
            f"| {s.page}: {s.what} | {s.who} | {r.queries} | {ms(p50(r.server))} ms | "
            f"{ms(p95(r.server))} ms | {target} | {ms(p50(r.main))} / {ms(p95(r.main))} ms | "
            f"{ms(p50(r.page_sql))} ms |"
        )
    worst = max(results, key=lambda r: p95(r.server))
    ok = all(r.met() for r in results)
    lines += [
        "",
        f"- The deal board: p95 under {TARGET_MS} ms: **{'met' if ok else 'missed'}** "
        f"(worst p95 {ms(p95(worst.server))} ms: {worst.scenario.what}, {worst.scenario.who}).",
        "",
        f"Deal board ({worst.scenario.who}, {worst.scenario.what}), main query "
        f"(p50 {ms(p50(worst.main))} ms bare):",
        "",
        "```sql",
        worst.main_sql,
        "```",
    ]
    return "\n".join(lines)


def main() -> None:
    args = parse()
    url = setup(args)
    cast = build(args)
    if args.build_only:
        return
    import psycopg2

    from crm.models import User

    loads = [" / ".join(f"{x:.2f}" for x in os.getloadavg())]
    log(f"load {loads[0]}")
    start = time.perf_counter()
    users = {
        "rep": User.objects.get(pk=cast.reps[0]),
        "manager": User.objects.get(pk=cast.managers[0]),
        "admin": User.objects.get(pk=cast.admin),
    }
    made = clients(users)
    found = scenarios(users, cast)
    if args.only:
        found = [s for s in found if args.only.lower() in f"{s.what} {s.who}".lower()]
    bare = psycopg2.connect(url)
    bare.autocommit = True
    results = []
    for scenario in found:
        result = measure(scenario, made[scenario.who], bare, args)
        results.append(result)
        log(
            f"{scenario.what} ({scenario.who}): {result.queries} queries, server p50 "
            f"{ms(p50(result.server))} p95 {ms(p95(result.server))} ms; main bare p50 "
            f"{ms(p50(result.main))} p95 {ms(p95(result.main))} ms; "
            f"all reads {ms(p50(result.page_sql))} ms"
        )
    bare.close()
    loads.append(" / ".join(f"{x:.2f}" for x in os.getloadavg()))
    table = render(results, world(cast), args, loads, time.perf_counter() - start)
    print(table)
    if args.record:
        harness.record("deals", table)
        log(f"Recorded in {harness.PERFORMANCE}")


if __name__ == "__main__":
    main()

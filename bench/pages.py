"""The rep workspace at scale: server time of each page beside the bare SQL of its query.

    python bench/pages.py [--leads 1000000] [--reuse] [--record]

Builds a world in its own database (``BENCH_DATABASE_URL``, default
``hotlist_bench_pages``): leads with activities (bench/generate.py), scored by the
set-based rescore, given owners, stages, hand-offs, tasks, deals and notifications.
Then each page is requested through Django's test ``Client`` in this process, with
``DEBUG=false`` settings, the real middleware and templates, as a rep, a manager and
an admin; the time from request to response is the server time. Beside each page the
bare SQL of its main query (captured from the page, replayed with psycopg2) and a
naive baseline are timed in the same run. ``--record`` writes the table to
docs/PERFORMANCE.md (section "pages").
"""

from __future__ import annotations

import argparse
import html
import os
import random
import re
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/hotlist_bench_pages"
# What the pages run with in production: DEBUG off (templates cached, no query log).
ENVIRONMENT = {
    "DEBUG": "false",
    "SECRET_KEY": "bench-pages-" + secrets.token_hex(24),
    "LOG_LEVEL": "WARNING",
}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--activities-per-lead", type=int, default=5)
    parser.add_argument(
        "--skew", type=float, default=2.0, help="Long tail of activities per lead (1: even)."
    )
    parser.add_argument("--reuse", action="store_true", help="Keep the world built before.")
    parser.add_argument("--record", action="store_true", help="Write docs/PERFORMANCE.md.")
    parser.add_argument("--runs", type=int, default=200, help="Timed requests of each page.")
    parser.add_argument("--warmup", type=int, default=20, help="Untimed requests first.")
    parser.add_argument(
        "--captures", type=int, default=30, help="Requests whose queries are replayed."
    )
    parser.add_argument("--naive-runs", type=int, default=30, help="Runs of each naive baseline.")
    parser.add_argument("--only", default="", help="Only the rows whose name contains this.")
    parser.add_argument("--build-only", action="store_true", help="Build the world and stop.")
    return parser.parse_args()


def log(text: str) -> None:
    print(text, flush=True)


def setup(args: argparse.Namespace) -> str:
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    os.environ.update(ENVIRONMENT)
    os.environ.setdefault("HOTLIST_VAR_DIR", str(harness.ROOT / "var" / "bench-pages"))
    if not args.reuse:
        harness.drop_database(url)
    harness.setup_django(url)
    return url


def build(args: argparse.Namespace):
    """The world of the benchmark, built once (``--reuse`` keeps it)."""
    import generate
    from django.core.management import call_command

    from demo.scoring import seed_starter_model
    from leads.models import HandOff, Lead

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    seed_starter_model()
    cast = generate.people()
    if HandOff.objects.exists():
        log(f"Reusing {Lead.objects.count():,} leads.")
        return cast
    if Lead.objects.exists():
        raise SystemExit("The benchmark database holds an unfinished world: run without --reuse.")
    timings = {}
    start = time.perf_counter()
    log(f"Generating {args.leads:,} leads x {args.activities_per_lead} activities …")
    generate.generate(
        leads=args.leads, activities_per_lead=args.activities_per_lead, skew=args.skew
    )
    timings["generate"] = time.perf_counter() - start
    log(f"  in {timings['generate']:.0f} s; scoring every lead …")
    start = time.perf_counter()
    generate.score_all(progress=log)
    timings["score"] = time.perf_counter() - start
    log(f"  in {timings['score']:.0f} s; owners, stages, hand-offs, tasks …")
    start = time.perf_counter()
    generate.workspace(cast=cast, progress=log)
    timings["workspace"] = time.perf_counter() - start
    log(f"  in {timings['workspace']:.0f} s")
    return cast


# --- Scenarios -------------------------------------------------------------------------

PAGE_SIZE_PLUS_ONE = "LIMIT 26"
DEEP = 50  # the deep page is the one reached by following "Next" this many times


@dataclass
class Scenario:
    """One page as one person sees it: the URLs requested in turn (one, or a sample of
    leads), the target, how to recognise the page's main query among those it runs, and
    an optional naive baseline (a callable doing the same work the obvious way)."""

    page: str
    what: str
    who: str
    urls: list[str]
    target_ms: float | None
    main: Callable[[str], bool]
    naive: Callable[[int], object] | None = None
    naive_label: str = ""
    # Requested as htmx does (``HX-Request``): the header's search asks for its partial.
    htmx: bool = False


@dataclass
class Result:
    scenario: Scenario
    queries: int
    server: list[float]
    main_sql: str
    main: list[float]
    page_sql: list[float]
    naive: list[float] = field(default_factory=list)

    def met(self) -> bool | None:
        target = self.scenario.target_ms
        return None if target is None else p95(self.server) * 1000 < target


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def is_page_rows(sql: str) -> bool:
    return 'FROM "leads_lead"' in sql and PAGE_SIZE_PLUS_ONE in sql


def is_my_day_leads(sql: str) -> bool:
    return 'FROM "leads_lead"' in sql and sql.rstrip().endswith("LIMIT 10")


def is_queue_inbound(sql: str) -> bool:
    """Next up's leads of the person's that wrote in lately (``rank_owner_inbound_idx``)."""
    return 'FROM "leads_leadrank"' in sql and '"inbound_at"' in sql


def is_stage_counts(sql: str) -> bool:
    return 'FROM "leads_lead"' in sql and 'GROUP BY "leads_lead"."stage"' in sql


def is_task_rows(sql: str) -> bool:
    return sql.startswith('SELECT "leads_task"') and "LIMIT" in sql


def is_timeline(sql: str) -> bool:
    return 'FROM "leads_activity"' in sql and "LIMIT 21" in sql


def is_board_totals(sql: str) -> bool:
    """The deal board's column totals per stage and currency, from the totals the
    database keeps (``DealBoardTotal``)."""
    return 'FROM "leads_dealboardtotal"' in sql and "GROUP BY" in sql


def is_search_leads(sql: str) -> bool:
    return 'FROM "leads_lead"' in sql and sql.rstrip().endswith("LIMIT 8")


def search_scenarios(pick: random.Random) -> list[Scenario]:
    """The header's search as each person types a full name (either order), a phone
    number written nationally, an email's start, a company's name and a deal's name:
    each a sample of 20 different texts, so that no answer is the one cached before."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id) FROM leads_lead")
        top = cursor.fetchone()[0]
        cursor.execute("SELECT max(id) FROM leads_company")
        companies = cursor.fetchone()[0]
        cursor.execute("SELECT array_agg(id) FROM leads_deal")
        deals = cursor.fetchone()[0] or [0]
        cursor.execute(
            "SELECT first_name, last_name, email, phone FROM leads_lead "
            "WHERE phone <> '' AND id = ANY(%s)",
            [[pick.randint(1, top) for _ in range(200)]],
        )
        people = cursor.fetchall()[:20]

    def national(phone: str) -> str:
        return "0" + phone.removeprefix("+49 ")

    texts = {
        "full name": [f"{first} {last}" for first, last, _, _ in people],
        "full name, last name first": [f"{last} {first}" for first, last, _, _ in people],
        "phone, written nationally": [national(phone) for *_, phone in people],
        "email's start": [email.split("@")[0] + "@" for _, _, email, _ in people],
        "company name": [f"Company {pick.randint(1, companies)}" for _ in range(20)],
        "deal name": [f"Deal {pick.choice(deals)}" for _ in range(20)],
    }
    found = []
    for who in ("rep", "manager", "admin"):
        for what, sample in texts.items():
            urls = ["/search/?" + urlencode({"q": text}) for text in sample]
            found.append(Scenario("Search", what, who, urls, 50, is_search_leads, htmx=True))
    return found


def scenarios(users: dict, made: dict, pick: random.Random) -> list[Scenario]:
    from django.db import connection

    rep = users["rep"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id) + (max(id) - min(id)) / 3 FROM leads_company")
        company = cursor.fetchone()[0]
        cursor.execute(
            "SELECT split_part(email, '@', 1) FROM leads_lead WHERE owner_id = %s "
            "ORDER BY id LIMIT 1 OFFSET 500",
            [rep.pk],
        )
        mailbox = cursor.fetchone()[0]
        cursor.execute("SELECT name FROM leads_company WHERE id = %s", [company])
        company_name = cursor.fetchone()[0]
    lists = [
        ("default (hottest first)", ""),
        ("band + stage", "band=warm&stage=mql"),
        ("owner: mine", "owner=me"),
        ("owner: unassigned", "owner=unassigned"),
        ("source + grade", "source=referral&grade=B"),
        ("score range", "score_min=20&score_max=40"),
        ("band + stage + owner: mine", "band=warm&stage=mql&owner=me"),
        ("search by email", f"q={mailbox}"),
        ("search by company", "q=" + company_name.replace(" ", "+")),
        ("sort by last activity", "sort=-last_activity"),
        ("sort by name", "sort=name"),
        ("sort by company", "sort=company"),
        ("no activity yet, by company", "activity=none&sort=company"),
    ]
    deep = {
        "",
        "sort=-last_activity",
        "sort=name",
        "sort=company",
        "owner=unassigned",
        "score_min=20&score_max=40",
    }
    found: list[Scenario] = []
    for who in ("rep", "manager", "admin"):
        for what, query in lists:
            if who != "rep" and query not in ("", "owner=unassigned", "sort=name"):
                continue
            url = "/leads/" + (f"?{query}" if query else "")
            naive = naive_list(users[who], query, page=1)
            found.append(
                Scenario(
                    "List",
                    f"{what}, first page",
                    who,
                    [url],
                    50,
                    is_page_rows,
                    naive,
                    "OFFSET page and exact COUNT(*)",
                )
            )
            if query in deep:
                far, followed = follow_next(made[who], url, DEEP)
                found.append(
                    Scenario(
                        "List",
                        f"{what}, page {followed + 1} (Next x{followed})",
                        who,
                        [far],
                        50,
                        is_page_rows,
                        naive_list(users[who], query, page=followed + 1),
                        "OFFSET page and exact COUNT(*)",
                    )
                )
    sample = lead_sample(rep, pick)
    found.append(
        Scenario(
            "Lead page",
            "random leads with activity",
            "rep",
            [f"/leads/{pk}/" for pk in sample],
            100,
            is_timeline,
            naive_lead(sample),
            "whole timeline and ledger, unpaginated",
        )
    )
    hottest = lead_hottest(rep)
    found.append(
        Scenario(
            "Lead page",
            "the rep's 20 hottest leads",
            "rep",
            [f"/leads/{pk}/" for pk in hottest],
            100,
            is_timeline,
            naive_lead(hottest),
            "whole timeline and ledger, unpaginated",
        )
    )
    for who in ("rep", "manager", "admin"):
        found.append(
            Scenario(
                "My day",
                "",
                who,
                ["/"],
                150 if who == "rep" else None,
                is_my_day_leads,
                naive_my_day(users[who]),
                "a full explanation per lead",
            )
        )
    for who in ("rep", "manager"):
        found.append(
            Scenario(
                "Next up",
                "the work queue",
                who,
                ["/next/"],
                50 if who == "rep" else None,
                is_queue_inbound,
                naive_next_up(users[who]),
                "each candidate lead's activity in a query of its own",
            )
        )
    for who, query, what in (
        ("rep", "", "the deals of the leads they see"),
        ("rep", "owner=me", "owner: mine"),
        ("manager", "", "the team's and the pool's"),
        ("admin", "", "every deal"),
    ):
        url = "/deals/" + (f"?{query}" if query else "")
        found.append(Scenario("Deal board", what, who, [url], 50, is_board_totals))
    for who in ("rep", "manager"):
        found.append(Scenario("Pipeline", "", who, ["/pipeline/"], None, is_stage_counts))
        found.append(Scenario("Tasks", "", who, ["/tasks/"], None, is_task_rows))
    return found + search_scenarios(pick)


# --- Requests ----------------------------------------------------------------------------

NEXT_LINK = re.compile(r'<a rel="next" href="([^"]+)"')


def clients(users: dict) -> dict:
    from django.test import Client

    made = {}
    for who, user in users.items():
        client = Client()
        client.force_login(user)
        made[who] = client
    return made


def get(client, url: str, *, htmx: bool = False):
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.get(url, secure=True, headers=headers)
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}")
    return response


def follow_next(client, url: str, times: int) -> tuple[str, int]:
    """The URL of the page reached from ``url`` by following its "Next" link ``times``
    (fewer when the list ends first), and how many times it was followed."""
    for followed in range(times):
        found = NEXT_LINK.search(get(client, url).content.decode())
        if found is None:
            return url, followed
        url = html.unescape(found.group(1))
    return url, times


def lead_sample(user, pick: random.Random, size: int = 200) -> list[int]:
    """Leads the user sees that have activity, drawn at random."""
    from leads.models import Lead

    ids = list(
        Lead.objects.visible_to(user)
        .filter(last_activity_at__isnull=False)
        .order_by("?")
        .values_list("pk", flat=True)[: size * 2]
    )
    pick.shuffle(ids)
    return sorted(ids[:size])


def lead_hottest(user, size: int = 20) -> list[int]:
    from leads.models import Lead

    return list(Lead.objects.visible_to(user).hottest().values_list("pk", flat=True)[:size])


# --- Naive baselines: the same data the obvious way ------------------------------------------


def naive_list(user, query: str, *, page: int) -> Callable[[int], object]:
    """A ListView with Django's Paginator: exact COUNT(*) of the matches, OFFSET page."""
    from django.core.paginator import Paginator
    from django.http import QueryDict
    from django.test import RequestFactory

    from leads.models import Lead
    from workspace.filters import LeadListFilter
    from workspace.keyset import SORTS

    request = RequestFactory().get("/leads/")
    request.user = user
    filters = LeadListFilter(QueryDict(query), Lead.objects.visible_to(user), request=request)
    order = SORTS[filters.sort_key].order_by()
    leads = filters.qs.select_related("company", "owner").order_by(*order)

    def run(_: int) -> object:
        paginator = Paginator(leads, 25)
        return paginator.count, list(paginator.page(min(page, paginator.num_pages)).object_list)

    return run


def naive_lead(ids: list[int]) -> Callable[[int], object]:
    """The lead page's timeline and score history without pagination or limits."""
    from leads.models import Activity
    from scoring.models import ScoreEntry

    def run(i: int) -> object:
        lead_id = ids[i % len(ids)]
        return (
            list(Activity.objects.filter(lead_id=lead_id).select_related("created_by")),
            list(ScoreEntry.objects.filter(lead_id=lead_id)),
        )

    return run


def naive_my_day(user) -> Callable[[int], object]:
    """My day's leads, each explained by its own ``lead_explanation`` call (N+1)."""
    from leads.selectors import my_day_leads
    from scoring.explanation import lead_explanation

    def run(_: int) -> object:
        return [lead_explanation(lead=lead) for lead in my_day_leads(user=user)]

    return run


def naive_next_up(user) -> Callable[[int], object]:
    """The queue the obvious way: the person's hand-offs, due tasks and hottest leads,
    then each one's last week of activity read lead by lead (N+1)."""
    from datetime import timedelta

    from django.utils import timezone

    from leads.models import Activity, HandOff, Lead, Task
    from leads.selectors import end_of_today

    def run(_: int) -> object:
        now = timezone.now()
        ids = [
            *HandOff.objects.awaiting(user).values_list("lead_id", flat=True)[:100],
            *Task.objects.open()
            .filter(assignee=user, due_at__lt=end_of_today(now), lead__isnull=False)
            .values_list("lead_id", flat=True)[:100],
            *Lead.objects.filter(owner=user).open().hottest().values_list("pk", flat=True)[:100],
        ]
        week = now - timedelta(days=7)
        return [
            list(Activity.objects.filter(lead_id=lead_id, occurred_at__gte=week))
            for lead_id in dict.fromkeys(ids)
        ]

    return run


# --- Measuring -----------------------------------------------------------------------------

READS = ("SELECT", "WITH")


def replay(cursor, sql: str) -> float:
    """One run of a captured statement on the bare connection, rows fetched."""
    start = time.perf_counter()
    cursor.execute(sql)
    if cursor.description is not None:
        cursor.fetchall()
    return time.perf_counter() - start


def measure(scenario: Scenario, client, bare, args: argparse.Namespace) -> Result:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    urls = scenario.urls
    htmx = scenario.htmx
    for i in range(args.warmup):
        get(client, urls[i % len(urls)], htmx=htmx)
    server = []
    for i in range(args.runs):
        url = urls[i % len(urls)]
        start = time.perf_counter()
        get(client, url, htmx=htmx)
        server.append(time.perf_counter() - start)
    captures = []
    for url in urls[: args.captures]:
        with CaptureQueriesContext(connection) as captured:
            get(client, url, htmx=htmx)
        captures.append([q["sql"] for q in captured.captured_queries])
    with bare.cursor() as cursor:
        mains = [_main_query(cursor, scenario, capture) for capture in captures]
        main = [replay(cursor, mains[i % len(mains)]) for i in range(args.runs)]
        page_sql = []
        for i in range(max(args.captures, len(captures))):
            reads = [sql for sql in captures[i % len(captures)] if sql.startswith(READS)]
            page_sql.append(sum(replay(cursor, sql) for sql in reads))
    naive = []
    if scenario.naive is not None:
        for i in range(args.naive_runs):
            start = time.perf_counter()
            scenario.naive(i)
            naive.append(time.perf_counter() - start)
    return Result(scenario, max(len(c) for c in captures), server, mains[0], main, page_sql, naive)


def _main_query(cursor, scenario: Scenario, capture: list[str]) -> str:
    """The scenario's main query in one request's statements; else its slowest read."""
    for sql in capture:
        if scenario.main(sql):
            return sql
    reads = [sql for sql in capture if sql.startswith(READS)]
    return max(reads, key=lambda sql: replay(cursor, sql))


# --- Report -----------------------------------------------------------------------------


def ms(value: float) -> str:
    value *= 1000
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def world(cast) -> dict[str, int]:
    from django.db import connection

    facts = {}
    with connection.cursor() as cursor:
        for name, sql in {
            "leads": "SELECT count(*) FROM leads_lead",
            "hot": "SELECT count(*) FROM leads_lead WHERE band = 'hot'",
            "warm": "SELECT count(*) FROM leads_lead WHERE band = 'warm'",
            "unassigned": "SELECT count(*) FROM leads_lead WHERE owner_id IS NULL",
            "activities": "SELECT count(*) FROM leads_activity",
            "most": "SELECT max(n) FROM (SELECT count(*) n FROM leads_activity GROUP BY lead_id) x",
            "entries": "SELECT count(*) FROM scoring_scoreentry",
            "handoffs": "SELECT count(*) FROM leads_handoff",
            "tasks": "SELECT count(*) FROM leads_task",
            "deals": "SELECT count(*) FROM leads_deal",
            "open_deals": "SELECT count(*) FROM leads_deal WHERE status = 'open'",
        }.items():
            cursor.execute(sql)
            facts[name] = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM leads_lead WHERE owner_id = %s", [cast.reps[0]])
        facts["rep_own"] = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM leads_deal d JOIN leads_lead l ON l.id = d.lead_id "
            "WHERE d.status = 'open' AND (l.owner_id = %s OR l.owner_id IS NULL)",
            [cast.reps[0]],
        )
        facts["rep_open_deals"] = cursor.fetchone()[0]
    return facts


def render(results: list[Result], facts: dict, args, loads: tuple, took: float) -> str:
    lines = [
        "## Rep workspace at 1,000,000 leads",
        "",
        f"Measured by `{harness.command()}` on {harness.machine()}.",
        f"Load average {loads[0]} before, {loads[1]} after (shared machine); "
        f"the measurement took {took / 60:.0f} min.",
        f"Data (bench/generate.py, then scored by `scoring.bulk.rescore_range`): "
        f"{facts['leads']:,} leads ({facts['hot']:,} hot, {facts['warm']:,} warm; "
        f"{facts['unassigned']:,} unassigned), {facts['activities']:,} activities in a long "
        f"tail (up to {facts['most']:,} on one lead), {facts['entries']:,} ledger entries, "
        f"{facts['handoffs']:,} hand-offs, {facts['tasks']:,} tasks, {facts['deals']:,} deals "
        f"({facts['open_deals']:,} open, in three stages). Two teams of ten reps "
        f"and a manager each: the rep owns {facts['rep_own']:,} leads and sees those and the "
        f"unassigned pool ({facts['rep_open_deals']:,} open deals); the manager sees the "
        "team's and the pool; the admin sees all.",
        "",
        f"Server time: `django.test.Client` in the benchmark process, `DEBUG=false`, every "
        f"middleware, session in PostgreSQL, a persistent connection; {args.runs} requests "
        f"per row after {args.warmup} to warm up (a sample of leads is cycled through). "
        "Bare SQL: the page's main query, captured from the page with "
        "`CaptureQueriesContext` and run again on a plain psycopg2 connection "
        f'{args.runs} times (rows fetched); "all reads" replays every SELECT of one '
        f"request ({args.captures} requests). Naive: the same data the obvious way, "
        f"{args.naive_runs} runs (the list: Django's `Paginator`, an exact `COUNT(*)` and an "
        "`OFFSET` page).",
        "",
        "| page | as | queries | server p50 | server p95 | target (p95) | main query, bare "
        "SQL p50 / p95 | all reads, bare SQL p50 | naive p50 / p95 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        s = r.scenario
        met = r.met()
        target = "—" if met is None else f"{s.target_ms:.0f} ms: {'met' if met else '**missed**'}"
        naive = f"{ms(p50(r.naive))} / {ms(p95(r.naive))} ms" if r.naive else "—"
        page = f"{s.page}: {s.what}" if s.what else s.page
        lines.append(
            f"| {page} | {s.who} | {r.queries} | {ms(p50(r.server))} ms | "
            f"{ms(p95(r.server))} ms | {target} | {ms(p50(r.main))} / {ms(p95(r.main))} ms | "
            f"{ms(p50(r.page_sql))} ms | {naive} |"
        )
    lines += ["", *verdicts(results)]
    return "\n".join(lines)


def verdicts(results: list[Result]) -> list[str]:
    """One line per target: the worst p95 among the rows it applies to."""
    lines = []
    for page, target, text in (
        ("List", 50, "The list, any filter, first and deep pages"),
        ("Lead page", 100, "The lead page"),
        ("My day", 150, "A rep's My day"),
        ("Next up", 50, "A rep's Next up"),
        ("Deal board", 50, "The deal board"),
        ("Search", 50, "The header's search"),
    ):
        rows = [r for r in results if r.scenario.page == page and r.met() is not None]
        if not rows:
            continue
        worst = max(rows, key=lambda r: p95(r.server))
        ok = all(r.met() for r in rows)
        where = f"{worst.scenario.what or worst.scenario.page}, {worst.scenario.who}"
        lines.append(
            f"- {text}: p95 under {target} ms: **{'met' if ok else 'missed'}** "
            f"(worst p95 {ms(p95(worst.server))} ms: {where})."
        )
    return lines


def sql_listing(results: list[Result]) -> str:
    """The bare SQL of the main queries of the rep's default list and a lead page."""
    chosen = [
        r
        for r in results
        if r.scenario.who == "rep"
        and (
            r.scenario.what.startswith("default (hottest first), first")
            or r.scenario.page != "List"
        )
    ]
    parts = []
    for r in chosen[:2]:
        s = r.scenario
        parts += [
            f"{s.page}{': ' + s.what if s.what else ''} ({s.who}), main query "
            f"(p50 {ms(p50(r.main))} ms bare):",
            "",
            "```sql",
            r.main_sql,
            "```",
            "",
        ]
    return "\n".join(parts)


def main() -> None:
    args = parse()
    url = setup(args)
    cast = build(args)
    if args.build_only:
        return
    import generate
    import psycopg2

    from crm.models import User

    generate.analyze()
    loads = [" / ".join(f"{x:.2f}" for x in os.getloadavg())]
    log(f"load {loads[0]}")
    start = time.perf_counter()
    users = {
        "rep": User.objects.get(pk=cast.reps[0]),
        "manager": User.objects.get(pk=cast.managers[0]),
        "admin": User.objects.get(pk=cast.admin),
    }
    made = clients(users)
    found = scenarios(users, made, random.Random(7))
    if args.only:
        found = [s for s in found if args.only.lower() in f"{s.page} {s.what} {s.who}".lower()]
    bare = psycopg2.connect(url)
    bare.autocommit = True
    results = []
    for scenario in found:
        result = measure(scenario, made[scenario.who], bare, args)
        results.append(result)
        log(
            f"{scenario.page}: {scenario.what} ({scenario.who}): {result.queries} queries, "
            f"server p50 {ms(p50(result.server))} p95 {ms(p95(result.server))} ms; "
            f"main bare p50 {ms(p50(result.main))} p95 {ms(p95(result.main))} ms; "
            f"all reads {ms(p50(result.page_sql))} ms"
            + (f"; naive p50 {ms(p50(result.naive))} ms" if result.naive else "")
        )
    bare.close()
    loads.append(" / ".join(f"{x:.2f}" for x in os.getloadavg()))
    table = render(results, world(cast), args, tuple(loads), time.perf_counter() - start)
    table += "\n\n" + sql_listing(results)
    print(table)
    if args.record:
        harness.record("pages", table)
        log(f"Recorded in {harness.PERFORMANCE}")


if __name__ == "__main__":
    main()

"""The studio's preview of a candidate version at scale, beside bare SQL of the same work.

    python bench/studio_preview.py [--leads 100000] [--activities-per-lead 10] [--runs 3]
                                   [--record]

Builds, in its own database (``BENCH_DATABASE_URL``, default ``hotlist_bench_studio``),
the world of bench/pages.py at ``--leads`` leads (generated activities, the starter model,
every lead scored set-based, stages, hand-offs and deals: lost ones on some recycled and
disqualified leads, the open ones then closed as won), reused when it holds that many
leads.
A draft version of the starter model with other points and lower thresholds is the
candidate. Then, ``--runs`` times each:

- the preview: ``scoring.version_preview.version_tallies`` scoring both versions
  set-based (awards and sums into temporary tables, the counts grouped out of them,
  the closed leads fetched) and ``version_preview`` turning the counts into every figure
  of the page (histogram, moves, hand-offs a week, bands, deciles, AUC, time split);
- the bare SQL: the same awards statements and the per-lead sum and score SELECT of
  both versions, on a plain psycopg2 connection, rolled back, nothing fetched.

Prints a Markdown table; ``--record`` writes it to docs/PERFORMANCE.md (section
"studio-preview").
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

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/hotlist_bench_studio"
TARGET = 60.0


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000, help="Leads in the world.")
    parser.add_argument("--activities-per-lead", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3, help="Timed runs of each.")
    parser.add_argument("--record", action="store_true", help="Write docs/PERFORMANCE.md.")
    return parser.parse_args()


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def build(args: argparse.Namespace) -> None:
    import generate
    from django.core.management import call_command

    from demo.scoring import seed_starter_model
    from leads.models import Lead

    call_command("migrate", verbosity=0)
    seed_starter_model()
    cast = generate.people()
    if Lead.objects.count() == args.leads:
        log(f"Reusing the world of {args.leads:,} leads.")
        return
    if Lead.objects.exists():
        raise SystemExit("The benchmark database holds another world: drop it first.")
    log(f"Generating {args.leads:,} leads x {args.activities_per_lead} activities …")
    generate.generate(leads=args.leads, activities_per_lead=args.activities_per_lead)
    log("Scoring every lead …")
    generate.score_all(progress=log)
    log("Owners, stages, hand-offs, deals …")
    generate.workspace(cast=cast, progress=log)


def outcomes() -> None:
    """Won deals beside the lost ones, so the AUC has both: the world of bench/pages.py
    wins deals only on customers, which a hundred thousand leads may not reach. Its open
    deals are closed as won over the last 90 days, once."""
    from django.db import connection

    from leads.models import Deal

    if Deal.objects.filter(status="won").exists():
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE leads_deal SET status = 'won', "
            "closed_at = now() - (random() * 90)::int * interval '1 day' WHERE status = 'open'"
        )
        log(f"  {cursor.rowcount:,} open deals closed as won")


def candidate():
    """A draft version of the starter model: fit points doubled, engagement halved, the
    thresholds ten points lower (made once, reused)."""
    from django.db.models import F

    from crm.models import User
    from scoring.changes import model_duplicate
    from scoring.models import Rule, ScoringModel

    live = ScoringModel.objects.get(is_default=True, status="active")
    draft = ScoringModel.objects.filter(version_of=live, status="draft").first()
    if draft is not None:
        return draft
    admin = User.objects.filter(is_superuser=True).order_by("pk").first()
    draft = model_duplicate(model=live, by=admin)
    Rule.objects.filter(model=draft, kind="fit").update(points=F("points") * 2)
    Rule.objects.filter(model=draft, kind="engagement", points__gt=1).update(points=F("points") / 2)
    draft.mql_threshold = max(live.mql_threshold - 10, 0)
    draft.sql_threshold = max(live.sql_threshold - 10, draft.mql_threshold)
    draft.save()
    return draft


def preview_once(draft) -> float:
    from django.utils import timezone

    from scoring.version_preview import version_preview, version_tallies

    start = time.perf_counter()
    # Scored now (a given instant skips the kept counts), kept, and read by the preview.
    version_tallies(candidate=draft, now=timezone.now(), set_based=True)
    preview = version_preview(candidate=draft)
    took = time.perf_counter() - start
    log(
        f"  preview: {took:.2f} s ({preview.scored:,} leads, {preview.closed:,} closed, "
        f"AUC {preview.separation[0].auc} → {preview.separation[1].auc})"
    )
    return took


def bare_once(url: str, draft) -> float:
    """The awards of both versions into a temporary table and the per-lead sum and score
    SELECT of each, as the preview runs them, on a plain connection, rolled back."""
    import psycopg2
    from django.utils import timezone

    from scoring.ruleset import load_ruleset
    from scoring.version_preview_sql import AWARDS_TABLE, awards_insert, sums_sql

    live_c, candidate_c = load_ruleset([draft.version_of, draft]).models
    now = timezone.now()
    statements = awards_insert(live_c, candidate_c, draft.version_of, now)
    sums = [
        sums_sql(version, model, draft.version_of, now)
        for version, model in enumerate((live_c, candidate_c))
    ]
    connection = psycopg2.connect(url)
    try:
        start = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SET jit = off")
            cursor.execute(AWARDS_TABLE)
            for sql, params in statements:
                cursor.execute(sql, params)
            for sql, params in sums:
                cursor.execute(f"SELECT count(*) FROM ({sql}) s", params)
                cursor.fetchone()
        took = time.perf_counter() - start
        connection.rollback()
    finally:
        connection.close()
    log(f"  bare SQL: {took:.2f} s")
    return took


def facts() -> dict[str, int]:
    from leads.models import Activity, Deal, Lead

    return {
        "leads": Lead.objects.count(),
        "activities": Activity.objects.count(),
        "closed": Deal.objects.exclude(status="open").values("lead_id").distinct().count(),
    }


def render(
    preview: list[float], bare: list[float], world: dict[str, int], loads: list[str], runs: int
) -> str:
    p, b = statistics.median(preview), statistics.median(bare)
    return "\n".join(
        [
            f"## Studio preview at {world['leads']:,} leads",
            "",
            f"Measured by `python bench/studio_preview.py --leads {world['leads']} --record` "
            f"on {harness.machine()}.",
            f"Load average (1 min) {loads[0]} before, {loads[1]} after (shared machine).",
            f"Data: the world of bench/pages.py at {world['leads']:,} leads, "
            f"{world['activities']:,} activities, {world['closed']:,} closed leads (won and "
            "lost); the candidate is a draft version of the starter model with fit points "
            "doubled, engagement points halved and thresholds ten points lower.",
            "",
            "Preview: `version_tallies` scoring both versions set-based into temporary tables "
            "and grouping the counts out of them, then `version_preview` making every figure "
            "of the page (histogram, moves, hand-offs a week, bands, deciles, AUC, time "
            "split). Bare SQL: the same awards statements and the per-lead sum and score "
            f"SELECT of both versions on a plain psycopg2 connection, nothing fetched. "
            f"Median of {runs} runs each. Target: under {TARGET:.0f} s at 1,000,000 leads.",
            "",
            "| what | median | runs | ratio to bare SQL |",
            "| --- | --- | --- | --- |",
            f"| Preview of a candidate version (both versions scored, every figure) "
            f"| {harness.seconds(p)} | {', '.join(f'{t:.2f} s' for t in preview)} "
            f"| {p / b:.2f} |",
            f"| Bare SQL: awards and per-lead sums of both versions "
            f"| {harness.seconds(b)} | {', '.join(f'{t:.2f} s' for t in bare)} | 1 |",
        ]
    )


def main() -> None:
    args = parse()
    os.environ.setdefault("HOTLIST_VAR_DIR", str(harness.ROOT / "var" / "bench-studio"))
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    harness.setup_django(url)
    build(args)
    outcomes()
    draft = candidate()
    harness.vacuum_analyze()
    loads = [f"{os.getloadavg()[0]:.1f}"]
    preview = [preview_once(draft) for _ in range(args.runs)]
    bare = [bare_once(url, draft) for _ in range(args.runs)]
    loads.append(f"{os.getloadavg()[0]:.1f}")
    table = render(preview, bare, facts(), loads, args.runs)
    print(table)
    if args.record:
        harness.record("studio-preview", table)
        log(f"Recorded in {harness.PERFORMANCE}")


if __name__ == "__main__":
    main()

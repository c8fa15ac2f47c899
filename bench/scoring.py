"""Scoring benchmarks: first and full rescores, a one-rule and a fit-rule change.

Also a fit rule's points alone and the nightly decay, each beside the database's limit
for the same result.

    python bench/scoring.py --leads 1000000 --activities-per-lead 20 --fresh

"Bare" is the limit, not the same steps done by hand: the same scores computed in one
parallel SELECT and written into a table with only a primary key (``bench/bare_scores.py``),
measured in the same run and checked against the product's scores. The naive Django
loop is the other baseline. Every phase starts after a ``VACUUM (ANALYZE)`` and records
the load average before and after it; the server's settings are recorded with the
table, which is written to docs/PERFORMANCE.md. The benchmark database is
``BENCH_DATABASE_URL`` (default ``hotlist_bench`` on the local PostgreSQL);
``--fresh`` rebuilds it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bare_scores
import harness

PHASES = "first,halflife,unchanged,rule,fit,fitpoints,decay"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--activities-per-lead", type=int, default=20)
    parser.add_argument(
        "--naive-sample", type=int, default=2000, help="Leads the naive loop times."
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="Runs of each bare statement, the unchanged "
        "rescore and the decay (medians are quoted).",
    )
    parser.add_argument(
        "--decay-runs", type=int, help="Runs of each decay (default: --runs); minutes each at 1M."
    )
    parser.add_argument("--fresh", action="store_true", help="Drop and regenerate the data.")
    parser.add_argument(
        "--reset-ledger", action="store_true", help="Empty the ledger to time a first rescore."
    )
    parser.add_argument(
        "--rows",
        default=PHASES,
        help=f"Comma-separated phases to measure, of {PHASES} (first only on an empty "
        "ledger); lead-write prints where a rewrite of a rule's leads spends its time.",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="Bulk worker processes that share a rescore's ranges (0: in this process).",
    )
    parser.add_argument(
        "--bare",
        choices=["windows", "per-lead"],
        default=bare_scores.STYLE,
        help="How the bare statement is written (bench/bare_scores.py).",
    )
    parser.add_argument("--no-record", action="store_true", help="Print only.")
    return parser.parse_args()


BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/6")


@dataclass
class Row:
    what: str
    product: float
    bare: float | None
    naive: float | None = None
    share: bool = False  # a lock-probe share, not seconds
    written: str = ""  # rows the product wrote / rows the bare statement wrote


@dataclass
class Bench:
    """What a run measured: its rows, and per phase the load, vacuum and agreement."""

    args: argparse.Namespace
    model: Any
    leads: int
    naive: float = 0.0  # seconds per lead
    rows: list[Row] = field(default_factory=list)
    phases: list[tuple[str, str, str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    machine: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    activities: int = 0

    def save(self) -> None:
        """Record the table so far: a run stopped halfway leaves its finished phases."""
        if self.rows and not self.args.no_record:
            harness.record("scoring", render(self))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        vacuum = harness.vacuum_analyze()
        before = harness.load_average()
        print(f"\n== {name} (VACUUM (ANALYZE) {vacuum:.1f} s, load {before})", flush=True)
        yield
        after = harness.load_average()
        print(f"   load after: {after}", flush=True)
        self.phases.append((name, before, after, vacuum))
        self.save()


def main() -> None:
    args = parse()
    bare_scores.STYLE = args.bare
    url = os.environ.get("BENCH_DATABASE_URL", harness.DEFAULT_URL)
    if args.fresh:
        harness.drop_database(url)
    # This process queues the ranges of a rescore on the broker the workers read.
    os.environ.update(CELERY_BROKER_URL=BROKER, CELERY_TASK_ALWAYS_EAGER="false", DEBUG="false")
    harness.setup_django(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    import generate

    from demo.scoring import seed_starter_model

    leads, activities = generate.counts()
    generated = ""
    if leads == 0:
        print(f"Generating {args.leads:,} leads x {args.activities_per_lead} activities …")
        with harness.stopwatch() as took:
            generate.generate(leads=args.leads, activities_per_lead=args.activities_per_lead)
        leads, activities = generate.counts()
        generated = f"generated in {took[0]:.0f} s"
        print(f"  {leads:,} leads, {activities:,} activities, {generated}")
    model = seed_starter_model()
    if args.reset_ledger:
        reset_ledger()
    settings = harness.server_settings()
    print("server:", ", ".join(f"{k}={v}" for k, v in settings.items()))
    machine = harness.machine()
    worker = bulk_workers(args.workers, url) if args.workers else None
    bench = Bench(
        args=args,
        model=model,
        leads=leads,
        machine=machine,
        settings=settings,
        activities=activities,
    )
    if generated:
        bench.notes.append(f"The data was {generated}.")
    try:
        run_all(bench)
    finally:
        if worker:
            worker.stop()
        drop_bare_table()
    if not bench.rows:
        return
    print(render(bench))
    if not args.no_record:
        print(f"Recorded in {harness.PERFORMANCE}")


def run_all(bench: Bench) -> None:
    from scoring.models import RescoreJob, ScoreEntry

    args, model = bench.args, bench.model
    wanted = set(args.rows.split(","))

    with bench.phase("plan and naive loop"):
        shown = bare_scores.plan(model)
        print("\n".join(shown["text"][:12]))
        bench.notes.append(
            f"EXPLAIN of the bare statement: {shown['gather'] or 'no Gather'} with "
            f"{shown['workers']} workers planned (max_parallel_workers_per_gather "
            f"{shown['max_parallel_workers_per_gather']})."
        )
        if not shown["parallel"]:
            print("WARNING: the bare statement's plan has no Gather: it runs on one core")
        bench.naive = naive_loop_seconds_per_lead(model, args.naive_sample)
        print(f"naive ORM loop: {bench.naive * 1000:.2f} ms per lead")

    def rescore(
        rule=None, *, in_process: bool = not args.workers, points_before: int | None = None
    ) -> RescoreJob:
        # As ``scoring.changes.rule_save`` queues it: a points-only change says so.
        job = RescoreJob.objects.create(
            model=model, rule=rule, reason="benchmark", points_before=points_before
        )
        rescore_job_run(job_id=job.pk, in_process=in_process)
        return wait_for(job)

    from scoring.rescore_jobs import rescore_job_run

    bare_all: dict[str, Any] = {}
    if "first" in wanted:
        if ScoreEntry.objects.exists():
            print("\nfirst: skipped, the ledger is not empty (--fresh or --reset-ledger)")
        else:
            with bench.phase("first rescore"):
                bare_all = bare_phase(bench, "first")
                measured = product_run(bench, "first rescore", rescore)
                bench.rows += phase_rows(
                    bench,
                    "First rescore (empty ledger: every entry and score written)",
                    measured,
                    bare_all,
                )
    if "halflife" in wanted:
        with bench.phase("full rescore after a half-life change"):
            before = model.decay_half_life_days
            model.decay_half_life_days = 21.0 if before != 21.0 else 30.0
            model.save(update_fields=["decay_half_life_days", "updated_at"])
            print(f"half-life {before} → {model.decay_half_life_days} days")
            bare_all = bare_phase(bench, "halflife")
            measured = product_run(bench, "half-life rescore", rescore)
            what = (
                f"Full rescore after the decay half-life changed ({before:g} → "
                f"{model.decay_half_life_days:g} days: nearly every score moves)"
            )
            bench.rows += phase_rows(bench, what, measured, bare_all)
    if "unchanged" in wanted:
        with bench.phase("full rescore, nothing changed"):
            if bare_all:
                bench.notes.append(
                    "The unchanged rescore stands beside the bare figure of the phase "
                    "before it: the same statement on the same data."
                )
            else:
                bare_all = bare_phase(bench, "unchanged")
            runs = [product_run(bench, "unchanged rescore", rescore) for _ in range(args.runs)]
            median = statistics.median(r["seconds"] for r in runs)
            print(f"unchanged rescores: {[round(r['seconds'], 2) for r in runs]}")
            measured = {**runs[-1], "seconds": median, "runs": [r["seconds"] for r in runs]}
            bench.rows += phase_rows(
                bench, "Full rescore, nothing changed (writes next to nothing)", measured, bare_all
            )
    if "rule" in wanted:
        with bench.phase("one engagement rule's points"):
            bench.rows += one_rule_rows(bench, bench.activities, rescore)
    if "fit" in wanted:
        with bench.phase("one fit rule"):
            bench.rows += fit_rule_rows(bench, rescore)
    if "fitpoints" in wanted:
        with bench.phase("one fit rule's points"):
            bench.rows += fit_points_rows(bench, rescore)
    if "lead-write" in wanted:
        lead_write_split(model)
    if "decay" in wanted:
        with bench.phase("nightly decay"):
            bench.rows += decay_rows(bench)


def bare_phase(
    bench: Bench, name: str, lead_filter: tuple[str, list[Any]] = ("TRUE", [])
) -> dict[str, Any]:
    """The bare statement ``--runs`` times (the lock probe running throughout); the
    median, each run, the rows written and the probe's waits. The last run's table stays
    for ``agreement``."""
    results: list[dict[str, Any]] = []

    def runs() -> None:
        for _ in range(bench.args.runs):
            results.append(bare_scores.run(bench.model, lead_filter))

    _, waits = lock_waits_during(runs)
    times = [r["seconds"] for r in results]
    last = results[-1]
    print(
        f"bare {name}: {[round(t, 2) for t in times]} s "
        f"(SELECT into the table {last['select']:.2f} s, primary key {last['key']:.2f} s), "
        f"{last['rows']:,} rows"
    )
    return {**last, "seconds": statistics.median(times), "runs": times, "waits": waits}


def product_run(bench: Bench, name: str, action: Callable[[], Any]) -> dict[str, Any]:
    """One product rescore with the lock probe; its seconds, waits and rows written."""
    from django.utils import timezone

    from leads.models import Lead
    from scoring.models import LeadScore

    since = timezone.now()
    start = time.perf_counter()
    job, waits = lock_waits_during(action)
    took = time.perf_counter() - start
    entries = job.changed_entries
    scores = LeadScore.objects.filter(model=bench.model, updated_at__gte=since).count()
    leads = Lead.objects.filter(engagement_at__gte=since).count()
    print(
        f"{name}: {took:.2f} s; wrote {entries:,} ledger entries, {scores:,} score rows, "
        f"{leads:,} lead rows",
        flush=True,
    )
    return {"seconds": took, "waits": waits, "entries": entries, "scores": scores, "leads": leads}


def phase_rows(bench: Bench, what: str, product: dict[str, Any], bare: dict[str, Any]) -> list[Row]:
    """A product row beside its bare statement, and the lock-probe row; the agreement
    of the bare table with the product's scores goes into the notes."""
    agreed = bare_scores.agreement(bench.model, bare)
    print(
        f"agreement over {agreed['leads']:,} leads: same score {agreed['same_score']:.3f} %, "
        f"within one point {agreed['within_one']:.3f} %, same fit {agreed['same_fit']:.3f} %, "
        f"same engagement {agreed['same_engagement']:.3f} %"
    )
    if agreed["same_score"] < 99.9:
        print("WARNING: the bare statement and the product disagree on over 0.1 % of leads")
    bench.notes.append(
        f"{what.split(' (')[0]}: the bare table and the product's scores agree on "
        f"{agreed['same_score']:.2f} % of {agreed['leads']:,} leads (within one point: "
        f"{agreed['within_one']:.2f} %; same engagement to 1e-6: "
        f"{agreed['same_engagement']:.2f} %)."
    )
    written = (
        f"{product['entries']:,} entries, {product['scores']:,} scores, "
        f"{product['leads']:,} leads / {bare['rows']:,}"
    )
    runs = product.get("runs")
    if runs:
        what += f", median of {len(runs)}"
    return [
        Row(what, product["seconds"], bare["seconds"], bench.naive * bare["rows"], False, written),
        Row(probe_label(), late_share(product["waits"]), late_share(bare["waits"]), share=True),
    ]


def one_rule_rows(bench: Bench, activities: int, rescore) -> list[Row]:
    """A points change to one engagement rule (about 5 % of the activities), beside the
    bare statement over the leads it can move: those with an activity of its type."""
    from django.db import connection

    from scoring.models import Rule

    rule = Rule.objects.get(model=bench.model, name="Webinar attended")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM leads_activity WHERE type = %s", [rule.activity_type])
        matches = cursor.fetchone()[0]
    from scoring.changes import points_change, rule_snapshot, snapshot

    before = rule_snapshot(rule=rule)
    rule.points += 1
    rule.save(update_fields=["points", "updated_at"])
    points_before = points_change(before, snapshot(rule))
    lead_filter = (
        "EXISTS (SELECT 1 FROM leads_activity x WHERE x.lead_id = l.id AND x.type = %s)",
        [rule.activity_type],
    )
    bare = bare_phase(bench, "one rule", lead_filter)
    measured = product_run(
        bench, "one-rule rescore", lambda: rescore(rule, points_before=points_before)
    )
    share = 100 * matches / max(activities, 1)
    what = (
        f"One engagement rule's points changed ({rule.name}: {matches:,} activities, "
        f"{share:.1f} % of all, on {bare['rows']:,} leads)"
    )
    return phase_rows(bench, what, measured, bare)


def fit_rule_rows(bench: Bench, rescore) -> list[Row]:
    """One fit rule's condition and points changed so that it matches about 60 % of the
    leads ("Target industry" gains or loses retail, 10 ↔ 12 points), beside the bare
    statement over the leads it matched before or matches now."""
    from scoring.models import Rule
    from scoring.sql import fit_rule_condition

    rule = Rule.objects.get(model=bench.model, name="Target industry")
    old = fit_rule_condition(bare_scores.rule_spec(bench.model, rule.pk))
    values = [v for v in rule.value.split(",") if v]
    if "retail" in values:
        values.remove("retail")
        rule.points = 10
    else:
        values.append("retail")
        rule.points = 12
    rule.value = ",".join(values)
    rule.save(update_fields=["value", "points", "updated_at"])
    new = fit_rule_condition(bare_scores.rule_spec(bench.model, rule.pk))
    lead_filter = (f"(({old[0]}) OR ({new[0]}))", [*old[1], *new[1]])
    bare = bare_phase(bench, "fit rule", lead_filter)
    measured = product_run(bench, "fit-rule rescore", lambda: rescore(rule))
    share = 100 * bare["rows"] / max(bench.leads, 1)
    what = (
        f"One fit rule changed ({rule.name}: now {rule.value}, {rule.points} points; "
        f"{bare['rows']:,} leads, {share:.0f} % of all)"
    )
    return phase_rows(bench, what, measured, bare)


def fit_points_rows(bench: Bench, rescore) -> list[Row]:
    """A change of one fit rule's points alone ("Target industry", about half of the
    leads), which revalues its one award a lead, beside the bare statement over the
    leads the rule matches."""
    from scoring.changes import points_change, rule_snapshot, snapshot
    from scoring.models import Rule
    from scoring.sql import fit_rule_condition

    rule = Rule.objects.get(model=bench.model, name="Target industry")
    before = rule_snapshot(rule=rule)
    rule.points += 1
    rule.save(update_fields=["points", "updated_at"])
    points_before = points_change(before, snapshot(rule))
    matches = fit_rule_condition(bare_scores.rule_spec(bench.model, rule.pk))
    bare = bare_phase(bench, "fit points", (f"({matches[0]})", matches[1]))
    measured = product_run(
        bench, "fit-points rescore", lambda: rescore(rule, points_before=points_before)
    )
    share = 100 * bare["rows"] / max(bench.leads, 1)
    what = (
        f"One fit rule's points changed ({rule.name}: {points_before} → {rule.points} "
        f"points; {bare['rows']:,} leads, {share:.0f} % of all)"
    )
    return phase_rows(bench, what, measured, bare)


def decay_rows(bench: Bench) -> list[Row]:
    """The nightly decay beside one bare UPDATE of the same lead rows and columns; each
    run with the lock probe, the medians of ``--runs`` runs."""
    runs = bench.args.decay_runs or bench.args.runs
    product, product_waits, product_times = [], [], []
    for _ in range(runs):
        start = time.perf_counter()
        updated, waits = lock_waits_during(decay_product)
        product_times.append(time.perf_counter() - start)
        product.append(updated)
        product_waits += waits
    harness.vacuum_analyze()
    bare, bare_waits, bare_times = [], [], []
    for _ in range(runs):
        start = time.perf_counter()
        updated, waits = lock_waits_during(lambda: bare_decay_update(bench.model))
        bare_times.append(time.perf_counter() - start)
        bare.append(updated)
        bare_waits += waits
    print(f"decay: product {product_times} ({product} leads), bare {bare_times} ({bare} rows)")
    what = f"Nightly decay of every lead, median of {runs}"
    return [
        Row(
            what,
            statistics.median(product_times),
            statistics.median(bare_times),
            written=f"{product[-1]:,} leads / {bare[-1]:,}",
        ),
        Row(probe_label(), late_share(product_waits), late_share(bare_waits), share=True),
    ]


def drop_bare_table() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {bare_scores.TABLE}")
    bare_scores.drop_function()


def bulk_workers(processes: int, url: str) -> harness.Worker:
    """A production worker on the bulk queue with ``processes`` pool processes."""
    import redis

    redis.Redis.from_url(BROKER).flushdb()  # nothing left over from an earlier run
    args = ["-A", "crm", "worker", "--queues", "bulk", "--concurrency", str(processes)]
    args += ["--without-gossip", "--without-mingle", "--loglevel", "WARNING"]
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench-scoring", "LOG_LEVEL": "WARNING"}
    worker = harness.Worker(args, env, harness.ROOT / "var" / "bench" / "bulk-worker.log")
    worker.start()
    return worker


def wait_for(job, timeout: float = 4 * 3600):
    """The job once it ended, done or failed (a failure stops the benchmark)."""
    from scoring.models import RescoreStatus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status == RescoreStatus.DONE:
            return job
        if job.status == RescoreStatus.FAILED:
            raise SystemExit(f"rescore failed: {job.error}")
        time.sleep(0.1)
    raise SystemExit(f"rescore still {job.status} after {timeout:.0f} s")


# The lead table's indexes a rewrite of its score columns pays for, by what they serve,
# as patterns on their definitions: ``lead_update_seconds`` drops one group inside its
# rolled-back transaction. The primary key always stays.
INDEX_GROUPS = {
    "none": None,
    "trigram": "gin_trgm_ops",
    "score": r"\mscore\M",  # the lists' orders and the reports' covering index
    "all": "",
}


def lead_update_seconds(activity_type: str, *, drop: str = "none") -> float:
    """One UPDATE of the score columns of the leads with activities of the rule's type
    (the leads its change touches), rolled back, after dropping the ``drop`` group of
    the lead table's indexes (``INDEX_GROUPS``) inside the same transaction."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        # From the activities' (type, lead) index: the rule's ledger entries, millions
        # after a few changes, are read from the heap where the visibility map is stale.
        cursor.execute(
            "CREATE TEMP TABLE bench_leads ON COMMIT DROP AS "
            "SELECT DISTINCT lead_id FROM leads_activity WHERE type = %s",
            [activity_type],
        )
        cursor.execute("ANALYZE bench_leads")
        if INDEX_GROUPS[drop] is not None:
            cursor.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'leads_lead' "
                "AND indexname <> 'leads_lead_pkey' AND indexdef ~ %s",
                [INDEX_GROUPS[drop]],
            )
            for (name,) in cursor.fetchall():
                cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
        start = time.perf_counter()
        cursor.execute(
            "UPDATE leads_lead l SET engagement_score = l.engagement_score + 1, "
            "score = l.score + 1 FROM bench_leads b WHERE l.id = b.lead_id"
        )
        took = time.perf_counter() - start
        transaction.set_rollback(True)
    return took


def lead_write_split(model) -> None:
    """Print where a rewrite of the leads a rule change touches spends its time: the same
    UPDATE with every index of the lead table, without the trigram (search) indexes,
    without the indexes that hold the score (the lists' and the reports'), and with only
    the primary key. Printed, not recorded: none of them is a product figure."""
    from scoring.models import Rule

    rule = Rule.objects.get(model=model, name="Webinar attended")
    for drop, what in [
        ("none", "every index"),
        ("trigram", "without the trigram indexes"),
        ("score", "without the indexes holding the score"),
        ("all", "only the primary key"),
    ]:
        took = lead_update_seconds(rule.activity_type, drop=drop)
        print(f"UPDATE of the rule's leads, {what}: {took:.1f} s", flush=True)


def reset_ledger() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE scoring_scoreentry, scoring_rulematch, scoring_leadscore, scoring_rescorejob"
        )
        cursor.execute(
            "UPDATE leads_lead SET score = 0, fit_score = 0, engagement_score = 0, "
            "band = 'cold', grade = 'D', quadrant = 'cold'"
        )
        cursor.execute("VACUUM ANALYZE leads_lead")


def naive_loop_seconds_per_lead(model, sample: int) -> float:
    """The Django way without thought: per lead, load its activities, score, save."""
    from django.db import transaction
    from django.utils import timezone

    from leads.models import Lead
    from scoring.facts import activity_facts, lead_facts
    from scoring.rules import engagement_awards, fit_awards
    from scoring.ruleset import load_ruleset
    from scoring.score_formula import engagement_at, total_score

    ruleset = load_ruleset(fresh=True)
    compiled = next(m for m in ruleset.models if m.id == model.id)
    now = timezone.now()
    start = time.perf_counter()
    with transaction.atomic():
        for lead in Lead.objects.select_related("company").order_by("pk")[:sample]:
            rows = lead.activities.values_list(
                "id", "type", "occurred_at", "url", "duration_seconds", "properties"
            )
            slugs = list(lead.product_interests.values_list("slug", flat=True))
            awards = fit_awards(
                compiled.fit_rules, lead_facts(lead, slugs), ruleset.domain_lists, now
            ) + engagement_awards(compiled.engagement_rules, activity_facts(rows), now)
            engagement = engagement_at(
                ((a.points, a.at) for a in awards if a.activity_id), now, compiled.half_life_days
            )
            fit = sum(a.points for a in awards if a.activity_id is None)
            lead.score = total_score(fit, engagement, compiled.thresholds)
            lead.save(update_fields=["score"])
        transaction.set_rollback(True)
    return (time.perf_counter() - start) / sample


def decay_product() -> int:
    from scoring.decay import scores_decay

    return scores_decay()


# Real-time scoring's target: a score within a second of the event.
LOCK_PATIENCE = 1.0
# Time between one lead-lock probe's end and the next one's start.
PROBE_EVERY = 0.02


def lock_waits_during(action) -> tuple[object, list[float]]:
    """Run ``action`` while another connection locks one random lead at a time, the way
    real-time scoring does, giving up after ``LOCK_PATIENCE``; the action's result and
    each lock's wait (``LOCK_PATIENCE`` for those given up: the probe never stalls)."""
    import random
    import threading

    import psycopg2
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM leads_lead")
        lo, hi = cursor.fetchone()
    params = connection.get_connection_params()
    done, waits = threading.Event(), []

    def probe() -> None:
        conn = psycopg2.connect(**params)
        with conn.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = '{int(LOCK_PATIENCE * 1000)}ms'")
            conn.commit()
            while not done.is_set():
                start = time.perf_counter()
                try:
                    cursor.execute(
                        "SELECT 1 FROM leads_lead WHERE id = %s FOR UPDATE",
                        [random.randint(lo, hi)],
                    )
                    waits.append(time.perf_counter() - start)
                except psycopg2.errors.LockNotAvailable:
                    waits.append(LOCK_PATIENCE)
                conn.rollback()
                time.sleep(PROBE_EVERY)
        conn.close()

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        result = action()
    finally:
        done.set()
        thread.join()
    return result, waits


def late_share(waits: list[float]) -> float:
    """The share of the run's time the probe spent on tries it gave up: each try counts
    for its wait and the pause after it, so one given up counts a full second."""
    spans = [wait + PROBE_EVERY for wait in waits]
    late = sum(span for wait, span in zip(waits, spans, strict=True) if wait >= LOCK_PATIENCE)
    return late / max(sum(spans), 1e-9)


def bare_decay_update(model) -> int:
    """The least a decay can do: one UPDATE of the lead rows the product's decay writes
    (every lead with a primary score), setting the same columns from the same stored
    score in ``float8``, rolled back. The rows it updated."""
    from django.db import connection, transaction
    from django.utils import timezone

    t = model.thresholds
    half_life = model.decay_half_life_days
    decayed = (
        "ls.engagement * power(0.5::float8, greatest(date_part('epoch', %s::timestamptz "
        "- ls.engagement_at), 0) / %s::float8)"
        if half_life
        else "ls.engagement"
    )
    now = timezone.now()
    decay_params = [now, half_life * 86400.0] if half_life else []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE leads_lead l SET engagement_score = s.eff, engagement_at = %s,
                   score = s.score, fit_score = floor(s.fit + 0.5),
                   band = CASE WHEN s.score >= %s THEN 'hot' WHEN s.score >= %s THEN 'warm'
                               ELSE 'cold' END,
                   grade = CASE WHEN s.fit >= %s THEN 'A' WHEN s.fit >= %s THEN 'B'
                                WHEN s.fit >= %s THEN 'C' ELSE 'D' END,
                   quadrant = CASE WHEN s.fit >= %s AND s.eff >= %s THEN 'hot'
                                   WHEN s.fit >= %s THEN 'target'
                                   WHEN s.eff >= %s THEN 'researcher' ELSE 'cold' END
            FROM (SELECT ls.lead_id, ls.fit + ls.adjustment AS fit, e.eff,
                         floor(ls.fit + ls.adjustment + e.eff + 0.5) AS score
                  FROM scoring_leadscore ls CROSS JOIN LATERAL (SELECT {decayed} AS eff) e
                  WHERE ls.is_primary) s
            WHERE l.id = s.lead_id
            """,
            [
                now,
                t.hot,
                t.warm,
                t.grade_a,
                t.grade_b,
                t.grade_c,
                t.grade_b,
                t.engaged,
                t.grade_b,
                t.engaged,
                *decay_params,
            ],
        )
        updated = cursor.rowcount
        transaction.set_rollback(True)
    return updated


def probe_label() -> str:
    return f"… share of a lead-lock probe's time on tries of {LOCK_PATIENCE:.0f} s or more"


BARE_STYLES = {
    "windows": [
        "Its plan: a parallel scan of the activities joined to the rules and sorted by two",
        "workers and the leader (Gather Merge), the caps' window functions and the sum by",
        "lead in the leader alone (PostgreSQL 15 runs no window function in a worker).",
    ],
    "per-lead": [
        "Its plan: a parallel scan of the leads (Gather), each process scoring whole leads",
        "through a PARALLEL SAFE SQL function over the lead's activities.",
    ],
}


def render(bench: Bench) -> str:
    from django.conf import settings as django_settings

    model, args = bench.model, bench.args
    machine, settings, activities = bench.machine, bench.settings, bench.activities
    lines = [
        "## Scoring",
        "",
        f"Measured by `python bench/scoring.py --leads {bench.leads} --activities-per-lead "
        f"{args.activities_per_lead} --workers {args.workers} --runs {args.runs}"
        + (f" --decay-runs {args.decay_runs}" if args.decay_runs else "")
        + f" --bare {args.bare}` on "
        f"{machine}.",
        f"Data: {bench.leads:,} leads, {activities:,} activities (bench/generate.py), the "
        f"starter model ({len(bare_scores.compiled_model(model).fit_rules)} fit and "
        f"{len(bare_scores.compiled_model(model).engagement_rules)} engagement rules).",
        "PostgreSQL settings (the server's, unchanged): "
        + ", ".join(f"{k} {v}" for k, v in settings.items())
        + ". The bare statement sets "
        + ", ".join(f"{k} = {v}" for k, v in bare_scores.SESSION.items())
        + " for itself.",
        "",
        "| what | Hotlist | bare limit | ratio | naive Django loop (extrapolated) "
        "| rows written: Hotlist / bare |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in bench.rows:
        show = (lambda v: f"{100 * v:.1f} %") if row.share else harness.seconds
        ratio = "—" if row.share or not row.bare else f"{row.product / row.bare:.2f}x"
        naive = harness.seconds(row.naive) if row.naive else "—"
        bare = show(row.bare) if row.bare is not None else "—"
        lines.append(
            f"| {row.what} | {show(row.product)} | {bare} | {ratio} | {naive} "
            f"| {row.written or '—'} |"
        )
    where = (
        f"one production worker on the bulk queue with {args.workers} processes sharing its ranges"
        if args.workers
        else "this process, range after range"
    )
    lines += [
        "",
        "Phases (each after a `VACUUM (ANALYZE)` of the database; load average 1/5/15 min):",
        "",
        "| phase | VACUUM (ANALYZE) | load before | load after |",
        "| --- | --- | --- | --- |",
        *(
            f"| {name} | {harness.seconds(vacuum)} | {before} | {after} |"
            for name, before, after, vacuum in bench.phases
        ),
        "",
        f"A rescore runs as a job: its lead-id ranges run in {where}; the time is from",
        "queueing the job to its end. Hotlist writes its ledger (entries), the per-model",
        "scores and the lead rows; the bare statement writes one narrow row per lead it scores.",
        "**Bare limit**: the same scores (fit rules; engagement with recency, per-day and",
        "per-lead caps and the bonus; exponential decay with the model's half-life) computed",
        "in one parallel-capable SELECT in `float8` and written with `CREATE TABLE … AS`",
        "(logged, as the product's tables are; PostgreSQL 15 never runs `INSERT … SELECT`",
        "in parallel) into a table of (lead id, score, fit, engagement), then `ADD PRIMARY",
        "KEY`, its only index (`bench/bare_scores.py`). Same rows written: one score row per",
        "lead the row rescores; the product also writes its ledger and the lead rows.",
        *BARE_STYLES[bare_scores.STYLE],
        f"Bare figures are the median of {args.runs} runs; the last is checked against the",
        "product's scores. A row that rescores part of the leads (a rule change) has the",
        "bare statement score the leads that change can move. The naive loop loads each",
        "lead's activities through the ORM, scores them in Python and saves the lead; it is",
        "timed on a sample and multiplied by the leads the row scores. The nightly decay's",
        "bare figure is one UPDATE of the same lead rows and columns, rolled back.",
        *bench.notes,
        "Lead locks: during each run another connection locks a random lead every "
        f"{PROBE_EVERY * 1000:.0f} ms, as",
        f"real-time scoring does, giving up after {LOCK_PATIENCE:.0f} s; the row is the "
        "share of the run's time it spent on",
        "tries it gave up (each try counting for its wait and the pause after it). The bare",
        "rescore locks no lead (it writes its own table); the bare decay holds every lead",
        "until it ends; the product holds the leads of one range until it commits: "
        f"{django_settings.SCORING_RESCORE_RANGE:,}",
        f"lead ids for a rescore, {django_settings.SCORING_DECAY_RANGE:,} for the decay.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Scoring benchmarks: full rescore, a one-rule delta and the nightly decay.

    python bench/scoring.py --leads 1000000 --activities-per-lead 20

Each product figure stands beside the bare SQL of the same work and a naive Django
loop, measured in the same run on the same data, and the whole table is written to
docs/PERFORMANCE.md. The benchmark database is ``BENCH_DATABASE_URL`` (default
``hotlist_bench`` on the local PostgreSQL); ``--fresh`` rebuilds it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--activities-per-lead", type=int, default=20)
    parser.add_argument(
        "--naive-sample", type=int, default=2000, help="Leads the naive loop times."
    )
    parser.add_argument("--runs", type=int, default=3, help="Runs of the short measurements.")
    parser.add_argument("--fresh", action="store_true", help="Drop and regenerate the data.")
    parser.add_argument(
        "--reset-ledger", action="store_true", help="Empty the ledger to time a first rescore."
    )
    parser.add_argument(
        "--rows",
        default="first,full,rule,decay",
        help="Comma-separated rows to measure: first (only on an empty ledger), full, rule, "
        "decay; lead-write prints where a rewrite of the rule's leads spends its time.",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="Bulk worker processes that share a rescore's ranges (0: in this process).",
    )
    parser.add_argument("--no-record", action="store_true", help="Print only.")
    return parser.parse_args()


BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/6")


def main() -> None:
    args = parse()
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
    if leads == 0:
        print(f"Generating {args.leads:,} leads x {args.activities_per_lead} activities …")
        with harness.stopwatch() as took:
            generate.generate(leads=args.leads, activities_per_lead=args.activities_per_lead)
        leads, activities = generate.counts()
        print(f"  {leads:,} leads, {activities:,} activities in {took[0]:.0f} s")
    model = seed_starter_model()
    if args.reset_ledger:
        reset_ledger()
    worker = bulk_workers(args.workers, url) if args.workers else None
    try:
        rows = run_all(model, leads, activities, args)
    finally:
        if worker:
            worker.stop()
    if not rows:
        return
    table = render(rows, leads, activities, args.workers, args.runs)
    print(table)
    if not args.no_record:
        harness.record("scoring", table)
        print(f"Recorded in {harness.PERFORMANCE}")


def run_all(model, leads: int, activities: int, args: argparse.Namespace) -> list[tuple]:
    from django.db import connection

    from scoring.models import RescoreJob, ScoreEntry
    from scoring.rescore_jobs import rescore_job_run

    def rescore(rule=None, *, in_process: bool = not args.workers) -> RescoreJob:
        job = RescoreJob.objects.create(model=model, rule=rule, reason="benchmark")
        rescore_job_run(job_id=job.pk, in_process=in_process)
        return wait_for(job)

    wanted = set(args.rows.split(","))
    rows = []
    if wanted & {"first", "full"}:
        # Only the full rescores stand beside it; it takes minutes at a million leads.
        bare, bare_waits = lock_waits_during(lambda: bare_rescore_seconds(model))
        print(f"bare SQL rescore: {bare:.1f} s")
    naive = naive_loop_seconds_per_lead(model, args.naive_sample)
    print(f"naive ORM loop: {naive * 1000:.2f} ms per lead")

    if "first" in wanted and not ScoreEntry.objects.exists():
        with harness.stopwatch() as first:
            job = rescore()
        print(f"first full rescore: {first[0]:.1f} s, {job.changed_entries:,} entries")
        rows.append(
            ("Full rescore, empty ledger (writes every entry)", first[0], bare, naive * leads)
        )
    if "full" in wanted:
        with harness.stopwatch() as again:
            _, waits = lock_waits_during(rescore)
        print(f"full rescore, nothing changed: {again[0]:.1f} s")
        rows.append(("Full rescore, ledger up to date", again[0], bare, naive * leads))
        rows += wait_rows("full rescore", waits, bare_waits)
        if args.workers:
            with harness.stopwatch() as alone:
                rescore(in_process=True)
            print(f"full rescore, nothing changed, one process: {alone[0]:.1f} s")
            what = "… the same, its ranges one after another in one process"
            rows.append((what, alone[0], bare, naive * leads))
    if "rule" in wanted:
        rows += one_rule_rows(model, activities, rescore, naive * leads)
    if "lead-write" in wanted:
        lead_write_split(model)
    if "decay" in wanted:
        decay, decay_runs = harness.median_of(args.runs, decay_product)
        bare_decay, bare_runs = harness.median_of(args.runs, bare_decay_update)
        print(f"decay: product {decay_runs}, bare {bare_runs}")
        rows.append(("Nightly decay of every lead", decay, bare_decay, None))
        _, product_waits = lock_waits_during(decay_product)
        _, bare_waits = lock_waits_during(bare_decay_update)
        rows += wait_rows("decay", product_waits, bare_waits)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM scoring_scoreentry")
        print(f"ledger rows: {cursor.fetchone()[0]:,}")
    return rows


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


def one_rule_rows(model, activities: int, rescore, naive_total: float) -> list[tuple]:
    """A points change to one engagement rule, beside the least the database must do for
    it (one entry per match, one UPDATE of the leads it touches) and beside that UPDATE
    alone, with the lead table's indexes and without them: the floor of any design that
    keeps the primary score on the lead row."""
    from scoring.models import Rule, ScoreEntry

    rule = Rule.objects.get(model=model, name="Webinar attended")
    active = ScoreEntry.objects.filter(rule=rule, reversal_of__isnull=True, reversal__isnull=True)
    matches = active.count()
    leads = active.values("lead_id").distinct().count()
    bare, bare_waits = lock_waits_during(
        lambda: bare_rule_seconds(rule.pk, model.decay_half_life_days or 1e12)
    )
    print(f"bare SQL, one rule's matches: {bare:.1f} s ({matches:,} matches, {leads:,} leads)")
    rule.points += 1
    rule.save(update_fields=["points", "updated_at"])
    with harness.stopwatch() as delta:
        job, waits = lock_waits_during(lambda: rescore(rule))
    share = 100 * matches / max(activities, 1)
    print(f"one-rule delta: {delta[0]:.1f} s ({job.changed_entries:,} entries)")
    what = (
        f"One rule's points changed: {matches:,} matches ({share:.1f} % of activities) "
        f"on {leads:,} leads, {job.changed_entries:,} entries written"
    )
    indexed = lead_update_seconds(rule.activity_type)
    bare_heap = lead_update_seconds(rule.activity_type, drop="all")
    print(f"UPDATE of those leads alone: {indexed:.1f} s, without indexes {bare_heap:.1f} s")
    return [
        (what, delta[0], bare, naive_total),
        *wait_rows("one-rule rescore", waits, bare_waits),
        ("… beside one UPDATE of those leads' score columns alone", delta[0], indexed, None),
        ("… beside that UPDATE with no index on the lead table", delta[0], bare_heap, None),
    ]


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


def bare_rule_seconds(rule_id: int, half_life_days: float) -> float:
    """One entry per active match of the rule and one UPDATE of the leads it touches
    (score and engagement raised by the decayed points), rolled back."""
    from django.db import connection, transaction
    from django.utils import timezone

    now = timezone.now()
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE TEMP TABLE bench_matches ON COMMIT DROP AS
            SELECT e.lead_id, e.model_id, e.rule_id, e.activity_id, e.points, e.at
            FROM scoring_scoreentry e
            WHERE e.rule_id = %s AND e.reversal_of_id IS NULL AND NOT e.bonus
              AND NOT EXISTS (SELECT 1 FROM scoring_scoreentry r WHERE r.reversal_of_id = e.id)
            """,
            [rule_id],
        )
        cursor.execute(
            """
            INSERT INTO scoring_scoreentry
                (lead_id, model_id, rule_id, activity_id, kind, bonus, points, reason, at,
                 created_at)
            SELECT lead_id, model_id, rule_id, activity_id, 'engagement', false, points + 1,
                   'bench', at, %s
            FROM bench_matches
            """,
            [now],
        )
        cursor.execute(
            """
            UPDATE leads_lead l SET engagement_score = l.engagement_score + m.w,
                   score = floor(l.fit_score + l.engagement_score + m.w + 0.5)
            FROM (SELECT lead_id, sum(power(0.5, EXTRACT(EPOCH FROM (%s - at))
                                                 / (%s * 86400.0))) AS w
                  FROM bench_matches GROUP BY lead_id) m
            WHERE l.id = m.lead_id
            """,
            [now, half_life_days],
        )
        transaction.set_rollback(True)
    return time.perf_counter() - start


def reset_ledger() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE scoring_scoreentry, scoring_leadscore, scoring_rescorejob")
        cursor.execute(
            "UPDATE leads_lead SET score = 0, fit_score = 0, engagement_score = 0, "
            "band = 'cold', grade = 'D', quadrant = 'cold'"
        )
        cursor.execute("VACUUM ANALYZE leads_lead")


def bare_rescore_seconds(model) -> float:
    """One statement that scores every lead from the same rules, rolled back afterwards."""
    from django.db import connection, transaction
    from django.utils import timezone

    from scoring.bulk_awards import engagement_awards_sql, fit_awards_sql
    from scoring.ruleset import load_ruleset

    compiled = next(m for m in load_ruleset(fresh=True).models if m.id == model.id)
    now = timezone.now()
    hi = 2**62
    fit, fit_params = fit_awards_sql(compiled.fit_rules, ("TRUE", []), 0, hi, now)
    eng, eng_params = engagement_awards_sql(compiled.engagement_rules, ("TRUE", []), 0, hi, now)
    half_life = compiled.half_life_days or 1e12
    sql = f"""
        WITH fit AS ({fit}), eng AS ({eng}),
        totals AS (
            SELECT lead_id, sum(points) AS points FROM (
                SELECT lead_id, points FROM fit
                UNION ALL
                SELECT lead_id, points * power(0.5, EXTRACT(EPOCH FROM (%s - at))
                                                    / (%s * 86400.0)) FROM eng) x
            GROUP BY lead_id)
        UPDATE leads_lead SET score = floor(totals.points + 0.5)
        FROM totals WHERE leads_lead.id = totals.lead_id
    """
    params = [*fit_params, *eng_params, now, half_life]
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        transaction.set_rollback(True)
    return time.perf_counter() - start


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


def decay_product() -> None:
    from scoring.decay import scores_decay

    scores_decay()


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


def wait_rows(name: str, product: list[float], bare: list[float]) -> list[tuple]:
    """The row of the lead-lock probe during the product's run and the bare statement's
    (``late_share``); the tries themselves are printed."""
    for who, got in (("product", product), ("bare", bare)):
        print(
            f"lock waits during the {who} {name}: {len(got)} probes, "
            f"p50 {harness.pct(got, 50):.3f} s, p95 {harness.pct(got, 95):.3f} s, "
            f"{sum(w >= LOCK_PATIENCE for w in got)} of them {LOCK_PATIENCE:.0f} s or more, "
            f"{100 * late_share(got):.1f} % of the time"
        )
    what = f"… time a lead-lock probe spent on tries of {LOCK_PATIENCE:.0f} s or more during it"
    return [(what, late_share(product), late_share(bare), None, "share")]


def bare_decay_update() -> None:
    """The least a decay can do: one UPDATE of the score columns, rolled back."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE leads_lead SET engagement_score = engagement_score * power(0.5, 1.0 / 30), "
            "score = floor(fit_score + engagement_score * power(0.5, 1.0 / 30) + 0.5)"
        )
        transaction.set_rollback(True)


def render(rows: list[tuple], leads: int, activities: int, workers: int, runs: int) -> str:
    lines = [
        "## Scoring",
        "",
        f"Measured by `python bench/scoring.py` on {harness.machine()}.",
        f"Data: {leads:,} leads, {activities:,} activities (bench/generate.py), "
        "the starter model (14 fit and 14 engagement rules, 30-day half-life).",
        "",
        "| what | Hotlist | bare SQL, same work | ratio | naive Django loop (extrapolated) "
        "| naive / Hotlist |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for what, product, bare, naive, *unit in rows:
        show = (lambda share: f"{100 * share:.1f} %") if unit == ["share"] else harness.seconds
        naive_text = harness.seconds(naive) if naive else "—"
        speedup = f"{naive / product:.1f}x" if naive else "—"
        lines.append(
            f"| {what} | {show(product)} | {show(bare)} | "
            f"{f'{product / bare:.2f}x' if bare else '—'} | {naive_text} | {speedup} |"
        )
    where = (
        f"one production worker on the bulk queue with {workers} processes sharing its "
        "ranges (the machine's cores)"
        if workers
        else "this process, range after range"
    )
    lines += [
        "",
        f"A rescore runs as a job: its lead-id ranges run in {where}; the time is from",
        "queueing the job to its end.",
        "The bare SQL rescore is one statement computing every lead's score from the same",
        "rules (caps, bonus, decay) and writing it, rolled back; it keeps no ledger. The naive",
        "loop loads each lead's activities through the ORM, scores them in Python and saves",
        "the lead; it is timed on a sample and multiplied out.",
    ]
    if any(what.startswith("Nightly decay") for what, *_ in rows):
        lines[-1] += f" Decay figures are medians of {runs} runs."
    if any(row[4:] == ("share",) for row in rows):
        from django.conf import settings

        rescore, decay = settings.SCORING_RESCORE_RANGE, settings.SCORING_DECAY_RANGE
        lines += [
            "Lead locks: during each run (for the decay, one more run of each) another",
            f"connection locks a random lead every {PROBE_EVERY * 1000:.0f} ms, as real-time "
            "scoring does, giving up",
            f"after {LOCK_PATIENCE:.0f} s; the row is the share of the run's time it spent on "
            "tries it gave up",
            "(each try counting for its wait and the pause after it).",
            "A bare statement holds every lead it wrote until it ends; the product holds the",
            f"leads of one range until it commits: {rescore:,} lead ids for a rescore,",
            f"{decay:,} for the decay.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

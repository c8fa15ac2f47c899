"""Duplicate detection at scale: the nightly scan, a create's check and an import chunk's.

    python bench/duplicates.py --leads 1000000          # the issue's size; records
    python bench/duplicates.py --leads 1000000 --reuse  # keep the world built before
    python bench/duplicates.py --leads 20000 --no-record

Runs against its own PostgreSQL database (``BENCH_DATABASE_URL``, default
``hotlist_bench_duplicates``), rebuilt unless ``--reuse``. The leads come from
``bench/generate.py`` (a company per 20 leads, 60 % with a phone), then duplicates are
planted: 1 % of the leads get a ``+tag`` copy of another lead's mailbox, 1 % another
lead's phone written in national format, 1 % another lead's name spelled with one
letter changed at that lead's company. Each phase starts after a ``VACUUM (ANALYZE)``;
the load average is taken before and after it. Measured in one run:

1. the first scan (``duplicates_scan``): the keys of every lead computed in Python
   (``phonenumbers`` for the phones) and stored, then one statement finding the pairs;
2. a night: 1 % of the leads changed (their ``updated_at`` moved), then the incremental
   scan, which compares only those with everyone;
3. a create: a lead written through ``lead_save_profile`` (which compares it) and the
   warning read by ``lead_duplicates``, for leads sharing a phone with a stored one;
4. an import chunk: ``duplicates_record`` for 1,000 leads just inserted.

Beside each, the database's limit: the product's pair-finding statement replayed on a
plain psycopg2 connection, plus for the scans the key rows written by one
``INSERT … SELECT … ON CONFLICT`` with keys computed in SQL (lower-cased text and the
phone's digits: cheaper than the product's E.164), rolled back. And two naive nights,
timed on a sample of the changed leads and multiplied out: a Python loop over every
lead's keys, and an ORM query per changed lead and kind of evidence.

The table goes to docs/PERFORMANCE.md (section "duplicates").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hotlist_bench_duplicates"
)
PLANTED_MARK = "bench.duplicates.planted"


def log(text: str) -> None:
    print(text, flush=True)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true", help="Keep the world built before.")
    parser.add_argument("--naive-sample", type=int, default=20)
    parser.add_argument("--bare-runs", type=int, default=3, help="Runs of each bare statement.")
    parser.add_argument("--creates", type=int, default=50, help="Creates timed.")
    parser.add_argument("--chunks", type=int, default=3, help="Import chunks timed.")
    parser.add_argument("--no-record", action="store_true")
    return parser.parse_args()


@dataclass
class Row:
    name: str
    compared: int
    pairs: int | None
    product: float | None
    bare: float | None = None
    bare_detail: str = ""
    naive: float | None = None
    note: str = ""


@dataclass
class Run:
    rows: list[Row] = field(default_factory=list)
    phases: list[tuple[str, float, str, str]] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)


def main() -> None:
    args = parse()
    if not args.reuse:
        harness.drop_database(URL)
    os.environ.setdefault("HOTLIST_VAR_DIR", str(harness.ROOT / "var" / "bench-duplicates"))
    harness.setup_django(URL)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    build(args)
    run = Run()
    started = time.perf_counter()
    import psycopg2

    bare = psycopg2.connect(URL)
    first_scan(run, bare, args)
    changed = night(run, bare, args)
    naive_nights(run, changed, args)
    creates(run, bare, args)
    import_chunks(run, bare, args)
    bare.close()
    table = report(run, args, time.perf_counter() - started)
    print(table)
    if not args.no_record:
        harness.record("duplicates", table)


# --- The world ---------------------------------------------------------------------------


def build(args: argparse.Namespace) -> None:
    """The leads with their planted duplicates; with ``--reuse`` the ones built before,
    their keys and pairs cleared so that the first scan is a first scan again."""
    from django.db import connection

    from leads.models import DuplicatePair, DuplicateSettings, Lead, LeadMatchKey

    if args.reuse and _planted():
        log(f"Reusing {Lead.objects.count():,} leads; clearing their keys and pairs.")
        with connection.cursor() as cursor:
            cursor.execute(
                f"TRUNCATE {LeadMatchKey._meta.db_table}, {DuplicatePair._meta.db_table}"
            )
        DuplicateSettings.objects.all().delete()
        return
    if Lead.objects.exists():
        raise SystemExit("The benchmark database holds an unfinished world: run without --reuse.")
    import generate

    started = time.perf_counter()
    generate.generate(leads=args.leads, activities_per_lead=0)
    plant_duplicates()
    log(f"world: {args.leads:,} leads in {time.perf_counter() - started:.0f} s")


def _planted() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT obj_description('leads_lead'::regclass, 'pg_class')")
        return cursor.fetchone()[0] == PLANTED_MARK


def plant_duplicates() -> None:
    """1 % each: a mailbox with a +tag, a phone in national format, a misspelled name."""
    from django.db import connection

    with connection.cursor() as cursor:
        # Names of their own first: the generated "Lead Number 17" are all alike.
        cursor.execute(
            "UPDATE leads_lead SET first_name = initcap(substr(md5(id::text), 1, 6)), "
            "last_name = initcap(substr(md5(id::text || 'x'), 1, 9))"
        )
        cursor.execute(
            """
            UPDATE leads_lead l SET email = split_part(o.email, '@', 1) || '+x' || l.id
                || '@' || split_part(o.email, '@', 2)
            FROM leads_lead o WHERE o.id = l.id - 1 AND l.id % 100 = 1
            """
        )
        cursor.execute(
            """
            UPDATE leads_lead l SET phone = '030 ' || substr(o.phone, 8), country = 'DE'
            FROM leads_lead o
            WHERE o.id = l.id - 1 AND l.id % 100 = 2 AND o.phone <> ''
            """
        )
        cursor.execute(
            """
            UPDATE leads_lead l SET first_name = o.first_name,
                last_name = overlay(o.last_name placing 'x' from 3 for 1),
                company_id = o.company_id
            FROM leads_lead o WHERE o.id = l.id - 1 AND l.id % 100 = 3
            """
        )
        cursor.execute(f"COMMENT ON TABLE leads_lead IS '{PLANTED_MARK}'")


# --- Phases -----------------------------------------------------------------------------


def vacuum_analyze() -> float:
    """``VACUUM (ANALYZE, SKIP_LOCKED)`` of the benchmark database; its seconds. A table
    locked elsewhere is skipped rather than waited for: on a shared server another
    database's open transaction may hold a lock on a shared catalog for minutes."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE, SKIP_LOCKED)")
    return time.perf_counter() - started


def phase(run: Run, name: str):
    """VACUUM (ANALYZE), then the load before; call the result after the phase."""
    took = vacuum_analyze()
    before = harness.load_average()
    log(f"{name}: VACUUM (ANALYZE) {took:.1f} s, load {before}")

    def done() -> None:
        run.phases.append((name, took, before, harness.load_average()))

    return done


def first_scan(run: Run, bare, args: argparse.Namespace) -> None:
    from leads.duplicates import EVERYONE, duplicates_scan

    done = phase(run, "first scan")
    keys_bare = bare_keys(bare, ids=None)
    vacuum_keys(bare)  # the rolled-back rows gone, as before a real first scan
    with harness.stopwatch() as took:
        result = duplicates_scan()
    statement = bare_pairs(bare, EVERYONE, args.bare_runs if args.leads <= 100_000 else 1)
    run.rows.append(
        Row(
            "first scan: keys of every lead, then one statement for the pairs",
            result.leads,
            result.pairs,
            took[0],
            keys_bare + statement,
            f"{harness.seconds(keys_bare)} keys + {harness.seconds(statement)} pairs",
        )
    )
    log(f"  {result} in {took[0]:.1f} s; bare {keys_bare:.1f} + {statement:.1f} s")
    done()


def night(run: Run, bare, args: argparse.Namespace) -> list[int]:
    from leads.duplicates import UNSCANNED

    changed = touch(args.leads // 100)
    done = phase(run, "a night")
    keys_bare = bare_keys(bare, ids=changed)
    with harness.stopwatch() as took:
        from leads.duplicates import duplicates_scan

        result = duplicates_scan()
    statement = bare_pairs(bare, UNSCANNED, args.bare_runs, unscanned=changed)
    run.rows.append(
        Row(
            "a night: 1 % of the leads changed, incremental scan",
            result.leads,
            result.pairs,
            took[0],
            keys_bare + statement,
            f"{harness.seconds(keys_bare)} keys + {harness.seconds(statement)} pairs",
        )
    )
    log(f"  {result} in {took[0]:.2f} s; bare {keys_bare:.2f} + {statement:.2f} s")
    done()
    return changed


def vacuum_keys(bare) -> None:
    bare.autocommit = True
    with bare.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) leads_leadmatchkey")
    bare.autocommit = False


def touch(count: int) -> list[int]:
    """A night's changes: ``count`` leads edited (spread over the table)."""
    from django.utils import timezone

    from leads.models import Lead

    ids = list(Lead.objects.order_by("?").values_list("pk", flat=True)[:count])
    Lead.objects.filter(pk__in=ids).update(updated_at=timezone.now())
    return sorted(ids)


def naive_nights(run: Run, changed: list[int], args: argparse.Namespace) -> None:
    from leads.models import LeadMatchKey

    done = phase(run, "naive nights")
    everyone = list(
        LeadMatchKey.objects.values_list("lead_id", "email_key", "phone_key", "company_key")
    )
    wanted = set(changed[: args.naive_sample])
    mine = {row[0]: row for row in everyone if row[0] in wanted}
    sample = [pk for pk in changed[: args.naive_sample] if pk in mine]
    started = time.perf_counter()
    for pk in sample:
        _, email, phone, company = mine[pk]
        for other in everyone:
            if other[0] == pk:
                continue
            _ = (
                (email and email == other[1])
                or (phone and phone == other[2])
                or (company and company == other[3])
            )
    python = (time.perf_counter() - started) / max(len(sample), 1) * len(changed)
    started = time.perf_counter()
    for pk in sample:
        orm_per_lead(pk)
    orm = (time.perf_counter() - started) / max(len(sample), 1) * len(changed)
    run.rows.append(
        Row(
            "naive night: each changed lead against every lead's keys in Python",
            len(changed),
            None,
            None,
            naive=python,
            note="mailbox, phone and company compared; no name similarity",
        )
    )
    run.rows.append(
        Row(
            "naive night: an ORM query per changed lead and kind of evidence",
            len(changed),
            None,
            None,
            naive=orm,
            note="through the same indexes",
        )
    )
    log(f"  naive: {python:.0f} s in Python, {orm:.0f} s per lead through the ORM")
    done()


def orm_per_lead(pk: int) -> list[int]:
    """The obvious Django way: the lead's keys, then a query per kind of evidence."""
    from django.contrib.postgres.search import TrigramSimilarity

    from leads.models import LeadMatchKey

    keys = LeadMatchKey.objects.get(pk=pk)
    others = LeadMatchKey.objects.exclude(pk=pk)
    found = []
    if keys.email_key:
        found += others.filter(email_key=keys.email_key).values_list("pk", flat=True)
    if keys.phone_key:
        found += others.filter(phone_key=keys.phone_key).values_list("pk", flat=True)
    if keys.company_key and keys.name_key:
        alike = (
            others.filter(company_key=keys.company_key)
            .exclude(name_key="")
            .annotate(alike=TrigramSimilarity("name_key", keys.name_key))
            .filter(alike__gte=0.6)
        )
        found += alike.values_list("pk", flat=True)
    return found


def creates(run: Run, bare, args: argparse.Namespace) -> None:
    """Leads created one at a time, each sharing a stored lead's phone, rolled back."""
    from django.db import transaction

    from crm.models import User
    from leads.duplicates import duplicates_record, lead_duplicates, picked_leads
    from leads.models import Lead
    from leads.profiles import lead_save_profile

    done = phase(run, "creates")
    admin = User.objects.filter(is_superuser=True).first() or User.objects.create_superuser(
        "bench-admin", "bench-admin@example.invalid", "x"
    )
    with_phone = list(
        Lead.objects.exclude(phone="").order_by("?").values_list("pk", "phone")[: args.creates]
    )
    writes, checks, warned, statements = [], [], 0, []
    for n, (stored, phone) in enumerate(with_phone):
        with transaction.atomic():
            lead = Lead(email=f"bench-create-{n}@example.invalid", phone=phone, first_name="Bench")
            started = time.perf_counter()
            lead_save_profile(lead=lead, changed_fields=["email", "phone", "first_name"])
            found = lead_duplicates(lead=lead, user=admin)
            writes.append(time.perf_counter() - started)
            warned += bool(found)
            started = time.perf_counter()
            duplicates_record(lead_ids=[lead.pk])
            checks.append(time.perf_counter() - started)
            transaction.set_rollback(True)
        if n < args.bare_runs:
            statements.append(bare_pairs(bare, picked_leads([stored]), 1))
    run.facts["creates warned"] = f"{warned} of {len(with_phone)}"
    run.rows.append(
        Row(
            "a create: lead_save_profile (which compares it) and the warning, p50",
            1,
            None,
            statistics.median(writes),
            statistics.median(statements) if statements else None,
            "the pairs statement for the stored lead whose phone it shares",
            note=f"p95 {_ms(harness.pct(writes, 95))}; the comparison alone "
            f"(duplicates_record) p50 {_ms(statistics.median(checks))}, "
            f"p95 {_ms(harness.pct(checks, 95))}; {warned} of {len(with_phone)} warned",
        )
    )
    log(
        f"  create p50 {statistics.median(writes) * 1000:.1f} ms, check p50 "
        f"{statistics.median(checks) * 1000:.1f} ms"
    )
    done()


def import_chunks(run: Run, bare, args: argparse.Namespace) -> None:
    """``duplicates_record`` for 1,000 leads just inserted, as an import chunk does: each
    a copy of a stored lead with a tagged mailbox, so every one has a pair."""
    from django.db import transaction
    from django.utils import timezone

    from leads.duplicates import duplicates_record, picked_leads
    from leads.models import Lead

    done = phase(run, "import chunks")
    times, found, statements = [], 0, []
    columns = ("first_name", "last_name", "email", "phone", "country", "company_id")
    for n in range(args.chunks):
        stored = Lead.objects.filter(pk__gt=n * 997).order_by("pk").values(*columns)[:1000]
        now = timezone.now()
        with transaction.atomic():
            new = []
            for row in stored:
                local, _, domain = row["email"].partition("@")
                row["email"] = f"{local}+chunk{n}@{domain}"
                new.append(Lead(**row, created_at=now, stage_changed_at=now))
            Lead.objects.bulk_create(new, batch_size=1000)
            started = time.perf_counter()
            found += len(duplicates_record(lead_ids=[lead.pk for lead in new]))
            times.append(time.perf_counter() - started)
            transaction.set_rollback(True)
    # The bare statement on the chunk's leads needs them stored: a chunk of stored leads.
    stored = list(Lead.objects.order_by("pk").values_list("pk", flat=True)[:1000])
    statements.append(bare_pairs(bare, picked_leads(stored), args.bare_runs))
    run.rows.append(
        Row(
            "an import chunk: duplicates_record for 1,000 new leads, median",
            1000,
            found // max(args.chunks, 1),
            statistics.median(times),
            statistics.median(statements),
            "the pairs statement for 1,000 stored leads",
            note=f"of {args.chunks} chunks (each rolled back)",
        )
    )
    log(f"  chunk median {statistics.median(times):.2f} s")
    done()


# --- The database's limit ---------------------------------------------------------------


def bare_keys(bare, *, ids: list[int] | None) -> float:
    """One INSERT … SELECT … ON CONFLICT writing the leads' key rows (every lead's, or
    these), keys computed in SQL; rolled back. Seconds."""
    where = "" if ids is None else "WHERE l.id = ANY(%s)"
    statement = f"""
        INSERT INTO leads_leadmatchkey
            (lead_id, email_key, phone_key, name_key, company_key, lead_updated_at, scanned)
        SELECT l.id, left(lower(l.email), 254),
               left(regexp_replace(l.phone, '[^0-9]', '', 'g'), 20),
               left(lower(l.first_name || ' ' || l.last_name), 201),
               left(lower(coalesce(c.name, '')), 200), l.updated_at, {ids is None}
        FROM leads_lead l LEFT JOIN leads_company c ON c.id = l.company_id {where}
        ON CONFLICT (lead_id) DO UPDATE SET email_key = EXCLUDED.email_key,
            phone_key = EXCLUDED.phone_key, name_key = EXCLUDED.name_key,
            company_key = EXCLUDED.company_key, lead_updated_at = EXCLUDED.lead_updated_at,
            scanned = EXCLUDED.scanned
    """
    with bare.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(statement, [ids] if ids is not None else [])
        took = time.perf_counter() - started
    bare.rollback()
    return took


def bare_pairs(bare, picked, runs: int, *, unscanned: list[int] | None = None) -> float:
    """The product's pair-finding statement for ``picked``, median seconds of ``runs``,
    rows fetched; ``unscanned`` keys are marked so first (rolled back)."""
    from leads.duplicates import _matches_sql
    from leads.models import DuplicateSettings

    sql, params = _matches_sql(picked)
    times = []
    for _ in range(runs):
        with bare.cursor() as cursor:
            threshold = str(DuplicateSettings.load().name_similarity)
            cursor.execute(
                "SELECT set_config('pg_trgm.similarity_threshold', %s, true), "
                "set_config('jit', 'off', true)",
                [threshold],
            )
            if unscanned:
                cursor.execute(
                    "UPDATE leads_leadmatchkey SET scanned = false WHERE lead_id = ANY(%s)",
                    [unscanned],
                )
            started = time.perf_counter()
            cursor.execute(sql, params)
            cursor.fetchall()
            times.append(time.perf_counter() - started)
        bare.rollback()
    return statistics.median(times)


# --- The report -------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else harness.seconds(value)


def _time(value: float | None) -> str:
    return "—" if value is None else _ms(value)


def report(run: Run, args: argparse.Namespace, took: float) -> str:
    settings = harness.server_settings()
    lines = [
        f"| {row.name} | {row.compared:,} | {'—' if row.pairs is None else f'{row.pairs:,}'} | "
        f"{_time(row.product)} | {_time(row.bare)}"
        f"{f' ({row.bare_detail})' if row.bare_detail and row.bare is not None else ''} | "
        f"{f'{row.product / row.bare:.1f}x' if row.product and row.bare else '—'} | "
        f"{_time(row.naive)} | {row.note} |"
        for row in run.rows
    ]
    phases = [
        f"| {name} | {harness.seconds(vacuum)} | {before} | {after} |"
        for name, vacuum, before, after in run.phases
    ]
    return "\n".join(
        [
            f"## Duplicate detection at {args.leads:,} leads",
            "",
            f"Measured by `python bench/duplicates.py --leads {args.leads}"
            f"{' --reuse' if args.reuse else ''}` on "
            f"{harness.machine()}; the measurement took {took / 60:.0f} min.",
            f"Data: {args.leads:,} leads (bench/generate.py: a company per 20 leads, 60 % "
            "with a phone), 3 % planted duplicates (a `+tag` mailbox, a phone in national "
            "format, a name one letter off at the same company).",
            "PostgreSQL settings (the server's, unchanged): "
            + ", ".join(f"{k} {v}" for k, v in settings.items())
            + ".",
            "",
            "| run | leads compared | pairs found | Hotlist | bare limit | ratio | naive "
            "(extrapolated) | notes |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            *lines,
            "",
            "Phases (each after a `VACUUM (ANALYZE, SKIP_LOCKED)` of the database; load "
            "average 1/5/15 min):",
            "",
            "| phase | VACUUM (ANALYZE) | load before | load after |",
            "| --- | --- | --- | --- |",
            *phases,
            "",
            "**Bare limit**: the product's own pair-finding statement replayed on a plain "
            "psycopg2 connection with the product's settings (the similarity threshold, "
            "`jit` off), rows fetched (median of "
            f"{args.bare_runs} runs; one for a first scan above 100,000 leads), plus for "
            "the scans the key rows written by one `INSERT … SELECT … ON CONFLICT` with "
            "keys computed in SQL (lower-cased text and the phone's digits, cheaper than "
            "E.164), rolled back. What the product does beyond it: the keys computed in "
            "Python (`phonenumbers`), and the pairs written to the review queue. "
            "**Naive**: timed on "
            f"{args.naive_sample} changed leads and multiplied out.",
        ]
    )


if __name__ == "__main__":
    main()

"""The nightly duplicate scan: a first scan of every lead, then a night's changes.

    python bench/duplicates.py                       # 100,000 leads
    python bench/duplicates.py --leads 1000000       # the issue's size (a quiet machine)
    python bench/duplicates.py --leads 20000 --no-record

Runs against its own PostgreSQL database (``BENCH_DATABASE_URL``, default
``hotlist_bench_duplicates``), rebuilt every run. The leads come from
``bench/generate.py`` (a company per 20 leads, 60 % with a phone), then duplicates are
planted: 1 % of the leads get a ``+tag`` copy of another lead's mailbox, 1 % another
lead's phone written in national format, 1 % another lead's name spelled with one
letter changed at that lead's company. Measured in one run:

1. the first scan (``duplicates_scan``): the keys of every lead computed in Python
   (``phonenumbers`` for the phones) and stored, then one SQL statement finding the
   pairs by the keys' indexes;
2. a night: 1 % of the leads changed (their ``updated_at`` moved), then the incremental
   scan, which compares only those with everyone;
3. a naive nightly check for contrast: each changed lead compared in Python with every
   lead's keys, timed on a sample of changed leads and multiplied out.

The table goes to docs/PERFORMANCE.md (section "duplicates").
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hotlist_bench_duplicates"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--naive-sample", type=int, default=20)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    harness.drop_database(URL)
    harness.setup_django(URL)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import generate

    started = time.perf_counter()
    generate.generate(leads=args.leads, activities_per_lead=0)
    plant_duplicates()
    harness.vacuum_analyze()
    print(f"world: {args.leads} leads in {time.perf_counter() - started:.0f} s")

    from leads.duplicates import duplicates_scan

    with harness.stopwatch() as first_time:
        first = duplicates_scan()
    changed = touch(args.leads // 100)
    with harness.stopwatch() as night_time:
        night = duplicates_scan()
    naive = naive_night(changed, args.naive_sample)
    table = report(args.leads, first, first_time[0], night, night_time[0], naive)
    print(table)
    if not args.no_record:
        harness.record("duplicates", table)


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


def touch(count: int) -> list[int]:
    """A night's changes: ``count`` leads edited (spread over the table)."""
    from django.utils import timezone

    from leads.models import Lead

    ids = list(Lead.objects.order_by("?").values_list("pk", flat=True)[:count])
    Lead.objects.filter(pk__in=ids).update(updated_at=timezone.now())
    return ids


def naive_night(changed: list[int], sample: int) -> float:
    """Seconds a Python loop comparing each changed lead with every lead would take."""
    from leads.duplicates import lead_keys
    from leads.models import Lead

    everyone = [lead_keys(lead) for lead in Lead.objects.select_related("company").iterator(2000)]
    started = time.perf_counter()
    for pk in changed[:sample]:
        mine = next(k for k in everyone if k.lead_id == pk)
        for other in everyone:
            if other.lead_id == pk:
                continue
            _ = (
                (mine.email_key and mine.email_key == other.email_key)
                or (mine.phone_key and mine.phone_key == other.phone_key)
                or (mine.company_key and mine.company_key == other.company_key)
            )
    per_lead = (time.perf_counter() - started) / max(min(sample, len(changed)), 1)
    return per_lead * len(changed)


def report(leads: int, first, first_s: float, night, night_s: float, naive_s: float) -> str:
    rows = [
        ("first scan (keys of every lead, then one statement)", first.leads, first.pairs, first_s),
        ("a night: 1 % of the leads changed, incremental scan", night.leads, night.pairs, night_s),
        ("naive: each changed lead against every lead in Python", night.leads, None, naive_s),
    ]
    lines = [
        f"| {name} | {compared:,} | {'—' if pairs is None else f'{pairs:,}'} | "
        f"{harness.seconds(took)} |"
        for name, compared, pairs, took in rows
    ]
    return "\n".join(
        [
            "## Nightly duplicate scan",
            "",
            f"{harness.machine()}; {leads:,} leads, 3 % planted duplicates (mailbox, phone, "
            f"name at one company), `python bench/duplicates.py --leads {leads}`. The naive "
            "row is timed on a sample of the changed leads and multiplied out.",
            "",
            "| run | leads compared | pairs found | time |",
            "| --- | ---: | ---: | ---: |",
            *lines,
        ]
    )


if __name__ == "__main__":
    main()

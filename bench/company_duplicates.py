"""Duplicate companies: the nightly scan's first run and a night's, how many planted
twins it pairs, and a merge of two big companies with the rescore of their leads.

    python bench/company_duplicates.py                     # 400,000 leads, 20,000 companies
    python bench/company_duplicates.py --leads 100000 --no-record

Runs against its own PostgreSQL database (``BENCH_DATABASE_URL``, default
``hotlist_bench_company_duplicates``), rebuilt every run. The leads and companies come
from ``bench/generate.py`` (a company per 20 leads, each with a website its leads write
from, 12 % of the addresses at gmail.com). The companies get names as companies have
them: two made-up words, a word many companies share ("Systems", "Consulting") and a
legal form. Then 1 % of the companies each get a twin of four kinds (``KINDS``): the
website written with ``www.``; the name under another legal form; the name with one
letter changed; another name, with a lead writing from the original's domain. Measured
in one run:

1. the first scan (``company_duplicates_scan``): every company's keys, then one
   statement; and how many twins it paired with their original;
2. a night: 1 % of the companies renamed, then the scan, which compares only those;
3. a merge of two records of one company carrying ``--merge-leads`` leads each, whose
   fit a rule on the company's industry decides: every lead is rescored in the merge.

The table goes to docs/PERFORMANCE.md (section "company-duplicates").
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
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hotlist_bench_company_duplicates"
)
SHARED_WORDS = ("Systems", "Consulting", "Group", "Solutions", "Services", "Partners", "Labs")
LEGAL_FORMS = ("GmbH", "Inc.", "Ltd", "SA", "LLC", "AG", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=400_000)
    parser.add_argument("--merge-leads", type=int, default=2_000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    harness.drop_database(URL)
    harness.setup_django(URL)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import generate

    started = time.perf_counter()
    generate.generate(leads=args.leads, activities_per_lead=0)
    planted = name_and_plant()
    harness.vacuum_analyze()
    print(f"world: {args.leads} leads in {time.perf_counter() - started:.0f} s")

    from leads.company_duplicates import company_duplicates_scan

    with harness.stopwatch() as first_time:
        first = company_duplicates_scan()
    found = found_twins()
    rename(first.companies // 100)
    with harness.stopwatch() as night_time:
        night = company_duplicates_scan()
    merge_s = big_merge(args.merge_leads)
    table = report(args, first, first_time[0], night, night_time[0], planted, found, merge_s)
    print(table)
    if not args.no_record:
        harness.record("company-duplicates", table)


KINDS = {
    # kind: (which companies, the twin's name, the twin's website)
    "website": (1, "split_part(name, ' ', 1) || ' Holding'", "'www.' || domain"),
    "legal form": (2, "replace(name, ' GmbH', '') || ' Inc.'", "''"),
    "misspelt": (3, "overlay(name placing 'q' from 3 for 1)", "''"),
    "leads' domain": (4, "initcap(substr(md5(id::text || 'z'), 1, 9))", "''"),
}


def name_and_plant() -> int:
    """Names as companies have them (two made-up words, a word many share, a legal
    form), then 1 % of the companies each get a twin of each kind (``KINDS``), marked in
    its city; the twin of "leads' domain" gets a lead writing from the original's
    domain. How many twins."""
    from django.db import connection

    shared = "ARRAY[" + ", ".join(f"'{w}'" for w in SHARED_WORDS) + "]"
    forms = "ARRAY[" + ", ".join(f"'{f}'" for f in LEGAL_FORMS) + "]"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE leads_company SET name = initcap(substr(md5(id::text), 1, 7)) || ' '
                || initcap(substr(md5(id::text || 'y'), 1, 6)) || ' '
                || ({shared})[1 + id % {len(SHARED_WORDS)}] || ' '
                || ({forms})[1 + id % {len(LEGAL_FORMS)}]
            """
        )
        cursor.execute("SELECT max(id) FROM leads_company")
        last = cursor.fetchone()[0]
        for rest, name, domain in KINDS.values():
            cursor.execute(
                f"""
                INSERT INTO leads_company (name, domain, industry, employee_count, country,
                                           region, city, created_at)
                SELECT {name}, {domain}, industry, employee_count, country, '',
                       'twin-of-' || id, now()
                FROM leads_company WHERE id <= {last} AND id % 100 = {rest}
                """
            )
        cursor.execute(
            f"""
            INSERT INTO leads_lead (first_name, last_name, email, phone, job_title, seniority,
                department, country, region, city, source, campaign, utm_source, utm_medium,
                utm_campaign, utm_term, utm_content, budget, authority, need, timeline,
                stage, stage_changed_at, disqualification_reason, email_status, custom_fields,
                score, fit_score, engagement_score, band, grade, quadrant, created_at,
                updated_at, company_id)
            SELECT 'Planted', 'Lead', 'planted' || t.id || '@' || o.domain, '', '', '', '',
                   '', '', '', 'website', '', '', '', '', '', '', '', '', '', '', 'new', now(),
                   '', 'valid', '{{}}'::jsonb, 0, 0, 0, 'cold', 'D', 'cold', now(), now(), t.id
            FROM leads_company t JOIN leads_company o ON t.city = 'twin-of-' || o.id
            WHERE o.id % 100 = {KINDS["leads' domain"][0]}
            """
        )
        cursor.execute(f"SELECT count(*) FROM leads_company WHERE id > {last}")
        return cursor.fetchone()[0]


def found_twins() -> dict[str, int]:
    """Per kind, how many planted twins the queue pairs with their original."""
    from django.db import connection

    found = {}
    with connection.cursor() as cursor:
        for kind, (rest, _, _) in KINDS.items():
            cursor.execute(
                f"""
                SELECT count(*) FROM leads_company t
                JOIN leads_company o ON t.city = 'twin-of-' || o.id AND o.id % 100 = {rest}
                JOIN leads_companyduplicatepair p
                  ON p.company_a_id = LEAST(o.id, t.id) AND p.company_b_id = GREATEST(o.id, t.id)
                """
            )
            found[kind] = cursor.fetchone()[0]
    return found


def rename(count: int) -> None:
    """A night's changes: ``count`` companies renamed (spread over the table)."""
    from django.db.models import F, Value
    from django.db.models.functions import Concat

    from leads.models import Company

    ids = list(Company.objects.order_by("?").values_list("pk", flat=True)[:count])
    Company.objects.filter(pk__in=ids).update(name=Concat(F("name"), Value(" Europe")))


def big_merge(leads_each: int) -> float:
    """Seconds to merge two records of one company carrying ``leads_each`` leads each."""
    from django.db.models import Min

    from leads.company_merging import companies_merge
    from leads.models import Company, Lead
    from scoring.models import Rule, ScoringModel

    model = ScoringModel.objects.create(name="Bench", status="active", is_default=True)
    Rule.objects.create(
        model=model,
        name="Finance",
        kind="fit",
        points=20,
        field="company.industry",
        operator="equals",
        value="finance",
    )
    old = Company.objects.create(name="Bigcorp", domain="bigcorp.example", industry="retail")
    new = Company.objects.create(name="Bigcorp Inc.", domain="", industry="finance")
    first = Lead.objects.aggregate(first=Min("pk"))["first"]
    Lead.objects.filter(pk__gte=first, pk__lt=first + leads_each).update(company=old)
    Lead.objects.filter(pk__gte=first + leads_each, pk__lt=first + 2 * leads_each).update(
        company=new
    )
    with harness.stopwatch() as took:
        companies_merge(survivor_id=old.pk, others=[new.pk], fields={"industry": new.pk})
    return took[0]


def report(args, first, first_s, night, night_s, planted, found, merge_s) -> str:
    rows = [
        ("first scan (keys of every company, then one statement)", first, first_s),
        ("a night: 1 % of the companies renamed, incremental scan", night, night_s),
    ]
    lines = [
        f"| {name} | {result.companies:,} | {result.pairs:,} | {harness.seconds(took)} |"
        for name, result, took in rows
    ]
    lines.append(
        f"| merge of two companies with {args.merge_leads:,} leads each, every lead "
        f"rescored | 2 | — | {harness.seconds(merge_s)} |"
    )
    return "\n".join(
        [
            "## Duplicate companies",
            "",
            f"{harness.machine()}; {args.leads:,} leads at {args.leads // 20:,} companies "
            "named with two made-up words, a word one in seven shares and a legal form; "
            f"{planted:,} planted twins, a quarter of each kind; "
            f"`python bench/company_duplicates.py --leads {args.leads}`.",
            "",
            "| run | companies compared | pairs found | time |",
            "| --- | ---: | ---: | ---: |",
            *lines,
            "",
            "Planted twins the first scan paired with their original:",
            "",
            "| twin | paired |",
            "| --- | ---: |",
            *(f"| {kind} | {n:,} of {planted // len(KINDS):,} |" for kind, n in found.items()),
        ]
    )


if __name__ == "__main__":
    main()

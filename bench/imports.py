"""Imports at scale: a CSV of leads and a CSV of their activity history through the
product's import, beside PostgreSQL ``COPY`` of the same rows and a naive ORM loop.

    python bench/imports.py                                    # 1,000,000 and 10,000,000 rows
    python bench/imports.py --leads 100000 --activities 1000000 --runs 3 --no-record
    python bench/imports.py --leads 100000 --activities 0 --phases product --profile p.out

Generates two files once (kept under ``var/bench/imports`` and reused by later runs of
the same size): a CSV of ``--leads`` rows as a CRM export writes them (emails in any
case, with blanks or a display name around them, names in capitals, company names and
websites, phone numbers in national and international form, countries by name or code,
pick-list labels, owners, three custom fields, a free-text column with quotes and line
breaks, about 1 % repeated contacts and about 1 % rows that cannot be stored), and a
CSV of ``--activities`` events of those leads, keyed by email, in the order they
happened, in three date formats, with a few repeated and a few of unknown people.

Measured in each run, each in a fresh database made from one migrated template (the
starter scoring model, twenty reps, the custom fields) and after a ``VACUUM (ANALYZE)``:

1. Hotlist: ``import_job_create`` then ``import_job_run`` in a process of its own,
   as ``manage.py import_leads`` runs them (one process, chunks of
   ``IMPORT_CHUNK_ROWS``): the file stored and checked, its rows counted, then read,
   cleaned and written chunk by chunk, each chunk one transaction with its change
   records; then the job's leads scored once, set-based (reported on its own line).
   The leads file first, the activity file into the database it left. Wall time,
   rows/s and the process's peak resident memory (``getrusage``), with its memory
   sampled every second.
2. COPY: the rows the product stored (companies, leads and stage changes; then
   activities), dumped with ``COPY … TO`` after the product's run and loaded with
   ``COPY … FROM STDIN`` in one transaction per file into a fresh database with the
   same indexes, constraints and triggers (the lead rank's), as the database's limit
   for writing those rows. A second line adds the import's own records (one change
   record per created or changed row, kept for undo, and the failed rows).
3. Naive: the same file read and cleaned by the same ``RowCleaner``, then one row at a
   time through the ORM in autocommit (company looked up or created, the lead looked
   up by email then ``Lead.objects.create`` or ``save``; for an activity the lead looked
   up, then ``Activity.objects.create``), timed on the first ``--naive-*`` rows and
   multiplied out to the file. The activity sample runs on a database holding every
   lead (copied in untimed).

With ``--runs`` above 1 each figure is the median of the runs. Files over the import's
default limits (``IMPORT_MAX_ROWS``, ``IMPORT_MAX_FILE_BYTES``) are imported with the
limits raised to fit them, for the measuring process only. With ``--record`` the tables
go to docs/PERFORMANCE.md (section ``--section``, default "imports"). The databases are
``hotlist_bench_imports`` and ``hotlist_bench_imports_template`` unless
``BENCH_IMPORTS_DATABASE_URL`` names another (the template's name gets ``_template``);
both are dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

URL = os.environ.get(
    "BENCH_IMPORTS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hotlist_bench_imports"
)
TEMPLATE_URL = URL + "_template"
FILES = harness.ROOT / "var" / "bench" / "imports"
# Bump when the generated files change, so that old files are not reused.
GENERATOR_VERSION = 1
REPS = 20
SECTION = "imports"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000, help="Rows of the lead file.")
    parser.add_argument(
        "--activities", type=int, default=10_000_000, help="Rows of the activity file."
    )
    parser.add_argument("--runs", type=int, default=1, help="Runs; figures are medians.")
    parser.add_argument("--naive-leads", type=int, default=5_000, help="Naive loop's sample.")
    parser.add_argument("--naive-activities", type=int, default=20_000)
    parser.add_argument("--chunk-size", type=int, default=None, help="IMPORT_CHUNK_ROWS.")
    parser.add_argument(
        "--phases",
        default="product,copy,naive",
        help="Of product, copy, naive (copy needs product).",
    )
    parser.add_argument("--profile", help="cProfile the product's runs into FILE.leads/.activities")
    parser.add_argument("--record", action="store_true", help="Write docs/PERFORMANCE.md.")
    parser.add_argument("--no-record", dest="record", action="store_false")
    parser.add_argument("--section", default=SECTION)
    parser.add_argument("--keep", action="store_true", help="Keep the databases.")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--sample", type=int, help=argparse.SUPPRESS)
    parser.set_defaults(record=False)
    return parser.parse_args()


def log(text: str) -> None:
    print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {text}", file=sys.stderr, flush=True)


# --- The files ----------------------------------------------------------------------------

FIRST = [
    "Anna", "Ben", "Carla", "David", "Elif", "Fatima", "Georg", "Hannah", "Ivan", "Julia",
    "Kai", "Lena", "Marco", "Nora", "Oskar", "Paula", "Quentin", "Rosa", "Sven", "Tanja",
    "Uwe", "Vera", "William", "Xenia", "Yusuf", "Zoé", "Jürgen", "Ségolène", "Øyvind", "Łukasz",
    "María José", "Jean-Luc", "Siobhán", "Chloé", "Matteo", "Sofia", "Liam", "Emma", "Noah", "Mia",
]  # fmt: skip
LAST = [
    "Müller", "Schmidt", "Rossi", "García", "Smith", "Jones", "O'Neil", "McDonald", "Dubois",
    "van der Berg", "Nowak", "Kowalski", "Johansson", "Andersen", "Novák", "Papadopoulos",
    "Yilmaz", "Silva", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Schulz",
    "Koch", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Brown", "Taylor",
]  # fmt: skip
WORDS = [
    "Acme", "Nordwind", "Bluefin", "Kestrel", "Granite", "Helios", "Lumen", "Meridian",
    "Northstar", "Orbit", "Pioneer", "Quartz", "Redwood", "Summit", "Tidal", "Vertex",
]  # fmt: skip
TRADES = ["Logistics", "Software", "Health", "Foods", "Energy", "Analytics", "Robotics", "Retail"]
SUFFIXES = ["GmbH", "Inc.", "Ltd", "SAS", "AG", "B.V.", "", "LLC"]
FREE_MAIL = ["gmail.com", "yahoo.com", "outlook.com", "web.de", "gmx.de", "hotmail.com"]
# country code, how files name it, phone formats (national ones need the country), cities
COUNTRIES = [
    ("DE", ["Germany", "DE", "Deutschland", "germany"], ["+49 30 {8}", "030 {8}", "0172 {7}"],
     ["Berlin", "Hamburg", "München", "Köln"]),
    ("US", ["USA", "United States", "US", "u.s.a."], ["(212) 4{2}-{4}", "+1 415 555 {4}"],
     ["New York", "San Francisco", "Austin"]),
    ("GB", ["United Kingdom", "UK", "GB", "England"], ["+44 20 7946 {4}", "020 7946 {4}"],
     ["London", "Manchester"]),
    ("FR", ["France", "FR", "france"], ["+33 1 42 {2} {2} {2}", "01 42 {2} {2} {2}"],
     ["Paris", "Lyon"]),
    ("NL", ["Netherlands", "NL", "Holland"], ["+31 20 {7}"], ["Amsterdam", "Utrecht"]),
    ("ES", ["Spain", "España", "ES"], ["+34 91 {7}"], ["Madrid", "Barcelona"]),
]  # fmt: skip
COUNTRY_WEIGHTS = [40, 25, 12, 10, 7, 6]
TITLES = [
    ("CEO", "C-Level"), ("CTO", "c level"), ("VP Sales", "VP"), ("VP Marketing", "vp"),
    ("Head of Fleet", "Director"), ("Director of Operations", "director"),
    ("Marketing Manager", "Manager"), ("IT Manager", "manager"), ("Sales Manager", "Manager"),
    ("Software Engineer", "Individual contributor"), ("Analyst", "individual"),
    ("Working student", "Student"), ("Consultant", "Select"), ("Office Manager", ""),
]  # fmt: skip
DEPARTMENTS = ["Sales", "Marketing", "IT", "Engineering", "Finance", "Operations", "", "", "-"]
INDUSTRIES = ["Software", "Financial services", "Healthcare", "manufacturing", "Retail",
              "Logistics", "consulting", "", "N/A"]  # fmt: skip
SOURCES = ["Website", "Paid search", "event", "Referral", "Partner", "", "", "Organic Search"]
STAGES = [("", 60), ("Select", 10), ("New", 15), ("MQL", 8), ("SQL", 4), ("Opportunity", 1.5),
          ("Customer", 1), ("Disqualified", 0.5)]  # fmt: skip
BUDGETS = ["", "", "", "Under 10k", "10k to 50k", "50k to 250k", "Over 250k", "No budget"]
TIMELINES = ["", "", "Now", "Within 3 months", "quarter", "Within 12 months", "Later or never"]
CAMPAIGNS = ["", "", "", "spring-2025", "fleet-webinar", "expo-2025", "newsletter"]
NOTES = [
    "",
    "",
    "",
    "",
    'Met at "Expo", wants pricing',
    "Called twice, no answer; try again in May",
    "Asked for a demo,\nthen went quiet",
    "Referred by J. Smith (partner)",
]
LEAD_HEADERS = [
    "Record ID", "Email", "First Name", "Last Name", "Company Name", "Website", "Phone",
    "Country", "City", "Job Title", "Seniority", "Department", "Industry", "Employees",
    "Lead Source", "Lifecycle Stage", "Budget", "Timeline", "Lead Owner", "Fleet Size",
    "Renewal Date", "Newsletter", "UTM Campaign", "Notes",
]  # fmt: skip
LEAD_MAPPING = {
    "Record ID": "external_id",
    "Email": "email",
    "First Name": "first_name",
    "Last Name": "last_name",
    "Company Name": "company",
    "Website": "company_domain",
    "Phone": "phone",
    "Country": "country",
    "City": "city",
    "Job Title": "job_title",
    "Seniority": "seniority",
    "Department": "department",
    "Industry": "industry",
    "Employees": "employee_count",
    "Lead Source": "source",
    "Lifecycle Stage": "stage",
    "Budget": "budget",
    "Timeline": "timeline",
    "Lead Owner": "owner",
    "Fleet Size": "custom:fleet_size",
    "Renewal Date": "custom:renewal_on",
    "Newsletter": "custom:newsletter",
    "UTM Campaign": "utm_campaign",
}
ACTIVITY_HEADERS = ["Email", "Activity Type", "Date", "Page URL", "Duration", "Subject"]
ACTIVITY_MAPPING = {
    "Email": "email",
    "Activity Type": "type",
    "Date": "occurred_at",
    "Page URL": "url",
    "Duration": "duration_seconds",
    "Subject": "description",
}
# (weight, type as files write it, page) of the history: mostly page views and email.
ACTIVITY_MIX = [
    (6, "Page View", "/pricing"), (6, "page_view", "/features"), (28, "Page View", "/blog"),
    (3, "Page view", "/careers"), (5, "PAGE VIEW", "/"), (20, "Email Open", ""),
    (10, "Email Click", ""), (3, "Webinar registration", ""), (5, "webinar_attendance", ""),
    (4, "Content download", ""), (4, "Form submission", ""), (1.5, "Demo request", ""),
    (0.7, "Quote Request", ""), (0.4, "Trial sign-up", ""), (0.4, "Unsubscribe", ""),
    (0.5, "Email bounce", ""), (2.5, "Social engagement", ""),
]  # fmt: skip
SUBJECTS = ["March newsletter", "Fleet webinar invite", "Your pricing questions", "Case study"]


def _digits(rng: random.Random, pattern: str) -> str:
    """``{n}`` in the pattern replaced by n random digits."""
    out, rest = [], pattern
    while "{" in rest:
        before, _, tail = rest.partition("{")
        count, _, rest = tail.partition("}")
        out.append(before + "".join(rng.choice("0123456789") for _ in range(int(count))))
    return "".join(out) + rest


def _ascii(text: str) -> str:
    import unicodedata

    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in plain.lower() if c.isalnum())


def company_of(c: int) -> tuple[str, str, str, str]:
    """Company number ``c``: its name, domain, industry and employees as files write them."""
    word, trade = WORDS[c % len(WORDS)], TRADES[c // len(WORDS) % len(TRADES)]
    suffix = SUFFIXES[c % 7 % len(SUFFIXES)]
    name = f"{word} {trade} {c}" + (f" {suffix}" if suffix else "")
    domain = f"{word.lower()}-{trade.lower()}-{c}.example"
    industry = INDUSTRIES[c * 7 % len(INDUSTRIES)]
    size = (c * 7919) % 5000
    employees = "" if c % 3 == 0 else (f"{size:,}" if c % 2 else str(size))
    return name, domain, industry, employees


def email_of(i: int, companies: int) -> str:
    """Lead number ``i``'s address as stored (lower case)."""
    first, last = FIRST[i % len(FIRST)], LAST[i // len(FIRST) % len(LAST)]
    local = f"{_ascii(first)}.{_ascii(last)}{i}"
    if i % 8 == 3:
        return f"{local}@{FREE_MAIL[i % len(FREE_MAIL)]}"
    return f"{local}@{company_of(_company_index(i, companies))[1]}"


def _company_index(i: int, companies: int) -> int:
    return (i * 7_919) % companies


def write_leads(path: Path, n: int, seed: int = 42) -> bytearray:
    """The lead file; which lead numbers a stored lead holds by its own address (1) and
    which not (0: a row that fails, or a repeat of an earlier contact)."""
    rng = random.Random(seed)
    companies = max(n // 20, 1)
    valid = bytearray(n)
    stage_names = [s for s, _ in STAGES]
    stage_weights = [w for _, w in STAGES]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LEAD_HEADERS)
        for i in range(n):
            writer.writerow(_lead_row(i, rng, companies, valid, stage_names, stage_weights))
    return valid


def _lead_row(
    i: int,
    rng: random.Random,
    companies: int,
    valid: bytearray,
    stage_names: list[str],
    stage_weights: list[float],
) -> list[str]:
    who = i
    if i > 100 and rng.random() < 0.01:
        who = rng.randrange(i)  # the same contact again, exported twice
    first, last = FIRST[who % len(FIRST)], LAST[who // len(FIRST) % len(LAST)]
    email = email_of(who, companies)
    roll = rng.random()
    if roll < 0.05:
        email = email.capitalize()
    elif roll < 0.08:
        email = f"  {email.upper()} "
    elif roll < 0.09:
        email = f"{first} {last} <{email}>"
    broken = rng.random() < 0.002
    if broken:
        email = rng.choice(["n/a", f"{_ascii(first)}(at)example.com", ""])
    if rng.random() < 0.05:
        first, last = first.upper(), last.upper()
    c = _company_index(who, companies)
    name, domain, industry, employees = company_of(c)
    if rng.random() < 0.1:
        name = rng.choice(["N/A", ""]) if rng.random() < 0.3 else name.upper()
    website = rng.choice(["", domain, f"https://www.{domain}/about", f"www.{domain}"])
    _code, names, phones, cities = rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0]
    country = rng.choice(names)
    phone = ""
    if rng.random() < 0.55:
        phone = _digits(rng, rng.choice(phones))
    if rng.random() < 0.05:
        country = ""  # then only an international number can be read
        phone = _digits(rng, "+49 30 {8}") if phone else ""
    if rng.random() < 0.002:
        phone = rng.choice(["ask reception", "12", "+49 (0) 30"])
        broken = True
    if rng.random() < 0.001:
        country = "Atlantis"
        broken = True
    title, seniority = TITLES[rng.randrange(len(TITLES))]
    owner = ""
    if rng.random() < 0.5:
        rep = rng.randrange(1, REPS + 1)
        owner = f"rep{rep}" if rng.random() < 0.7 else f"Rep{rep}@bench.example"
    fleet = rng.choice(["", "", "", "12", "250", "1,500", str(rng.randrange(1, 900))])
    renewal = rng.choice(["", "", "", "2026-06-30", "30.06.2026", "2027-01-15"])
    newsletter = rng.choice(["", "yes", "no", "Yes"])
    if not broken and who == i:
        valid[i] = 1
    return [
        f"CRM-{who + 1:07d}",
        email,
        first,
        last,
        name,
        website,
        phone,
        country,
        rng.choice(cities),
        title,
        seniority,
        rng.choice(DEPARTMENTS),
        industry,
        employees,
        rng.choice(SOURCES),
        rng.choices(stage_names, stage_weights)[0],
        rng.choice(BUDGETS),
        rng.choice(TIMELINES),
        owner,
        fleet,
        renewal,
        newsletter,
        rng.choice(CAMPAIGNS),
        rng.choice(NOTES),
    ]


def write_activities(
    path: Path, m: int, n: int, valid: bytearray, now: dt.datetime, seed: int = 7
) -> None:
    """The activity file: ``m`` events of the stored leads over the last year, oldest
    first, busy leads getting many (the busiest 1 % about a tenth of them)."""
    rng = random.Random(seed)
    companies = max(n // 20, 1)
    kinds = [(kind, page) for _, kind, page in ACTIVITY_MIX]
    weights = [w for w, _, _ in ACTIVITY_MIX]
    start = now - dt.timedelta(days=365)
    step = (dt.timedelta(days=365) - dt.timedelta(hours=2)) / max(m, 1)
    previous: list[str] = []
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(ACTIVITY_HEADERS)
        for k in range(m):
            if previous and rng.random() < 0.003:
                writer.writerow(previous)  # the same event twice
                continue
            at = start + step * k + dt.timedelta(seconds=rng.randrange(60))
            if rng.random() < 0.002:
                email = f"ghost{k}@unknown.example"
            else:
                email = email_of(_busy_lead(rng, n, valid), companies)
                if rng.random() < 0.1:
                    email = email.capitalize()
            kind, page = kinds[rng.choices(range(len(kinds)), weights)[0]]
            roll = rng.random()
            if roll < 0.8:
                when = at.strftime("%Y-%m-%dT%H:%M:%SZ")
            elif roll < 0.9:
                when = at.strftime("%Y-%m-%d %H:%M:%S")
            else:
                when = at.strftime("%d.%m.%Y %H:%M")
            url = f"https://hotlist.example{page}" if page else ""
            duration = str(rng.randrange(5, 600)) if page and rng.random() < 0.5 else ""
            subject = rng.choice(SUBJECTS) if kind.lower().startswith("email") else ""
            previous = [email, kind, when, url, duration, subject]
            writer.writerow(previous)


def _busy_lead(rng: random.Random, n: int, valid: bytearray) -> int:
    while True:
        # The share of events of the busiest fraction p of leads is p ** 0.5.
        i = int(n * rng.random() ** 2) * 1_000_003 % n
        if valid[i]:
            return i


def files(n: int, m: int) -> tuple[Path, Path | None]:
    """The two files of this size, generated unless they are there from a run before."""
    FILES.mkdir(parents=True, exist_ok=True)
    leads = FILES / f"leads-{n}-v{GENERATOR_VERSION}.csv"
    valid_path = leads.with_suffix(".valid")
    activities = FILES / f"activities-{n}-{m}-v{GENERATOR_VERSION}.csv" if m else None
    if not (leads.exists() and valid_path.exists()):
        log(f"Writing {leads.name}…")
        started = time.perf_counter()
        valid = write_leads(leads, n)
        valid_path.write_bytes(bytes(valid))
        log(f"  {_mib(leads.stat().st_size)} in {time.perf_counter() - started:.0f} s")
    if activities is not None and not activities.exists():
        free = shutil.disk_usage(FILES).free
        need = m * 110 * 3 + m * 400  # the file, the job's stored copy, the dumps, the tables
        if free < need:
            raise SystemExit(f"{_mib(free)} free; {_mib(need)} needed for {m:,} activities.")
        log(f"Writing {activities.name}…")
        started = time.perf_counter()
        partial = activities.with_suffix(".partial")
        valid = bytearray(valid_path.read_bytes())
        write_activities(partial, m, n, valid, dt.datetime.now(dt.UTC))
        partial.rename(activities)
        log(f"  {_mib(activities.stat().st_size)} in {time.perf_counter() - started:.0f} s")
    return leads, activities


def _mib(size: float) -> str:
    return f"{size / 2**20:,.0f} MiB"


# --- Databases ----------------------------------------------------------------------------


def _admin(url: str):
    import psycopg2

    connection = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    connection.autocommit = True
    return connection


def _name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def build_template() -> None:
    """The migrated template every phase's database is made from."""
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from crm.models import User
    from demo.scoring import seed_starter_model
    from leads.custom_fields import CustomFieldDefinition

    seed_starter_model()
    for rep in range(1, REPS + 1):
        User.objects.get_or_create(
            username=f"rep{rep}", defaults={"email": f"rep{rep}@bench.example"}
        )
    for key, label, kind in (
        ("fleet_size", "Fleet size", "integer"),
        ("renewal_on", "Renewal date", "date"),
        ("newsletter", "Newsletter", "boolean"),
    ):
        CustomFieldDefinition.objects.get_or_create(
            key=key, defaults={"label": label, "field_type": kind}
        )
    connection.close()


def fresh_database() -> None:
    """The work database dropped and made again from the template."""
    from psycopg2 import sql

    admin = _admin(URL)
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(_name(URL))))
        cursor.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(_name(URL)), sql.Identifier(_name(TEMPLATE_URL))
            )
        )
    admin.close()


def work_connection():
    import psycopg2

    return psycopg2.connect(URL)


def vacuum() -> float:
    """``VACUUM (ANALYZE)`` of the work database's own tables (not the catalogs that
    all databases share, whose locks other sessions on the server hold); its seconds."""
    connection = work_connection()
    connection.autocommit = True
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT string_agg(format('%I', relname), ', ') FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'm')"
        )
        cursor.execute(f"VACUUM (ANALYZE) {cursor.fetchone()[0]}")
    connection.close()
    return time.perf_counter() - started


def table_counts(tables: list[str]) -> dict[str, int]:
    connection = work_connection()
    with connection.cursor() as cursor:
        counts = {}
        for table in tables:
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    connection.close()
    return counts


LEAD_TABLES = ["leads_company", "leads_lead", "leads_stagechange"]
ACTIVITY_TABLES = ["leads_activity"]
RECORD_TABLES = ["imports_importchange", "imports_importrowerror"]
COUNTED = [
    *LEAD_TABLES,
    *ACTIVITY_TABLES,
    *RECORD_TABLES,
    "leads_leadrank",
    "scoring_scoreentry",
]


def dump(tables: list[str], tag: str, job_id: int | None = None) -> None:
    """The tables' rows (a job's own, for its records) into files, with ``COPY … TO``."""
    connection = work_connection()
    with connection.cursor() as cursor:
        for table in tables:
            source = table
            if table in RECORD_TABLES:
                source = f"(SELECT * FROM {table} WHERE job_id = {int(job_id or 0)})"
            with (FILES / f"dump-{tag}-{table}.copy").open("wb") as out:
                cursor.copy_expert(f"COPY {source} TO STDOUT", out)
        if job_id is not None:
            with (FILES / f"dump-{tag}-imports_importjob.copy").open("wb") as out:
                cursor.copy_expert(
                    f"COPY (SELECT * FROM imports_importjob WHERE id = {int(job_id)}) TO STDOUT",
                    out,
                )
    connection.close()


def load(tables: list[str], tag: str) -> float:
    """``COPY … FROM STDIN`` of the dumped tables in one transaction; its seconds."""
    connection = work_connection()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in tables:
            with (FILES / f"dump-{tag}-{table}.copy").open("rb") as source:
                cursor.copy_expert(f"COPY {table} FROM STDIN", source, size=1 << 20)
    connection.commit()
    took = time.perf_counter() - started
    connection.close()
    return took


def remove_dumps() -> None:
    for path in FILES.glob("dump-*.copy"):
        path.unlink()


# --- Measurements, each in a process of its own --------------------------------------------


def rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux gives kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Sampler(threading.Thread):
    """The process's resident memory every second, to show whether it grows with rows."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.started = time.perf_counter()
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.samples.append((time.perf_counter() - self.started, rss_mib()))


def measure_product(kind: str, path: Path, chunk_size: int | None, profile: str | None) -> dict:
    import imports.services as services
    from imports.models import ImportJob

    timings: dict[str, float] = {}
    marks: dict[str, float] = {}

    def timed(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if name == "score":
                marks["peak_before_score"] = peak_rss_mib()
                marks["rss_before_score"] = rss_mib()
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    services.count_rows = timed("count", services.count_rows)
    services.leads_rescore_quietly = timed("score", services.leads_rescore_quietly)
    services._leads_to_score = timed("leads_to_score", services._leads_to_score)
    services.activity_spans_widen = timed("spans", services.activity_spans_widen)
    statements = StatementClock()
    mapping = LEAD_MAPPING if kind == "leads" else ACTIVITY_MAPPING
    sampler = Sampler()
    sampler.start()
    ready = rss_mib()
    started = time.perf_counter()
    with path.open("rb") as handle:
        job = services.import_job_create(
            file=handle,
            file_name=path.name,
            kind=kind,
            by=None,
            mapping=mapping,
            enqueue=False,
        )
    stored = time.perf_counter() - started
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    with statements.installed():
        ran = services.import_job_run(job_id=job.pk, chunk_size=chunk_size)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    total = time.perf_counter() - started
    sampler.stop.set()
    job = ran or ImportJob.objects.get(pk=job.pk)
    if job.status != "done":
        raise SystemExit(f"The import ended {job.status}: {job.error}")
    job.file.delete(save=False)  # the stored copy: gigabytes at 10M rows
    score = timings.get("score", 0.0)
    return {
        "job": job.pk,
        "rows": job.rows_done,
        "counts": job.counts(),
        "total": total,
        "store": stored,
        "count": timings.get("count", 0.0),
        "write": total
        - stored
        - sum(timings.get(k, 0.0) for k in ("count", "leads_to_score"))
        - timings.get("spans", 0.0)
        - score,
        "leads_to_score": timings.get("leads_to_score", 0.0),
        "spans": timings.get("spans", 0.0),
        "score": score,
        "statements": statements.top(),
        "rss_ready": ready,
        "rss_peak": peak_rss_mib(),
        "rss_peak_before_score": marks.get("peak_before_score", peak_rss_mib()),
        "rss_samples": _spread(sampler.samples),
    }


class StatementClock:
    """Seconds spent in each kind of SQL statement (its first words), COPY included,
    while installed: where the database's share of an import goes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def add(self, key: str, took: float) -> None:
        self.seconds[key] = self.seconds.get(key, 0.0) + took
        self.calls[key] = self.calls.get(key, 0) + 1

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.add(" ".join(sql.split())[:70], time.perf_counter() - started)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from django.db import connection

        import imports.bulk_insert as bulk_insert

        copy = bulk_insert._copy

        def timed_copy(connection: Any, table: str, columns: Any, text: str) -> None:
            started = time.perf_counter()
            try:
                copy(connection, table, columns, text)
            finally:
                self.add(f"COPY {table}", time.perf_counter() - started)

        bulk_insert._copy = timed_copy
        try:
            with connection.execute_wrapper(self):
                yield
        finally:
            bulk_insert._copy = copy

    def top(self, count: int = 15) -> list[tuple[str, int, float]]:
        ranked = sorted(self.seconds, key=lambda key: -self.seconds[key])[:count]
        return [(key, self.calls[key], self.seconds[key]) for key in ranked]


def _spread(samples: list[tuple[float, float]], points: int = 6) -> list[tuple[float, float]]:
    """A few samples spread over the run (seconds, MiB)."""
    if len(samples) <= points:
        return samples
    step = (len(samples) - 1) / (points - 1)
    return [samples[round(k * step)] for k in range(points)]


def measure_naive(kind: str, path: Path, sample: int) -> dict:
    """The first ``sample`` rows one at a time through the ORM, in autocommit."""
    from imports.mapping import RowCleaner
    from imports.reading import open_table

    mapping = LEAD_MAPPING if kind == "leads" else ACTIVITY_MAPPING
    store = _naive_lead if kind == "leads" else _naive_activity
    done = failed = 0
    ready = rss_mib()
    started = time.perf_counter()
    with open_table(path) as table:
        cleaner = RowCleaner(kind=kind, headers=table.headers, mapping=mapping)
        for row in table.rows():
            if done + failed >= sample:
                break
            values, errors = cleaner.clean(row.as_dict(table.headers))
            if errors or row.overflow or not store(values):
                failed += 1
            else:
                done += 1
    took = time.perf_counter() - started
    return {
        "rows": done + failed,
        "stored": done,
        "failed": failed,
        "total": took,
        "rss_ready": ready,
        "rss_peak": peak_rss_mib(),
    }


def _naive_lead(values: dict[str, Any]) -> bool:
    from django.db.models.functions import Lower
    from django.utils import timezone

    from crm.models import User
    from imports.lead_rows import LEAD_COLUMNS
    from leads.models import Company, Lead, Source, Stage, StageChange

    if not values.get("email"):
        return False
    domain, name = values.get("company_domain", ""), values.get("company", "")
    company = Company.objects.filter(domain=domain).first() if domain else None
    if company is None and name:
        company = Company.objects.filter(name__iexact=name).first()
    if company is None and (domain or name):
        extra = {k: values[k] for k in ("industry", "employee_count") if k in values}
        company = Company.objects.create(name=name or domain, domain=domain, **extra)
    fields = {k: values[k] for k in LEAD_COLUMNS if k in values}
    custom = {k[7:]: v for k, v in values.items() if k.startswith("custom:")}
    if "owner" in values:
        owner = User.objects.filter(username__iexact=values["owner"]).first()
        owner = owner or User.objects.filter(email__iexact=values["owner"]).first()
        if owner is None:
            return False
        fields["owner_id"] = owner.pk
    lead = Lead.objects.alias(key=Lower("email")).filter(key=values["email"]).first()
    stage = values.get("stage")
    if lead is None:
        lead = Lead.objects.create(
            **{"source": Source.IMPORT, **fields},
            company=company,
            custom_fields=custom,
            stage=stage or Stage.NEW,
            disqualification_reason="Imported" if stage == Stage.DISQUALIFIED else "",
        )
        if lead.stage != Stage.NEW:
            StageChange.objects.create(
                lead=lead, from_stage=Stage.NEW, to_stage=lead.stage, at=timezone.now()
            )
        return True
    for key, value in fields.items():
        setattr(lead, key, value)
    lead.custom_fields = {**lead.custom_fields, **custom}
    lead.company = company or lead.company
    lead.save()
    return True


def _naive_activity(values: dict[str, Any]) -> bool:
    from django.db.models.functions import Lower
    from django.utils import timezone

    from leads.models import Activity, Lead

    lead = Lead.objects.alias(key=Lower("email")).filter(key=values.get("email", "")).first()
    if lead is None:
        return False
    description = values.get("description")
    Activity.objects.create(
        lead=lead,
        type=values["type"],
        occurred_at=values["occurred_at"],
        url=values.get("url", ""),
        duration_seconds=values.get("duration_seconds"),
        properties={"description": description} if description else {},
        source="import",
        scored_at=timezone.now(),
    )
    return True


def run_measurement(what: str, path: Path, args: argparse.Namespace, **extra: Any) -> dict:
    """``--measure what`` in a fresh Python process against the work database; its figures."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--measure",
        what,
        "--file",
        str(path),
    ]
    for name, value in extra.items():
        if value is not None:
            command += [f"--{name.replace('_', '-')}", str(value)]
    size = path.stat().st_size
    env = {
        **os.environ,
        "BENCH_IMPORTS_DATABASE_URL": URL,
        "IMPORT_DIR": str(FILES / "uploads"),
        "IMPORT_MAX_ROWS": str(max(1_000_000, args.leads, args.activities)),
        "IMPORT_MAX_FILE_BYTES": str(max(512 * 2**20, size + 1)),
        "LOG_LEVEL": "WARNING",
        "DEBUG": "false",
    }
    if args.chunk_size:
        env["IMPORT_CHUNK_ROWS"] = str(args.chunk_size)
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed:\n{done.stderr[-5000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_main(args: argparse.Namespace) -> None:
    os.environ.setdefault("SECRET_KEY", "bench-imports-" + "x" * 40)
    harness.setup_django(URL)
    path = Path(args.file)
    phase, _, kind = args.measure.partition("-")
    if phase == "product":
        figures = measure_product(kind, path, args.chunk_size, args.profile)
    else:
        figures = measure_naive(kind, path, args.sample)
    print(json.dumps(figures))


# --- One run ------------------------------------------------------------------------------


def one_run(args: argparse.Namespace, leads: Path, activities: Path | None) -> dict:
    phases = {p.strip() for p in args.phases.split(",")}
    result: dict[str, Any] = {"phases": []}

    def phase(name: str) -> float:
        took = vacuum()
        result["phases"].append((name, took, harness.load_average()))
        log(f"{name} (load {harness.load_average()})…")
        return took

    kinds = [("leads", leads, LEAD_TABLES)]
    if activities is not None:
        kinds.append(("activities", activities, ACTIVITY_TABLES))
    if "product" in phases:
        fresh_database()
        for kind, path, tables in kinds:
            phase(f"Hotlist import of the {kind} file")
            profile = f"{args.profile}.{kind}" if args.profile else None
            figures = run_measurement(f"product-{kind}", path, args, profile=profile)
            result[f"product_{kind}"] = figures
            log(f"  {figures['total']:.1f} s ({figures['score']:.1f} s scoring), "
                f"peak RSS {figures['rss_peak']:.0f} MiB")  # fmt: skip
            for key, calls, took in figures["statements"]:
                log(f"    {took:8.2f} s {calls:7,} x {key}")
            if "copy" in phases or "naive" in phases:
                dump([*tables, *RECORD_TABLES], kind, figures["job"])
        result["stored"] = table_counts(COUNTED)
    if "copy" in phases and "product" in phases:
        fresh_database()
        for kind, _, tables in kinds:
            phase(f"COPY of the {kind} rows")
            result[f"copy_{kind}"] = load(tables, kind)
            load(["imports_importjob"], kind)
            result[f"copy_records_{kind}"] = load(RECORD_TABLES, kind)
            log(f"  {result[f'copy_{kind}']:.1f} s, records {result[f'copy_records_{kind}']:.1f} s")
    if "naive" in phases:
        fresh_database()
        phase("Naive loop over the leads file")
        result["naive_leads"] = run_measurement("naive-leads", leads, args, sample=args.naive_leads)
        log(f"  {result['naive_leads']['rows'] / result['naive_leads']['total']:.0f} rows/s")
        if activities is not None and "product" in phases:
            fresh_database()
            load(LEAD_TABLES, "leads")
            phase("Naive loop over the activity file")
            result["naive_activities"] = run_measurement(
                "naive-activities", activities, args, sample=args.naive_activities
            )
            figures = result["naive_activities"]
            log(f"  {figures['rows'] / figures['total']:.0f} rows/s")
    return result


# --- The report ---------------------------------------------------------------------------


def med(runs: list[dict], *path: str) -> float:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value[key]
        values.append(value)
    return statistics.median(values)


def spread(runs: list[dict], *path: str) -> str:
    """The range of a figure over the runs, when there are several."""
    if len(runs) < 2:
        return ""
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value[key]
        values.append(value)
    return f" ({harness.seconds(min(values))} to {harness.seconds(max(values))})"


def kind_table(
    kind: str, rows: int, size: int, runs: list[dict], args: argparse.Namespace
) -> list[str]:
    """The table of one file: the import and its parts, its scoring, COPY, the naive loop."""
    product = f"product_{kind}"
    copy = med(runs, f"copy_{kind}") if f"copy_{kind}" in runs[0] else None
    records = med(runs, f"copy_records_{kind}") if copy is not None else None
    imported = [run[product]["total"] - run[product]["score"] for run in runs]
    for run, seconds in zip(runs, imported, strict=True):
        run[product]["imported"] = seconds

    def line(what: str, path: tuple[str, ...], note: str = "", rss: str = "—") -> str:
        seconds = med(runs, *path)
        ratio = f"{seconds / copy:.2f}x" if copy else "—"
        return (
            f"| {what} | {harness.seconds(seconds)}{spread(runs, *path)} "
            f"| {rows / seconds:,.0f} | {ratio} | {rss} | {note} |"
        )

    def part(what: str, name: str) -> str | None:
        seconds = med(runs, product, name)
        if seconds < 0.005:
            return None
        share = seconds / med(runs, product, "imported")
        return (
            f"| … {what} | {harness.seconds(seconds)}{spread(runs, product, name)} | — | — "
            f"| — | {share:.0%} of the import |"
        )

    first = runs[0][product]
    peak = f"{med(runs, product, 'rss_peak'):.0f} MiB"
    before = f"{med(runs, product, 'rss_peak_before_score'):.0f} MiB"
    samples = ", ".join(f"{mib:.0f}" for _, mib in first["rss_samples"])
    counts = ", ".join(f"{value:,} {name}" for name, value in first["counts"].items())
    chunk = args.chunk_size or 1000
    out: list[str | None] = [
        f"**{kind.capitalize()} file**: {rows:,} rows, {_mib(size)}; the job counted {counts}.",
        "",
        "| what | wall | rows/s | vs COPY | peak RSS | note |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        line(
            "**Hotlist import**, without its final scoring",
            (product, "imported"),
            f"one process, chunks of {chunk:,} rows, each a transaction",
            before,
        ),
        part("storing and checking the file", "store"),
        part("counting its rows (a first pass)", "count"),
        part("reading, cleaning and writing the chunks", "write"),
        part("finding the leads the job touched", "leads_to_score"),
        part("widening those leads' first and last activity times", "spans"),
        line(
            "Hotlist's final scoring of the job's leads (once, set-based)",
            (product, "score"),
            "the job's last step; rows/s counts the file's rows",
            peak,
        ),
        line("Hotlist import with its scoring", (product, "total"), "", peak),
    ]
    if copy is not None and records is not None:
        out += [
            line(
                "**COPY** of the rows the import stored",
                (f"copy_{kind}",),
                "one transaction, the same indexes, constraints and triggers",
            ),
            "| COPY of those rows and of the import's own records | "
            f"{harness.seconds(copy + records)} | {rows / (copy + records):,.0f} | "
            f"{(copy + records) / copy:.2f}x | — | plus a change record per row created or "
            "changed (for undo) and the failed rows |",
        ]
    naive = runs[0].get(f"naive_{kind}")
    if naive:
        for run in runs:
            sample = run[f"naive_{kind}"]
            sample["extrapolated"] = rows * sample["total"] / sample["rows"]
        out.append(
            line(
                "Naive ORM loop, one row at a time in autocommit",
                (f"naive_{kind}", "extrapolated"),
                f"timed on the first {naive['rows']:,} rows "
                f"({med(runs, f'naive_{kind}', 'total'):.1f} s) and multiplied out",
                f"{med(runs, f'naive_{kind}', 'rss_peak'):.0f} MiB",
            )
        )
    out += [
        "",
        f"The import process's resident memory over the run (MiB, sampled): {samples}; "
        f"{first['rss_ready']:.0f} MiB when ready.",
    ]
    return [text for text in out if text is not None]


def render(
    args: argparse.Namespace,
    runs: list[dict],
    leads: Path,
    activities: Path | None,
    context: dict[str, Any],
) -> str:
    stored = runs[0].get("stored", {})
    lines = [
        "## Import",
        "",
        f"Measured by `python bench/imports.py --leads {args.leads} --activities "
        f"{args.activities} --runs {args.runs} --naive-leads {args.naive_leads} "
        f"--naive-activities {args.naive_activities}` on {context['machine']}.",
        f"Load average {context['load_before']} before, {harness.load_average()} after "
        f"(shared machine); the run took {context['minutes']:.0f} min. "
        + (
            "Each figure is the median of the runs, their range beside it."
            if args.runs > 1
            else "One run."
        ),
        "PostgreSQL settings (the server's, unchanged): "
        + ", ".join(f"{k} {v}" for k, v in context["settings"].items())
        + ".",
        "",
    ]
    product_rows = runs[0].get("product_leads", {}).get("rows", args.leads)
    lines += kind_table("leads", product_rows, leads.stat().st_size, runs, args)
    if activities is not None and "product_activities" in runs[0]:
        lines += [""]
        lines += kind_table(
            "activities",
            runs[0]["product_activities"]["rows"],
            activities.stat().st_size,
            runs,
            args,
        )
    if stored:
        lines += [
            "",
            "Rows in the database after the import: "
            + ", ".join(f"{table} {count:,}" for table, count in stored.items())
            + ".",
        ]
    lines += ["", "Phases (each after a `VACUUM (ANALYZE)` of its database):", ""]
    lines += ["| phase | VACUUM (ANALYZE) | load then |", "| --- | ---: | --- |"]
    for name, took, load in runs[0]["phases"]:
        lines.append(f"| {name} | {harness.seconds(took)} | {load} |")
    return "\n".join(lines)


def main() -> None:
    args = parse()
    if args.measure:
        measure_main(args)
        return
    started = time.perf_counter()
    load_before = harness.load_average()
    leads, activities = files(args.leads, args.activities)
    harness.drop_database(TEMPLATE_URL)
    harness.setup_django(TEMPLATE_URL)
    build_template()
    context = {
        "machine": harness.machine(),
        "settings": harness.server_settings(),
        "load_before": load_before,
    }
    from django.db import connection

    connection.close()
    runs = []
    try:
        for run in range(args.runs):
            log(f"Run {run + 1} of {args.runs}")
            runs.append(one_run(args, leads, activities))
            remove_dumps()
    finally:
        remove_dumps()
        shutil.rmtree(FILES / "uploads", ignore_errors=True)
        if not args.keep:
            harness.drop_database(URL)
            harness.drop_database(TEMPLATE_URL)
    context["minutes"] = (time.perf_counter() - started) / 60
    if "product" not in args.phases:
        print(json.dumps(runs, indent=1))
        return
    table = render(args, runs, leads, activities, context)
    print(table)
    if args.record:
        harness.record(args.section, table)


if __name__ == "__main__":
    main()

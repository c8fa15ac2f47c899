"""The leads list's export at scale: a CSV and an XLSX of every lead, beside PostgreSQL's
``COPY`` of the same rows, and the XLSX written by an export job as a worker does.

    python bench/export.py [--leads 1000000] [--formats csv,xlsx,job]

Builds its own world in ``BENCH_DATABASE_URL`` (default ``hotlist_bench_export``):
``--leads`` leads with a profile, an owner among twenty reps for most, a company for most,
two custom fields and a product interest for one in ten; it is rebuilt when the count
differs. Each measurement runs in a fresh process, so that its peak resident memory is
its own: the export through the leads list's view (``/leads/export.csv`` as an admin,
hottest first, every column), read through into /dev/null, and ``COPY (SELECT …) TO
STDOUT WITH CSV`` of the very statement the export runs (its SQL, from its queryset),
copied into /dev/null on a plain psycopg2 connection. The export also looks up product
interests per chunk and writes custom fields as columns of their own, which the bare
statement does not. ``xlsx`` is the list's inline answer (the export's size limit,
``HOTLIST_EXPORT_INLINE_MAX``, raised above the world for it: past the limit the list
offers an export job instead); ``job`` is that export job, run as the worker runs it
(``leads.export_jobs.export_job_run``), its file written under ``HOTLIST_EXPORT_DIR``
and deleted afterwards. Prints a Markdown table; ``--record`` writes it to
docs/PERFORMANCE.md (section "export").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/hotlist_bench_export"
ADMIN = "bench_export_admin"
REPS = 20
COMPANIES = 200


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000, help="Leads in the world.")
    parser.add_argument(
        "--formats", default="csv,xlsx,job", help="Exports to time: csv, xlsx, job."
    )
    parser.add_argument("--record", action="store_true", help="Write docs/PERFORMANCE.md.")
    parser.add_argument("--measure", choices=["csv", "xlsx", "job", "copy"], help=argparse.SUPPRESS)
    return parser.parse_args()


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux gives kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- The world --------------------------------------------------------------------------


def build(leads: int) -> None:
    from django.core.management import call_command
    from django.db import connection

    from crm.models import User
    from leads.models import Company, CustomFieldDefinition, Lead, ProductLine

    call_command("migrate", verbosity=0)
    if Lead.objects.count() == leads and User.objects.filter(username=ADMIN).exists():
        log(f"Reusing the world of {leads:,} leads.")
        return
    log(f"Building a world of {leads:,} leads…")
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE leads_lead, leads_company RESTART IDENTITY CASCADE")
    User.objects.filter(username__startswith="bench_export_").delete()
    User.objects.create_superuser(ADMIN, f"{ADMIN}@example.com", "pw")
    reps = [
        User.objects.create_user(f"bench_export_rep{n}", first_name="Rep", last_name=f"No {n}")
        for n in range(REPS)
    ]
    Company.objects.bulk_create(
        Company(name=f"Company {n}", domain=f"company{n}.example") for n in range(COMPANIES)
    )
    for key, field_type in (("fleet_size", "integer"), ("renewal_on", "date")):
        CustomFieldDefinition.objects.get_or_create(
            key=key, defaults={"label": key, "field_type": field_type}
        )
    fleet, _ = ProductLine.objects.get_or_create(slug="fleet", defaults={"name": "Fleet"})
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT_LEADS,
            {"leads": leads, "reps": [rep.pk for rep in reps], "companies": COMPANIES},
        )
        cursor.execute(
            "INSERT INTO leads_lead_product_interests (lead_id, productline_id) "
            "SELECT id, %s FROM leads_lead WHERE id %% 10 = 0",
            [fleet.pk],
        )
    log(f"  inserted in {time.perf_counter() - started:.1f} s; vacuuming…")
    harness.vacuum_analyze()


# Every column the lead table has, from ``generate_series``, in one statement.
INSERT_LEADS = """
INSERT INTO leads_lead (
    first_name, last_name, email, phone, job_title, seniority, department, company_id,
    country, region, city, source, campaign, utm_source, utm_medium, utm_campaign,
    utm_term, utm_content, budget, authority, need, timeline, owner_id, stage,
    stage_changed_at, disqualification_reason, email_status, custom_fields, score,
    fit_score, engagement_score, engagement_at, band, grade, quadrant, created_at,
    updated_at, first_activity_at, last_activity_at, furthest_step, deal_outcome
)
SELECT
    'First' || n, 'Last' || (n * 7919 %% 100003), 'lead' || n || '@bench.example',
    '+4930' || (1000000 + n), 'Head of Operations', 'director', '',
    CASE WHEN n %% 8 = 0 THEN NULL ELSE 1 + n %% %(companies)s END,
    'DE', 'Berlin', 'Berlin', 'website', 'spring', 'newsletter', 'email', 'spring-2025',
    '', '', '', '', '', '',
    CASE WHEN n %% 5 = 0 THEN NULL ELSE (%(reps)s::bigint[])[1 + n %% 20] END, 'mql',
    now() - (n %% 400) * interval '1 day', '', 'valid',
    CASE WHEN n %% 3 = 0
        THEN jsonb_build_object('fleet_size', n %% 500, 'renewal_on', '2025-06-30')
        ELSE '{}'::jsonb END,
    n %% 100, n %% 40, 0, NULL,
    CASE WHEN n %% 100 >= 70 THEN 'hot' WHEN n %% 100 >= 40 THEN 'warm' ELSE 'cold' END,
    'C', 'cold', now() - (n %% 900) * interval '1 hour', now(),
    NULL, CASE WHEN n %% 4 = 0 THEN NULL ELSE now() - (n %% 90) * interval '1 day' END,
    1, 0
FROM generate_series(1, %(leads)s) AS n
"""


# --- One measurement, in a process of its own -----------------------------------------


def measure(kind: str) -> dict:
    from django.db import connection
    from django.test import RequestFactory

    from crm.models import User
    from workspace.views.lists import lead_export

    admin = User.objects.get(username=ADMIN)
    ready = peak_rss_mib()
    request = RequestFactory().get(f"/leads/export.{'xlsx' if kind == 'xlsx' else 'csv'}")
    request.user = admin
    started = time.perf_counter()
    size = rows = 0
    if kind == "copy":
        size = _copy(connection, request)
    elif kind == "job":
        size, rows = _job(admin)
        rows += 1  # as the CSV's header line
    else:
        response = lead_export(request, kind)
        with open(os.devnull, "wb") as sink:
            for piece in response.streaming_content:
                size += len(piece)
                if kind == "csv":
                    rows += piece.count(b"\r\n")
                sink.write(piece)
        response.close()
    elapsed = time.perf_counter() - started
    return {
        "seconds": elapsed,
        "bytes": size,
        "rows": rows - 1 if rows else None,
        "rss_ready_mib": ready,
        "rss_peak_mib": peak_rss_mib(),
    }


def _job(admin) -> tuple[int, int]:
    """The XLSX of every lead written by an export job, as the worker runs it; the file's
    size and rows (the file is deleted)."""
    from django.utils import timezone

    from leads.export_jobs import export_job_run
    from leads.exports import export_columns
    from leads.models import ExportJob

    ExportJob.objects.filter(requested_by=admin).delete()
    job = ExportJob.objects.create(
        requested_by=admin,
        source="workspace",
        query="",
        file_format="xlsx",
        columns=[column.name for column in export_columns()],
        queued_at=timezone.now(),
    )
    done = export_job_run(job_id=job.pk)
    if done is None or done.path is None:
        raise SystemExit(f"The export job did not finish: {done and done.error}")
    done.path.unlink()
    return done.file_size, done.rows_written


def _copy(connection, request) -> int:
    """``COPY`` of the statement the CSV export runs, into /dev/null; bytes copied."""
    import psycopg2

    from leads.exports import export_columns
    from workspace.filters import LeadListFilter
    from workspace.keyset import whole_list_order

    filters = LeadListFilter(request.GET, request=request, people=[])
    leads = filters.qs.order_by(*whole_list_order(filters.sort_key))
    reads = list(
        dict.fromkeys(["id", *(name for column in export_columns() for name in column.reads)])
    )
    sql, params = leads.values_list(*reads).query.sql_with_params()
    with connection.cursor() as cursor:
        statement = cursor.mogrify(sql, params).decode()
    plain = psycopg2.connect(os.environ["DATABASE_URL"])
    plain.set_session(readonly=True)
    try:
        with plain.cursor() as cursor, open(os.devnull, "wb") as sink:
            counter = _Counting(sink)
            cursor.copy_expert(f"COPY ({statement}) TO STDOUT WITH CSV HEADER", counter)
        return counter.size
    finally:
        plain.close()


class _Counting:
    def __init__(self, sink) -> None:
        self.sink = sink
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return self.sink.write(data)


def run_measurement(kind: str) -> dict:
    """``measure(kind)`` in a fresh Python process; its figures."""
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", kind]
    # The list's inline XLSX, whatever the world's size (past the limit: a job).
    env = {**os.environ, "HOTLIST_EXPORT_INLINE_MAX": str(2**31)}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse()
    os.environ.setdefault("BENCH_DATABASE_URL", DEFAULT_URL)
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-export-" + "x" * 40)
    harness.setup_django()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    build(args.leads)
    kinds = ["copy", *(kind.strip() for kind in args.formats.split(",") if kind.strip())]
    results = {}
    for kind in kinds:
        log(f"Measuring {kind}…")
        results[kind] = run_measurement(kind)
    copy = results["copy"]["seconds"]
    names = {
        "copy": "COPY (same SELECT) TO STDOUT",
        "csv": "/leads/export.csv",
        "xlsx": "/leads/export.xlsx (inline)",
        "job": "XLSX export job (worker)",
    }
    lines = [
        f"## Export of {args.leads:,} leads",
        "",
        f"Measured by `python bench/export.py --leads {args.leads} --record` on "
        f"{harness.machine()}; load average {harness.load_average()} (shared machine).",
        "Each row runs in a fresh process: the export through the leads list's view as an "
        "admin (every lead, hottest first, every column), read through into /dev/null, "
        "beside `COPY` of the statement it runs. Peak RSS is the process's resident "
        "high-water mark when it is ready to export (Django loaded, connected) and at the "
        "end.",
        "",
        "| what | rows | time | vs COPY | rows/s | size | peak RSS (process ready → end) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, figures in results.items():
        seconds = figures["seconds"]
        rows = f"{figures['rows']:,}" if figures.get("rows") is not None else "—"
        lines.append(
            f"| {names[kind]} | {rows} | {harness.seconds(seconds)} | {seconds / copy:.1f}x "
            f"| {args.leads / seconds:,.0f} | {figures['bytes'] / 2**20:.1f} MiB "
            f"| {figures['rss_ready_mib']:.0f} → {figures['rss_peak_mib']:.0f} MiB |"
        )
    lines.append("")
    for kind, figures in results.items():
        grew = figures["rss_peak_mib"] - figures["rss_ready_mib"]
        lines.append(
            f"- {names[kind]}: {figures['bytes'] / 2**20:.1f} MiB written, the peak RSS "
            f"{'rose by ' + format(grew, '.0f') + ' MiB' if grew >= 1 else 'rose by under 1 MiB'}."
        )
    table = "\n".join(lines)
    print(f"\n{table}")
    if args.record:
        harness.record("export", table)
        log(f"Recorded in {harness.PERFORMANCE}")


if __name__ == "__main__":
    main()

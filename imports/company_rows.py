"""Writing a chunk of company rows: matched by domain, else by name (any case);
created, updated where a cell differs, or left as they are."""

from __future__ import annotations

from decimal import Decimal

from django.db.models.functions import Lower

from leads.models import Company

from .chunks import Changed, ChunkOutcome, Context, Prepared, row_update, statistics_refresh
from .models import ImportJob, ObjectType

COLUMNS = (
    "name",
    "domain",
    "industry",
    "employee_count",
    "annual_revenue",
    "country",
    "region",
    "city",
)


def write_company_rows(
    *, job: ImportJob, context: Context, rows: list[Prepared], outcome: ChunkOutcome
) -> None:
    statistics_refresh(Company)
    by_domain, by_name = _known(rows)
    new: list[tuple[Prepared, Company]] = []
    changed = Changed()
    for row in rows:
        wanted = {name: row.values[name] for name in COLUMNS if name in row.values}
        if "annual_revenue" in wanted:
            wanted["annual_revenue"] = wanted["annual_revenue"].quantize(Decimal("0.01"))
        domain = wanted.get("domain", "")
        company = by_domain.get(domain) if domain else None
        company = company or by_name.get(wanted["name"].casefold())
        if company is None:
            if not job.create_new:
                outcome.skipped += 1
                continue
            company = Company(**wanted)
            new.append((row, company))
            outcome.created += 1
        elif not job.update_existing:
            outcome.skipped += 1
            continue
        else:
            row_update(
                row, company, wanted, outcome, changed, object_type=ObjectType.COMPANY, lead_id=None
            )
        if domain:
            by_domain[domain] = company
        by_name[company.name.casefold()] = company
    Company.objects.bulk_create([company for _, company in new], batch_size=1000)
    for row, company in new:
        outcome.record(row, company, ObjectType.COMPANY, lead_id=None)
    changed.write()


def _known(rows: list[Prepared]) -> tuple[dict[str, Company], dict[str, Company]]:
    domains = {row.values["domain"] for row in rows if row.values.get("domain")}
    names = {row.values["name"].casefold() for row in rows}
    by_domain = {c.domain: c for c in Company.objects.filter(domain__in=domains)}
    by_name: dict[str, Company] = {}
    named = Company.objects.alias(key=Lower("name")).filter(key__in=names).order_by("-pk")
    for company in named:
        by_name[company.name.casefold()] = company
    return by_domain, by_name

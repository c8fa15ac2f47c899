"""What an import stores, row for row: a file of leads as a CRM exports it
(names in capitals, phones in national and international form, countries by name,
pick-list labels, owners, custom fields, repeated contacts, rows that fail), the same
file again, a file that changes a third of them, and a history of their activities
(twice), through chunks of 100 rows.

Every row the jobs leave — leads, companies, stage changes, activities, match keys,
duplicate pairs, change records, failed rows, the jobs' counts — is compared with
``data/imports_same/stored.json``, a digest of the rows the import stored when the file
was made (the rows themselves are left in the test's temporary folder).
Ids and the times of the run are replaced by what they name (a lead by its email, a
company by its name), so a change to how the rows are written must leave what is
written as it was. With ``HOTLIST_WRITE_STORED=1`` the file is written anew instead.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from crm.models import User
from imports.models import ImportChange, ImportJob, ImportRowError
from imports.services import import_job_create, import_job_run
from leads.custom_fields import CustomFieldDefinition
from leads.models import Activity, Company, DuplicatePair, Lead, LeadMatchKey, StageChange

pytestmark = pytest.mark.django_db

DATA = Path(__file__).parent / "data" / "imports_same"
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
ACTIVITY_MAPPING = {
    "Email": "email",
    "Activity Type": "type",
    "Date": "occurred_at",
    "Page URL": "url",
    "Duration": "duration_seconds",
    "Subject": "description",
}
# Worked out by the final scoring, whose decay moves with the day the test runs.
SCORED = {"score", "fit_score", "engagement_score", "engagement_at", "band", "grade", "quadrant"}


@pytest.fixture(autouse=True)
def uploads(tmp_path, settings):
    settings.IMPORT_DIR = tmp_path / "uploads"


@pytest.fixture
def bench_people(db) -> None:
    for rep in range(1, 21):
        User.objects.create(username=f"rep{rep}", email=f"rep{rep}@bench.example")
    for key, label, kind in (
        ("fleet_size", "Fleet size", "integer"),
        ("renewal_on", "Renewal date", "date"),
        ("newsletter", "Newsletter", "boolean"),
    ):
        CustomFieldDefinition.objects.create(key=key, label=label, field_type=kind)


def run(name: str, data: bytes, kind: str, mapping: dict[str, str]) -> ImportJob:
    job = import_job_create(
        file=io.BytesIO(data), file_name=name, kind=kind, by=None, mapping=mapping, enqueue=False
    )
    ran = import_job_run(job_id=job.pk, chunk_size=100)
    assert ran is not None
    assert ran.status == "done", ran.error
    return ran


def changed_leads_file() -> bytes:
    """The lead file with every third row changed: another city, a stage further on, a
    phone written another way, a name in capitals."""
    rows = list(csv.reader(io.StringIO((DATA / "leads.csv").read_text(encoding="utf-8"))))
    header = rows[0]
    column = {name: header.index(name) for name in header}
    for number, row in enumerate(rows[1:], start=1):
        if number % 3:
            continue
        row[column["City"]] = f"Town {number % 7}"
        row[column["Lifecycle Stage"]] = ("MQL", "SQL", "Opportunity")[number // 3 % 3]
        if row[column["Phone"]]:
            row[column["Phone"]] = "+49 30 " + str(1000000 + number)
        row[column["Last Name"]] = row[column["Last Name"]].upper()
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def test_the_rows_an_import_stores_are_the_ones_it_stored_before(bench_people, tmp_path):
    started = timezone.now()
    leads = (DATA / "leads.csv").read_bytes()
    activities = (DATA / "activities.csv").read_bytes()
    jobs = [
        run("leads.csv", leads, "leads", LEAD_MAPPING),
        run("leads.csv", leads, "leads", LEAD_MAPPING),
        run("changed.csv", changed_leads_file(), "leads", LEAD_MAPPING),
        run("activities.csv", activities, "activities", ACTIVITY_MAPPING),
        run("activities.csv", activities, "activities", ACTIVITY_MAPPING),
    ]
    snapshot = Snapshot(started, jobs).taken()
    digests = {table: digest(rows) for table, rows in snapshot.items()}
    # Each database its own: SQLite compares names for equality, not by trigrams.
    expected = DATA / "stored.json"
    stored = json.loads(expected.read_text())
    if os.environ.get("HOTLIST_WRITE_STORED"):
        stored[connection.vendor] = digests
        expected.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    # The rows themselves, to compare with those of a run of the code before a change.
    (tmp_path / "rows.json").write_text(json.dumps(snapshot, indent=1, sort_keys=True))
    assert digests == stored[connection.vendor], f"The rows differ: {tmp_path / 'rows.json'}"


def digest(rows: list[dict[str, Any]]) -> dict[str, Any]:
    text = json.dumps(rows, sort_keys=True, ensure_ascii=False)
    return {"rows": len(rows), "sha256": hashlib.sha256(text.encode()).hexdigest()}


class Snapshot:
    """The rows of the tables an import writes, ids and the run's own times replaced by
    what they name, in an order that does not depend on ids."""

    def __init__(self, started: dt.datetime, jobs: list[ImportJob]) -> None:
        self.started = started
        self.jobs = {job.pk: index for index, job in enumerate(jobs)}
        self.leads = dict(Lead.objects.values_list("pk", "email"))
        self.companies = {
            pk: f"{name}|{domain}"
            for pk, name, domain in Company.objects.values_list("pk", "name", "domain")
        }
        self.users = dict(User.objects.values_list("pk", "username"))

    def value(self, name: str, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return "<run>" if value >= self.started else value.isoformat()
        if isinstance(value, dt.date | decimal.Decimal):
            return str(value)
        if name in ("lead_id", "lead_a_id", "lead_b_id"):
            return self.leads.get(value, value)
        if name == "company_id":
            return self.companies.get(value, value)
        if name in ("owner_id", "by_id", "created_by_id", "decided_by_id"):
            return self.users.get(value, value)
        if name == "job_id":
            return self.jobs.get(value, value)
        if name in ("before", "after"):
            return {key: self.value(key, item) for key, item in value.items()}
        if isinstance(value, str) and len(value) > 18 and value[10:11] == "T":
            return self.recorded_time(value)
        return value

    def recorded_time(self, text: str) -> str:
        try:
            at = dt.datetime.fromisoformat(text)
        except ValueError:
            return text
        return "<run>" if at.tzinfo and at >= self.started else text

    def rows(self, model: Any, leave_out: set[str] = frozenset()) -> list[dict[str, Any]]:
        names = [f.attname for f in model._meta.concrete_fields if f.attname not in leave_out]
        rows = [
            {name: self.value(name, row[name]) for name in names}
            for row in model.objects.values(*names)
        ]
        return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))

    def object_name(self, object_type: str, object_id: int) -> Any:
        if object_type == "lead":
            return self.leads.get(object_id)
        if object_type == "company":
            return self.companies.get(object_id)
        if object_type == "activity":
            found = Activity.objects.filter(pk=object_id).values("lead_id", "type", "occurred_at")
            row = found.first()
            return row and [self.leads[row["lead_id"]], row["type"], str(row["occurred_at"])]
        if object_type == "stage_change":
            row = StageChange.objects.filter(pk=object_id).values("lead_id", "to_stage").first()
            return row and [self.leads[row["lead_id"]], row["to_stage"]]
        return object_id

    def changes(self) -> list[dict[str, Any]]:
        rows = []
        for change in ImportChange.objects.values():
            change["object_id"] = self.object_name(change["object_type"], change["object_id"])
            change.pop("id")
            rows.append({name: self.value(name, value) for name, value in change.items()})
        return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))

    def pairs(self) -> list[dict[str, Any]]:
        rows = self.rows(DuplicatePair, {"id", "merge_id"})
        for row in rows:
            row["lead_a_id"], row["lead_b_id"] = sorted([row["lead_a_id"], row["lead_b_id"]])
        return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))

    def taken(self) -> dict[str, Any]:
        return {
            "jobs": [
                {**job.counts(), "rows_done": job.rows_done, "total_rows": job.total_rows}
                for job in ImportJob.objects.order_by("pk")
            ],
            "leads": self.rows(Lead, {"id", *SCORED}),
            "companies": self.rows(Company, {"id"}),
            "stage_changes": self.rows(StageChange, {"id"}),
            # The idempotency key is made from the lead's id, which differs between runs.
            "activities": self.rows(Activity, {"id", "idempotency_key"}),
            "match_keys": self.rows(LeadMatchKey),
            "pairs": self.pairs(),
            "changes": self.changes(),
            "errors": self.rows(ImportRowError, {"id"}),
        }

"""How an import writes (PostgreSQL): new rows through COPY stored exactly as the ORM
stores them, change records that undo reads back, and the leads' activity times widened
once an activity import's rows are in, after a resumed run too."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.utils import timezone

from imports import bulk_insert, history_rows
from imports.bulk_insert import copy_lines, copy_text, objects_insert, rows_copy, rows_insert
from imports.lead_rows import LeadMaker
from imports.models import ImportChange, ImportJob, ImportStatus
from imports.services import WRITERS, import_job_create, import_job_resume, import_job_run
from imports.undo import import_job_undo
from leads.models import Activity, Company, Lead, LeadRank, Stage
from tests.factories import ActivityFactory, LeadFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

AWKWARD = 'Tab\there, line\nbreak, CR\r, back\\slash, "quotes", \\N, Zoë'


@pytest.fixture(autouse=True)
def uploads(tmp_path, settings):
    settings.IMPORT_DIR = tmp_path / "uploads"


def run(path, *, chunk_size: int | None = None, **fields) -> ImportJob:
    fields.setdefault("kind", "leads")
    with path.open("rb") as handle:
        job = import_job_create(file=handle, file_name=path.name, by=None, enqueue=False, **fields)
    ran = import_job_run(job_id=job.pk, chunk_size=chunk_size)
    assert ran is not None
    return ran


def stored(lead: Lead) -> dict:
    values = Lead.objects.filter(pk=lead.pk).values().get()
    for name in ("id", "email", "created_at", "updated_at"):
        values.pop(name)
    return values


def test_copied_leads_are_stored_as_bulk_create_stores_them():
    # Given two identical new leads with awkward text, JSON, times, a company and a stage
    company = Company.objects.create(name="Acme", domain="acme.example")
    at = dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=dt.UTC)

    def lead(email: str) -> Lead:
        return Lead(
            email=email,
            first_name="Zoë",
            last_name=AWKWARD[:100],
            job_title=AWKWARD,
            company=company,
            stage=Stage.MQL,
            stage_changed_at=at,
            engagement_at=None,
            custom_fields={"note": AWKWARD, "size": 12, "nested": {"ok": True, "list": [1.5]}},
        )

    copied, created = lead("copied@acme.example"), lead("created@acme.example")

    # When one goes in through COPY and the other through bulk_create
    objects_insert([copied])
    Lead.objects.bulk_create([created])

    # Then both hold the same values, the copied one has its id, and the trigger that
    # keeps the lead rank ran for it
    assert copied.pk is not None
    assert not copied._state.adding
    assert stored(copied) == stored(created)
    assert Lead.objects.get(pk=copied.pk).custom_fields["note"] == AWKWARD
    assert LeadRank.objects.get(lead_id=copied.pk).stage == Stage.MQL


def test_a_lead_made_positionally_equals_one_made_with_keywords(rep):
    # Given the values a lead row brings, an owner among them
    owner = rep.pk
    now = timezone.now()
    values = {
        "email": "anna@acme.example",
        "external_id": "CRM-1",
        "first_name": "Anna",
        "owner_id": owner,
        "country": "DE",
        "custom_fields": {"fleet_size": 12},
        "source": "event",
    }

    # When the import's maker makes it, and Django makes it from keywords
    make = LeadMaker(now)
    made, expected = make(dict(values)), Lead(**values, created_at=now, stage_changed_at=now)

    # Then every field holds the same, and a lead without custom fields gets its own dict
    for field in Lead._meta.concrete_fields:
        if field.attname != "updated_at":
            assert getattr(made, field.attname) == getattr(expected, field.attname), field
    assert made._state.adding
    other = make({"email": "bo@acme.example"})
    other.custom_fields["x"] = 1
    assert make({"email": "cy@acme.example"}).custom_fields == {}


def test_rows_insert_answers_each_rows_new_id_in_order():
    # Given two leads and activities alternating between them
    a, b = LeadFactory(), LeadFactory()
    at = timezone.now().replace(microsecond=0)
    rows = [
        (
            lead.pk,
            kind,
            at - dt.timedelta(minutes=n),
            AWKWARD,
            {"description": AWKWARD},
            at,
            "x",
            "",
        )
        for n, (lead, kind) in enumerate(
            [(a, "page_view"), (b, "email_open"), (a, "demo_request"), (b, "call")]
        )
    ]
    columns = ("lead_id", "type", "occurred_at", "url", "properties", "received_at", "source")

    # When they are inserted without building an instance each
    ids = rows_insert(Activity, (*columns, "idempotency_key"), rows)

    # Then each id holds its own row, exactly
    assert len(set(ids)) == 4
    for activity_id, (lead_id, kind, occurred_at, url, properties, *_) in zip(
        ids, rows, strict=True
    ):
        activity = Activity.objects.get(pk=activity_id)
        assert (activity.lead_id, activity.type, activity.occurred_at) == (
            lead_id,
            kind,
            occurred_at,
        )
        assert (activity.url, activity.properties) == (url, properties)
    # And the next id the table gives is past them
    assert ActivityFactory(lead=a).pk > max(ids)


def test_without_postgresql_the_same_rows_go_through_bulk_create(monkeypatch):
    # Given a database that is not PostgreSQL (as bulk_insert sees it)
    monkeypatch.setattr(bulk_insert, "connections", {"default": SimpleNamespace(vendor="sqlite")})
    lead = LeadFactory()
    at = timezone.now()

    # When rows and instances are inserted
    columns = ("lead_id", "type", "occurred_at")
    ids = rows_insert(Activity, columns, [(lead.pk, "call", at)])
    rows_copy(Activity, columns, [(lead.pk, "meeting", at)])
    company = Company(name="Fallback Ltd", domain="fallback.example")
    objects_insert([company])

    # Then they are stored all the same, ids set where asked for
    assert Activity.objects.get(pk=ids[0]).type == "call"
    assert Activity.objects.filter(lead=lead, type="meeting").count() == 1
    assert Company.objects.get(pk=company.pk).name == "Fallback Ltd"


def test_copy_text_writes_each_kind_of_value_as_copy_reads_it():
    at = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    assert copy_text(None) == "\\N"
    assert copy_text("a\tb\nc\rd\\e") == "a\\tb\\nc\\rd\\\\e"
    assert copy_text("\\N") == "\\\\N"  # the text, not NULL
    assert (copy_text(True), copy_text(False)) == ("t", "f")
    assert (copy_text(7), copy_text(1.5), copy_text(Decimal("12.30"))) == ("7", "1.5", "12.30")
    assert copy_text(at) == "2024-05-01T12:00:00+00:00"
    assert copy_text(dt.date(2024, 5, 1)) == "2024-05-01"
    assert copy_text({}) == "{}"
    assert copy_text({"a": "x\ty", "at": at}) == '{"a": "x\\\\ty", "at": "2024-05-01T12:00:00Z"}'
    assert copy_lines([(1, "a\tb", None), (2, at, at)]) == (
        "1\ta\\tb\t\\N\n2\t2024-05-01T12:00:00+00:00\t2024-05-01T12:00:00+00:00\n"
    )
    mixed = (True, False, {}, {"a": "x\ty", "at": at}, Decimal("12.30"), 1.5, dt.date(2024, 5, 1))
    assert copy_lines([mixed]) == "\t".join(copy_text(value) for value in mixed) + "\n"


def test_change_records_written_with_copy_are_what_undo_reads(tmp_path):
    # Given a stored lead, then an import that changes its name to awkward text
    lead = LeadFactory(email="old@acme.example", last_name="Original", job_title="Buyer")
    path = tmp_path / "leads.csv"
    path.write_text('email,last_name\nold@acme.example,"Back\\slash ""quoted"" \\N"\n')
    job = run(path)
    lead.refresh_from_db()
    assert lead.last_name == 'Back\\slash "quoted" \\N'

    # Then its change record holds the values before and after, exactly
    change = ImportChange.objects.get(job=job)
    assert (change.object_id, change.lead_id, change.action) == (lead.pk, lead.pk, "updated")
    assert (change.before, change.after) == (
        {"last_name": "Original"},
        {"last_name": 'Back\\slash "quoted" \\N'},
    )

    # And undo reads it back and restores the lead
    import_job_undo(job_id=job.pk, by=None)
    lead.refresh_from_db()
    assert lead.last_name == "Original"


def test_an_activity_import_widens_its_leads_activity_times_once_its_rows_are_in(
    tmp_path, monkeypatch
):
    # Given a lead with activities from March to May, and one without any
    def at(month: int, day: int = 1) -> dt.datetime:
        return dt.datetime(2024, month, day, 12, tzinfo=dt.UTC)

    busy = LeadFactory(email="busy@acme.example")
    for month in (3, 5):
        ActivityFactory(lead=busy, occurred_at=at(month))
    Lead.objects.filter(pk=busy.pk).update(first_activity_at=at(3), last_activity_at=at(5))
    quiet = LeadFactory(email="quiet@acme.example")
    path = tmp_path / "history.csv"
    path.write_text(
        "email,type,date\n"
        "busy@acme.example,page_view,2024-01-15 12:00\n"
        "quiet@acme.example,email_open,2024-04-01 12:00\n"
        "busy@acme.example,call,2024-04-01 12:00\n"
        "busy@acme.example,meeting,2024-07-01 12:00\n"
    )
    spans_during_chunks = []
    real = history_rows.write_activity_rows

    def watching(**kwargs):
        real(**kwargs)
        spans_during_chunks.append(Lead.objects.get(pk=busy.pk).last_activity_at)

    monkeypatch.setitem(WRITERS, "activities", watching)

    # When the history is imported in chunks of two rows
    job = run(
        path,
        kind="activities",
        mapping={"email": "email", "type": "type", "date": "occurred_at"},
        chunk_size=2,
    )

    # Then the chunks left the leads' rows alone, and the job widened them at its end
    assert job.status == ImportStatus.DONE
    assert spans_during_chunks == [at(5), at(5)]
    busy.refresh_from_db()
    quiet.refresh_from_db()
    assert (busy.first_activity_at, busy.last_activity_at) == (at(1, 15), at(7))
    assert (quiet.first_activity_at, quiet.last_activity_at) == (at(4), at(4))


def test_a_resumed_activity_import_widens_the_times_of_every_chunks_leads(tmp_path, monkeypatch):
    # Given three leads and a history of one event each, imported a row a chunk
    leads = [LeadFactory(email=f"lead{n}@acme.example") for n in range(3)]
    path = tmp_path / "history.csv"
    path.write_text(
        "email,type,date\n"
        + "".join(f"lead{n}@acme.example,call,2024-0{n + 1}-10 09:00\n" for n in range(3))
    )
    mapping = {"email": "email", "type": "type", "date": "occurred_at"}
    with path.open("rb") as handle:
        job = import_job_create(
            file=handle,
            file_name=path.name,
            kind="activities",
            by=None,
            mapping=mapping,
            enqueue=False,
        )

    # When the worker dies in the second chunk, and the job is resumed
    real = history_rows.write_activity_rows
    calls = []

    def dies_in_the_second_chunk(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Dies
        real(**kwargs)

    monkeypatch.setitem(WRITERS, "activities", dies_in_the_second_chunk)
    with pytest.raises(Dies):
        import_job_run(job_id=job.pk, chunk_size=1)
    assert Lead.objects.get(pk=leads[0].pk).first_activity_at is None
    monkeypatch.setitem(WRITERS, "activities", real)
    resumed = import_job_resume(job_id=job.pk, chunk_size=1)

    # Then every lead's times cover its event, the first chunk's lead's too
    assert resumed is not None
    assert resumed.status == ImportStatus.DONE
    for n, lead in enumerate(leads):
        lead.refresh_from_db()
        when = dt.datetime(2024, n + 1, 10, 9, tzinfo=dt.UTC)
        assert (lead.first_activity_at, lead.last_activity_at) == (when, when)


class Dies(BaseException):
    """A worker killed mid-chunk."""


def test_an_activity_row_without_its_lead_key_fails_that_row_alone(tmp_path):
    # Given a history whose second row has no email
    LeadFactory(email="known@acme.example")
    path = tmp_path / "history.csv"
    path.write_text(
        "email,type,date\n"
        "known@acme.example,call,2024-03-01 10:00\n"
        ",call,2024-03-02 10:00\n"
        "known@acme.example,meeting,2024-03-03 10:00\n"
    )

    # When it is imported
    job = run(
        path, kind="activities", mapping={"email": "email", "type": "type", "date": "occurred_at"}
    )

    # Then the other rows are stored and that one failed, saying why
    assert job.status == ImportStatus.DONE
    assert (job.created, job.failed) == (2, 1)
    error = job.row_errors.get()
    assert (error.row, error.reason) == (3, "The row has no email, which leads are matched on.")
    assert error.values == [None, "call", "2024-03-02 10:00"]


def test_without_postgresql_activities_are_looked_up_stored_and_widened_the_portable_way(
    tmp_path, monkeypatch
):
    # Given a database that the import's writers take for SQLite
    from imports import chunks

    sqlite = SimpleNamespace(vendor="sqlite")
    monkeypatch.setattr(history_rows, "connection", sqlite)
    monkeypatch.setattr(chunks, "connection", sqlite)
    monkeypatch.setattr(bulk_insert, "connections", {"default": sqlite})
    lead = LeadFactory(email="lead@acme.example")
    path = tmp_path / "history.csv"
    path.write_text(
        "email,type,date\n"
        "LEAD@acme.example,call,2024-03-01 10:00\n"
        "lead@acme.example,meeting,2024-03-05 10:00\n"
        "nobody@acme.example,call,2024-03-02 10:00\n"
    )
    mapping = {"email": "email", "type": "type", "date": "occurred_at"}

    # When the history is imported twice
    first = run(path, kind="activities", mapping=mapping)
    again = run(path, kind="activities", mapping=mapping)

    # Then the first run stored both events of the known lead and widened its times,
    # and the second found them stored
    assert (first.created, first.unchanged, first.failed) == (2, 0, 1)
    assert (again.created, again.unchanged, again.failed) == (0, 2, 1)
    assert Activity.objects.filter(lead=lead).count() == 2
    lead.refresh_from_db()
    assert (lead.first_activity_at, lead.last_activity_at) == (
        dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC),
        dt.datetime(2024, 3, 5, 10, tzinfo=dt.UTC),
    )


def _flushed_statistics() -> None:
    """Make this backend's pending table statistics visible (PostgreSQL 15 flushes them
    at a transaction's end at most once a second unless told)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _rows_at_last_analyze(table: str) -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [table])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_table_an_import_grows_from_empty_is_analyzed_as_it_doubles():
    # Given the leads table analyzed while it held no lead
    from django.db import connection

    from imports.chunks import statistics_refresh

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE leads_lead")
    assert _rows_at_last_analyze("leads_lead") <= 0

    # When an import adds a few hundred rows, the statistics are still good enough
    Lead.objects.bulk_create([Lead(email=f"a{n}@x.example") for n in range(500)])
    _flushed_statistics()
    assert statistics_refresh(Lead) == []

    # But once it has added more than a thousand, the table is analyzed: the planner
    # learns it is no longer empty, and the next chunk finds its rows through the indexes
    Lead.objects.bulk_create([Lead(email=f"b{n}@x.example") for n in range(1_000)])
    _flushed_statistics()
    assert statistics_refresh(Lead) == ["leads_lead"]
    assert _rows_at_last_analyze("leads_lead") == 1_500

    # And not again until more rows changed than it had then
    Lead.objects.bulk_create([Lead(email=f"c{n}@x.example") for n in range(1_000)])
    _flushed_statistics()
    assert statistics_refresh(Lead) == []

"""Import jobs end to end (PostgreSQL): messy files through the bulk queue, idempotent
re-imports, resume after a killed worker, quiet writes scored once at the end, undo
with a lead changed in between, dry runs and bad files that leave nothing behind."""

from __future__ import annotations

import codecs
import datetime as dt
from decimal import Decimal

import openpyxl
import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from crm.models import WebhookDelivery
from imports import lead_rows
from imports.mapping import MappingError
from imports.models import ImportChange, ImportJob, ImportRowError, ImportStatus
from imports.reading import ImportFileError
from imports.services import (
    WRITERS,
    import_error_rows,
    import_job_create,
    import_job_resume,
    import_job_run,
)
from imports.undo import import_job_undo
from leads.handoff_models import HandOff, Notification
from leads.models import Activity, Company, Deal, DealOutcome, Lead, Stage, StageChange
from leads.stages import lead_move_to_stage
from nurturing.models import Enrollment
from scoring.lead_scoring import leads_score
from scoring.verification import scores_verify
from tests.factories import LeadFactory, active_model, fit_rule, page_rule
from tests.test_nurture_sending import email_sequence

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

MESSY = (
    "E-mail;Name;Company Name;Country;Phone;Stage;Notes;e-mail;;\r\n"
    "  ANNA.MUELLER@Acme-Industries.DE ;ANNA MÜLLER;Acme Industries;Deutschland;"
    '030 1234567;MQL;"called twice,\r\nwants a demo";;;\r\n'
    ";;;;;;;;;\r\n"
    "bob@gmail.com;Bob McDonald;N/A;USA;+1 415 555 2671;Select;-;bob@work.example;;\r\n"
    "carla@acme-industries.de;Carla Rossi;;Italy;;;;;;\r\n"
    "not-an-email;Dora;;Atlantis;;;;;;\r\n"
)
MAPPING = {
    "E-mail": "email",
    "Name": "full_name",
    "Company Name": "company",
    "Country": "country",
    "Phone": "phone",
    "Stage": "stage",
}


@pytest.fixture(autouse=True)
def uploads(tmp_path, settings):
    settings.IMPORT_DIR = tmp_path / "uploads"
    return settings.IMPORT_DIR


def messy_csv(tmp_path, text: str = MESSY, *, encoding: str = "utf-8", bom: bool = True):
    path = tmp_path / "leads.csv"
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + text.encode(encoding))
    return path


def create(path, **fields) -> ImportJob:
    fields.setdefault("kind", "leads")
    fields.setdefault("by", None)
    fields.setdefault("enqueue", False)
    with path.open("rb") as handle:
        return import_job_create(file=handle, file_name=path.name, **fields)


def run(path, **fields) -> ImportJob:
    job = create(path, **fields)
    ran = import_job_run(job_id=job.pk, chunk_size=fields.get("chunk_size"))
    assert ran is not None
    return ran


def counts(job: ImportJob) -> tuple[int, int, int, int, int]:
    job.refresh_from_db()
    return (job.created, job.updated, job.unchanged, job.skipped, job.failed)


def test_a_messy_csv_imports_through_the_bulk_queue(
    tmp_path, marketer, django_capture_on_commit_callbacks
):
    # Given Excel's CSV of an event list: a BOM, semicolons, a quoted newline, an empty
    # line, trailing empty columns, a repeated header, placeholders and a bad row
    path = messy_csv(tmp_path)

    # When a marketer imports it, the job queued after commit and run (eagerly)
    with django_capture_on_commit_callbacks(execute=True):
        job = create(
            path,
            by=marketer,
            mapping=MAPPING,
            constants={"source": "event", "campaign": "Expo 2024"},
            enqueue=True,
        )

    # Then three leads are in, the bad row failed with its reasons, and the job is done
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE
    assert (job.file_format, job.encoding, job.delimiter) == ("csv", "utf-8-sig", ";")
    assert job.headers[7] == "e-mail (2)"
    assert counts(job) == (3, 0, 0, 0, 1)
    assert (job.total_rows, job.rows_done) == (4, 4)
    anna = Lead.objects.get(email="anna.mueller@acme-industries.de")
    assert (anna.first_name, anna.last_name) == ("Anna", "Müller")
    assert (anna.country, anna.phone, anna.stage) == ("DE", "+49301234567", Stage.MQL)
    assert (anna.source, anna.campaign) == ("event", "Expo 2024")
    assert anna.company is not None
    assert (anna.company.name, anna.company.domain) == ("Acme Industries", "acme-industries.de")
    assert StageChange.objects.filter(lead=anna, to_stage=Stage.MQL).count() == 1
    # Bob: placeholders stayed empty, a free-mail address links no company
    bob = Lead.objects.get(email="bob@gmail.com")
    assert (bob.first_name, bob.last_name) == ("Bob", "McDonald")
    assert (bob.company, bob.stage, bob.phone, bob.country) == (
        None,
        Stage.NEW,
        "+14155552671",
        "US",
    )
    # Carla is linked to Anna's company by her email's domain
    carla = Lead.objects.get(email="carla@acme-industries.de")
    assert carla.company == anna.company
    assert Company.objects.count() == 1
    # And the error file lists the failed row with its cells and reasons
    error_file = "".join(import_error_rows(job=job)).splitlines()
    assert error_file[0] == (
        "E-mail,Name,Company Name,Country,Phone,Stage,Notes,e-mail (2),Row,Error"
    )
    assert error_file[1].startswith("not-an-email,Dora,,Atlantis,,,,,6,")
    assert "E-mail: “not-an-email” is not an email address." in error_file[1]
    assert "Country: “Atlantis” is not a country" in error_file[1]


def test_the_same_file_imported_again_changes_nothing(tmp_path):
    # Given a Latin-1 file (an old CRM's export) imported once
    path = messy_csv(tmp_path, MESSY.replace("MÜLLER", "MÜLLER"), encoding="cp1252", bom=False)
    first = run(path, mapping=MAPPING)
    assert first.encoding == "cp1252"
    assert counts(first) == (3, 0, 0, 0, 1)
    leads = list(Lead.objects.order_by("pk").values())

    # When it is imported again
    second = run(path, mapping=MAPPING)

    # Then every row is unchanged, nothing was written and nothing recorded to undo
    assert counts(second) == (0, 0, 3, 0, 1)
    assert list(Lead.objects.order_by("pk").values()) == leads
    assert not ImportChange.objects.filter(job=second).exists()
    assert Company.objects.count() == 1


def test_a_changed_cell_updates_only_that_field_and_an_empty_one_keeps_the_value(tmp_path):
    run(messy_csv(tmp_path), mapping=MAPPING)
    anna = Lead.objects.get(email="anna.mueller@acme-industries.de")

    # When a second file gives Anna a new phone number and no country
    path = tmp_path / "fix.csv"
    path.write_text("Email,Phone,Country\nanna.mueller@acme-industries.de,030 7654321,\n")
    job = run(path, phone_region="DE")

    assert counts(job) == (0, 1, 0, 0, 0)
    anna.refresh_from_db()
    assert (anna.phone, anna.country) == ("+49307654321", "DE")
    change = ImportChange.objects.get(job=job)
    assert (change.before, change.after) == ({"phone": "+49301234567"}, {"phone": "+49307654321"})


class Killed(BaseException):
    """What a worker killed mid-chunk looks like to the code it ran: nothing after it."""


def test_an_import_resumes_after_a_killed_worker_from_the_last_committed_chunk(
    tmp_path, monkeypatch
):
    # Given a file of seven leads, imported in chunks of two
    lines = ["email,first_name"] + [f"lead{n}@firm{n}.example,Lead {n}" for n in range(7)]
    path = tmp_path / "seven.csv"
    path.write_text("\n".join(lines) + "\n")
    job = create(path)

    # When the worker dies while writing the third chunk
    real = lead_rows.write_lead_rows
    calls = []

    def dies_on_the_third_chunk(**kwargs):
        calls.append(len(kwargs["rows"]))
        if len(calls) == 3:
            raise Killed
        return real(**kwargs)

    monkeypatch.setitem(WRITERS, "leads", dies_on_the_third_chunk)
    with pytest.raises(Killed):
        import_job_run(job_id=job.pk, chunk_size=2)

    # Then two chunks are committed and the job is still running from row 5
    job.refresh_from_db()
    assert (job.status, job.rows_done, job.last_row, job.created) == ("running", 4, 5, 4)
    assert Lead.objects.count() == 4

    # When the run is taken up again (the beat's sweeper, or --resume)
    monkeypatch.setitem(WRITERS, "leads", real)
    resumed = import_job_resume(job_id=job.pk, chunk_size=2)

    # Then it goes on after row 5: seven leads, each once, counted once
    assert resumed is not None
    assert resumed.status == ImportStatus.DONE
    assert counts(resumed) == (7, 0, 0, 0, 0)
    assert resumed.rows_done == 7
    assert Lead.objects.count() == 7
    assert ImportChange.objects.filter(job=job).count() == 7
    # And a late second delivery of the same job finds nothing to do
    assert import_job_run(job_id=job.pk) is None


@pytest.fixture
def loud_world(rep, team):
    """Everything a lead crossing SQL sets off: a model whose thresholds imported
    history crosses, an automatic nurture track for warm leads, a team webhook."""
    from crm.models import TeamWebhook
    from leads.handoff_models import AssignmentKind, AssignmentRule
    from leads.models import Band

    model = active_model(
        mql_threshold=10, sql_threshold=40, warm_from=10, hot_from=40, decay_half_life_days=365
    )
    fit_rule(model, 10, "country", "equals", "DE")
    page_rule(model, 35, "/pricing")
    email_sequence("Warm track", bands=[Band.WARM, Band.HOT], priority=10)
    AssignmentRule.objects.create(
        name="Germany", kind=AssignmentKind.TERRITORY, countries=["DE"], owner=rep, position=1
    )
    TeamWebhook.objects.create(team=team, name="#sales", url="https://hooks.example/hotlist")
    return model


def test_an_import_is_quiet_and_scores_once_at_the_end(
    tmp_path, loud_world, django_capture_on_commit_callbacks
):
    # Given leads from Germany and their history of pricing-page views, months old
    leads = tmp_path / "leads.csv"
    leads.write_text(
        "email,country,stage\na@acme.example,DE,\nb@acme.example,DE,sql\nc@other.example,FR,\n"
    )
    history = tmp_path / "activities.csv"
    history.write_text(
        "email,activity,date,page\n"
        "a@acme.example,Page view,2024-01-10 10:00,https://hotlist.example/pricing\n"
        "a@acme.example,Page view,15.01.2024 11:00,https://hotlist.example/pricing\n"
        f"c@other.example,page_view,{timezone.now():%Y-%m-%d},https://hotlist.example/pricing\n"
    )

    # When both are imported through the queue, every after-commit hook running
    with django_capture_on_commit_callbacks(execute=True):
        create(leads, enqueue=True)
    with django_capture_on_commit_callbacks(execute=True):
        job = create(
            history,
            kind="activities",
            mapping={"email": "email", "activity": "type", "date": "occurred_at", "page": "url"},
            time_zone="Europe/Berlin",
            enqueue=True,
        )

    # Then the leads are scored, each activity at its own time with decay, the same as
    # a full recomputation gives
    job.refresh_from_db()
    assert counts(job) == (3, 0, 0, 0, 0)
    a, b, c = (
        Lead.objects.get(email=f"{x}")
        for x in ("a@acme.example", "b@acme.example", "c@other.example")
    )
    assert 10 < a.score < 10 + 2 * 35  # the fit and what is left of the views
    assert c.score == 35  # a view from today, barely decayed
    assert list(scores_verify()) == []
    visits = Activity.objects.filter(lead=a).order_by("occurred_at")
    assert [v.occurred_at for v in visits] == [
        dt.datetime(2024, 1, 10, 9, tzinfo=dt.UTC),
        dt.datetime(2024, 1, 15, 10, tzinfo=dt.UTC),
    ]
    assert a.first_activity_at == visits[0].occurred_at
    # And nothing reacted: no stage move by scoring (a and c crossed MQL), no hand-off for b
    # set to SQL, no notification, webhook, nurture enrollment or real-time scoring left
    assert (a.stage, b.stage, c.stage) == (Stage.NEW, Stage.SQL, Stage.NEW)
    assert list(StageChange.objects.values_list("lead__email", "to_stage")) == [
        ("b@acme.example", Stage.SQL)
    ]
    assert not HandOff.objects.exists()
    assert not Notification.objects.exists()
    assert not WebhookDelivery.objects.exists()
    assert not Enrollment.objects.exists()
    assert not Activity.objects.filter(scored_at__isnull=True).exists()
    # And a real-time rescore of the leads now finds nothing to change
    assert all(r.new_entries == 0 for r in leads_score(lead_ids=[a.pk, b.pk, c.pk]))


def test_undo_removes_and_restores_but_leaves_a_lead_changed_since(tmp_path, manager):
    # Given an existing lead, then an import that creates two leads and updates it
    existing = LeadFactory(email="old@acme.example", job_title="Buyer", country="DE")
    path = tmp_path / "leads.csv"
    path.write_text(
        "email,job_title,country,stage,company\n"
        "old@acme.example,Head of Buying,FR,mql,\n"
        "new1@newco.example,CTO,DE,sql,New Co\n"
        "new2@acme.example,CFO,DE,,\n"
    )
    job = run(path, by=manager)
    assert counts(job) == (2, 1, 0, 0, 0)
    assert Company.objects.filter(name="New Co", domain="newco.example").exists()
    existing.refresh_from_db()
    assert (existing.job_title, existing.country, existing.stage) == (
        "Head of Buying",
        "FR",
        Stage.MQL,
    )

    # And, after the import, someone edits the existing lead's country and new2's title
    Lead.objects.filter(pk=existing.pk).update(country="AT")
    Lead.objects.filter(email="new2@acme.example").update(job_title="Chief Financial Officer")

    # When the import is undone
    undone = import_job_undo(job_id=job.pk, by=manager)

    # Then new1 is gone with its stage history and its company, new2 (changed since)
    # stays, and the existing lead has its title
    # and stage back while the country edited since is left as it is, and reported
    assert undone.status == ImportStatus.UNDONE
    assert set(Lead.objects.values_list("email", flat=True)) == {
        "old@acme.example",
        "new2@acme.example",
    }
    existing.refresh_from_db()
    assert (existing.job_title, existing.country, existing.stage) == ("Buyer", "AT", Stage.NEW)
    assert not StageChange.objects.exists()
    assert not Company.objects.filter(name="New Co").exists()
    report = undone.undo_report
    assert report["kept_count"] == 2
    whys = sorted(kept["why"] for kept in report["kept"])
    assert whys == [
        "changed since the import: country",
        "changed since the import: job_title",
    ]
    assert list(scores_verify()) == []
    # And an undone import cannot be undone twice
    with pytest.raises(ValueError, match="undone already"):
        import_job_undo(job_id=job.pk, by=manager)


def test_deals_bring_the_won_and_lost_history_and_undo_takes_it_away(tmp_path):
    lead = LeadFactory(email="buyer@acme.example")
    path = tmp_path / "deals.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Email", "Deal Name", "Amount", "Outcome", "Close Date"])
    closed = dt.datetime(2023, 5, 2)  # noqa: DTZ001 (naive in the sheet, Berlin time)
    sheet.append(["buyer@acme.example", "Pilot", "1.200,50", "Closed Won", closed])
    sheet.append(["buyer@acme.example", "Expansion", 5000, "lost", "2024-02-01"])
    sheet.append(["nobody@acme.example", "Ghost", 10, "won", "2024-02-01"])
    workbook.save(path)

    job = run(path, kind="deals", time_zone="Europe/Berlin", decimal_comma=True)

    assert counts(job) == (2, 0, 0, 0, 1)
    pilot = Deal.objects.get(name="Pilot")
    assert (pilot.amount, pilot.status) == (Decimal("1200.50"), "won")
    assert pilot.closed_at == dt.datetime(2023, 5, 1, 22, tzinfo=dt.UTC)
    lead.refresh_from_db()
    assert lead.deal_outcome == DealOutcome.WON
    assert job.row_errors.get().reason == "No lead with the email “nobody@acme.example”."
    # Imported again: unchanged
    assert counts(run(path, kind="deals", time_zone="Europe/Berlin", decimal_comma=True)) == (
        0,
        0,
        2,
        0,
        1,
    )

    import_job_undo(job_id=job.pk, by=None)

    assert not Deal.objects.exists()
    lead.refresh_from_db()
    assert lead.deal_outcome == DealOutcome.NONE


def test_stored_companies_and_deals_take_each_rows_changes_and_undo_gives_them_back(tmp_path):
    # Given two companies and two deals already stored
    acme = Company.objects.create(name="Acme", domain="acme.example", employee_count=50)
    globex = Company.objects.create(name="Globex", domain="globex.example", country="US")
    lead = LeadFactory(email="buyer@acme.example", company=acme)
    Deal.objects.create(lead=lead, name="Pilot", amount=Decimal("100.00"))
    Deal.objects.create(lead=lead, name="Expansion", amount=Decimal("900.00"))

    # When one file changes a different field of each company, and another one of each deal
    companies = tmp_path / "companies.csv"
    companies.write_text(
        "Name,Domain,Employees,Country\nAcme,acme.example,75,\nGlobex,globex.example,,DE\n"
    )
    deals = tmp_path / "deals.csv"
    deals.write_text(
        "Email,Deal Name,Amount,Outcome,Close Date\n"
        "buyer@acme.example,Pilot,150,,\n"
        "buyer@acme.example,Expansion,,lost,2024-02-01\n"
    )
    company_job = run(companies, kind="companies")
    deal_job = run(deals, kind="deals")

    # Then each row's field changed, and only that one
    assert counts(company_job) == (0, 2, 0, 0, 0)
    assert counts(deal_job) == (0, 2, 0, 0, 0)
    acme.refresh_from_db()
    globex.refresh_from_db()
    assert (acme.employee_count, acme.country, globex.employee_count, globex.country) == (
        75,
        "",
        None,
        "DE",
    )
    pilot, expansion = Deal.objects.get(name="Pilot"), Deal.objects.get(name="Expansion")
    assert (pilot.amount, pilot.status) == (Decimal("150.00"), "open")
    assert (expansion.amount, expansion.status) == (Decimal("900.00"), "lost")

    # And undone, each is as it was
    import_job_undo(job_id=deal_job.pk, by=None)
    import_job_undo(job_id=company_job.pk, by=None)
    acme.refresh_from_db()
    globex.refresh_from_db()
    assert (acme.employee_count, globex.country) == (50, "US")
    assert [(d.name, d.amount, d.status) for d in Deal.objects.order_by("name")] == [
        ("Expansion", Decimal("900.00"), "open"),
        ("Pilot", Decimal("100.00"), "open"),
    ]


def test_a_dry_run_counts_and_checks_but_stores_nothing(tmp_path):
    job = run(messy_csv(tmp_path), mapping=MAPPING, dry_run=True)

    assert job.status == ImportStatus.DONE
    assert counts(job) == (3, 0, 0, 0, 1)
    assert not Lead.objects.exists()
    assert not Company.objects.exists()
    assert not ImportChange.objects.exists()
    assert ImportRowError.objects.filter(job=job).count() == 1


def test_bad_files_and_mappings_are_answered_in_words_and_leave_nothing(tmp_path, uploads):
    garbage = tmp_path / "leads.csv"
    garbage.write_bytes(bytes(range(256)) * 100)
    with pytest.raises(ImportFileError, match="not a CSV or XLSX"):
        create(garbage)

    good = messy_csv(tmp_path)
    with pytest.raises(MappingError, match="no column “Mail”"):
        create(good, mapping={"Mail": "email"})

    assert not ImportJob.objects.exists()
    assert not any(p.is_file() for p in uploads.rglob("*"))


def test_reps_and_outsiders_may_not_import(tmp_path, rep, django_user_model):
    outsider = django_user_model.objects.create_user("outsider", password="pw")
    for person in (rep, outsider):
        with pytest.raises(PermissionDenied, match="managers, marketers and admins"):
            create(messy_csv(tmp_path), mapping=MAPPING, by=person)
    assert not ImportJob.objects.exists()
    assert not Lead.objects.exists()


def test_a_managers_import_cannot_change_another_teams_lead(tmp_path, manager, django_user_model):
    from crm.models import Role, Team
    from tests.conftest import make_user

    south = Team.objects.create(name="South")
    stranger = make_user("south-rep", Role.REP, team=south)
    theirs = LeadFactory(email="theirs@acme.example", owner=stranger, job_title="CEO")
    path = tmp_path / "leads.csv"
    path.write_text("email,job_title\ntheirs@acme.example,Intern\nmine@acme.example,CTO\n")

    job = run(path, by=manager)

    assert counts(job) == (1, 0, 0, 0, 1)
    theirs.refresh_from_db()
    assert theirs.job_title == "CEO"
    assert "not yours" in job.row_errors.get().reason or "may not" in job.row_errors.get().reason


def test_a_stage_the_lifecycle_forbids_fails_the_row(tmp_path):
    customer = LeadFactory(email="client@acme.example")
    for stage in (Stage.MQL, Stage.OPPORTUNITY):
        lead_move_to_stage(lead_id=customer.pk, stage=stage)
    # A customer by a won deal, as the lifecycle wants.
    Lead.objects.filter(pk=customer.pk).update(stage=Stage.CUSTOMER)
    path = tmp_path / "leads.csv"
    path.write_text("email,stage\nclient@acme.example,new\n")

    job = run(path)

    assert counts(job) == (0, 0, 0, 0, 1)
    assert job.row_errors.get().reason == "A lead cannot move from Customer to New."


def test_without_postgresql_the_leads_are_scored_in_chunks_just_as_quietly(
    tmp_path, loud_world, monkeypatch
):
    # Given the chunked path SQLite takes (scoring.quiet_rescore falls back on the vendor)
    from types import SimpleNamespace

    from scoring import quiet_rescore

    monkeypatch.setattr(quiet_rescore, "connection", SimpleNamespace(vendor="sqlite"))
    path = tmp_path / "leads.csv"
    path.write_text("email,country,stage\na@acme.example,DE,\nb@acme.example,DE,sql\n")
    history = tmp_path / "activities.csv"
    history.write_text(
        f"email,type,date,url\na@acme.example,page_view,{timezone.now():%Y-%m-%d},/pricing\n"
    )

    run(path)
    job = run(
        history,
        kind="activities",
        mapping={"email": "email", "type": "type", "date": "occurred_at", "url": "url"},
    )

    # Then the lead crossed SQL's threshold and nothing reacted
    assert counts(job) == (1, 0, 0, 0, 0)
    a = Lead.objects.get(email="a@acme.example")
    assert (a.score, a.stage) == (45, Stage.NEW)
    assert list(scores_verify()) == []
    assert not HandOff.objects.exists()
    assert not Enrollment.objects.exists()
    assert StageChange.objects.count() == 1  # b's, set by the import

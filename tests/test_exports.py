"""Exports of lead lists: the files' content (CSV and XLSX, read back), the leads list's
export links and view, and the lead admin's export action, per role.

The REST API's export is in tests/test_api_exports.py.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import tracemalloc
from types import SimpleNamespace

import openpyxl
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.models import Role, Team
from leads import exports
from leads.exports import EXPORT_CHUNK, export_columns, leads_export_rows
from leads.models import CustomFieldDefinition, FieldType, Lead, ProductLine
from tests.conftest import make_user
from tests.factories import CompanyFactory, LeadFactory

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def body_of(response) -> bytes:
    assert response.status_code == 200, response
    return b"".join(response.streaming_content)


def csv_rows(response) -> list[dict[str, str]]:
    """The rows of a CSV download, read as Excel-minded tools do: BOM, then RFC 4180."""
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="leads-')
    body = body_of(response)
    assert body.startswith(codecs.BOM_UTF8)
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def xlsx_rows(response) -> list[dict[str, object]]:
    assert response["Content-Type"].endswith("spreadsheetml.sheet")
    workbook = openpyxl.load_workbook(io.BytesIO(body_of(response)))
    rows = list(workbook.active.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def emails(rows) -> list[str]:
    return [row["email"] for row in rows]


# --- The world: North (the fixtures' team) and a South lead -----------------------------


@pytest.fixture
def world(rep, other_rep, manager):
    south = Team.objects.create(name="South")
    seller = make_user("south_rep", Role.REP, team=south)
    return SimpleNamespace(
        rep=LeadFactory(
            owner=rep, score=50, email="rita@north.example", first_name="Rita", last_name="Rowe"
        ),
        other=LeadFactory(
            owner=other_rep,
            score=70,
            email="otto@north.example",
            first_name="Otto",
            last_name="Ott",
        ),
        manager=LeadFactory(
            owner=manager, score=60, email="mia@north.example", first_name="Mia", last_name="Moe"
        ),
        pool=LeadFactory(
            owner=None, score=40, email="paul@pool.example", first_name="Paul", last_name="Pike"
        ),
        south=LeadFactory(
            owner=seller, score=90, email="zeb@south.example", first_name="Zeb", last_name="Zed"
        ),
    )


NORTH_AND_POOL = ["otto@north.example", "mia@north.example", "rita@north.example"]
EVERYONE = ["zeb@south.example", *NORTH_AND_POOL, "paul@pool.example"]


# --- The leads list's export ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("manager", [*NORTH_AND_POOL, "paul@pool.example"]),
        ("marketer", EVERYONE),
        ("admin_user", EVERYONE),
    ],
)
def test_list_export_holds_the_leads_the_person_sees_hottest_first(
    request, world, persona, expected
):
    user = request.getfixturevalue(persona)

    response = client_for(user).get("/leads/export.csv")

    assert emails(csv_rows(response)) == expected


@pytest.mark.parametrize("persona", ["rep", "outsider"])
def test_reps_and_people_without_a_role_cannot_export(request, world, persona):
    user = request.getfixturevalue(persona)

    for file_format in ("csv", "xlsx"):
        response = client_for(user).get(f"/leads/export.{file_format}")

        assert response.status_code == 403
        assert "Content-Disposition" not in response


def test_signed_out_export_goes_to_the_login(world):
    response = Client().get("/leads/export.csv")

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_list_shows_export_links_with_its_query_to_those_who_may_export(world, manager, rep):
    shown = client_for(manager).get("/leads/?band=cold&sort=name&cursor=abc").content.decode()
    hidden = client_for(rep).get("/leads/?band=cold").content.decode()

    assert 'href="/leads/export.csv?band=cold&amp;sort=name"' in shown
    assert 'href="/leads/export.xlsx?band=cold&amp;sort=name"' in shown
    assert "Export CSV" not in hidden
    assert "/leads/export." not in hidden


def test_htmx_results_carry_export_links_for_the_new_filters(world, manager):
    response = client_for(manager).get("/leads/?owner=me", HTTP_HX_REQUEST="true")

    assert 'href="/leads/export.csv?owner=me"' in response.content.decode()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("owner=me", ["mia@north.example"]),
        ("owner=unassigned", ["paul@pool.example"]),
        ("score_min=55", ["otto@north.example", "mia@north.example"]),
        ("q=rita", ["rita@north.example"]),
        ("sort=name", ["mia@north.example", "otto@north.example", "paul@pool.example"]),
        ("sort=score", ["paul@pool.example", "rita@north.example", "mia@north.example"]),
    ],
)
def test_list_export_applies_the_lists_filters_and_sort(world, manager, query, expected):
    rows = csv_rows(client_for(manager).get(f"/leads/export.csv?{query}"))

    assert emails(rows)[: len(expected)] == expected
    if not query.startswith("sort"):
        assert len(rows) == len(expected)


def test_list_export_follows_a_sort_with_empty_values_as_the_pages_do(world, manager):
    # Given leads with and without a company
    Lead.objects.filter(pk=world.pool.pk).update(company=None)
    Lead.objects.filter(pk=world.rep.pk).update(company=CompanyFactory(name="Acme"))
    Lead.objects.filter(pk=world.other.pk).update(company=CompanyFactory(name="Zulu"))
    Lead.objects.filter(pk=world.manager.pk).update(company=CompanyFactory(name="Mango"))

    by_company = emails(csv_rows(client_for(manager).get("/leads/export.csv?sort=company")))
    backwards = emails(csv_rows(client_for(manager).get("/leads/export.csv?sort=-company")))

    # Then the empty ones come last either way, as on the list's pages
    named = ["rita@north.example", "mia@north.example", "otto@north.example"]
    assert by_company == [*named, "paul@pool.example"]
    assert backwards == [*reversed(named), "paul@pool.example"]


def test_list_export_as_xlsx_holds_the_same_leads(world, manager):
    rows = xlsx_rows(client_for(manager).get("/leads/export.xlsx?sort=name"))

    assert emails(rows) == [
        "mia@north.example",
        "otto@north.example",
        "paul@pool.example",
        "rita@north.example",
    ]
    assert rows[0]["score"] == 60
    assert rows[0]["owner"] == "manager"


@pytest.mark.parametrize("query", ["band=boiling", "score_min=9&score_max=1", "sort=shoe-size"])
def test_list_export_with_invalid_filters_answers_the_list_with_its_errors(world, manager, query):
    response = client_for(manager).get(f"/leads/export.csv?{query}")

    assert response.status_code == 400
    assert "Content-Disposition" not in response
    page = response.content.decode()
    assert "Nothing was exported: correct the filters first." in page
    assert "Some filters were left out" in page


def test_list_export_in_an_unknown_format_answers_400(world, manager):
    response = client_for(manager).get("/leads/export.pdf")

    assert response.status_code == 400
    assert response.content.decode() == "Export as csv or xlsx."


# --- What the file holds -----------------------------------------------------------------


@pytest.fixture
def profiled(marketer):
    """A lead with every kind of column filled in, and custom fields of each type."""
    for key, field_type in [
        ("fleet_size", FieldType.INTEGER),
        ("has_depot", FieldType.BOOLEAN),
        ("renewal_on", FieldType.DATE),
        ("motto", FieldType.TEXT),
    ]:
        CustomFieldDefinition.objects.create(key=key, label=key, field_type=field_type)
    lead = LeadFactory(
        first_name="Ana",
        last_name="Núñez",
        email="ana@fleet.example",
        phone="030 1234567",
        job_title="Head of Fleet",
        company=CompanyFactory(name="Fleet & Söhne", domain="fleet.example"),
        country="DE",
        source="event",
        utm_source="newsletter",
        utm_campaign='spring, "launch"\nsecond line',
        custom_fields={
            "fleet_size": 40,
            "has_depot": True,
            "renewal_on": "2025-06-30",
            "motto": '=HYPERLINK("http://evil.example")',
        },
        created_at=dt.datetime(2025, 1, 15, 12, 0, 30, 123456, tzinfo=dt.UTC),
        last_activity_at=dt.datetime(2025, 7, 1, 8, 0, tzinfo=dt.UTC),
    )
    lead.product_interests.add(
        ProductLine.objects.create(name="Vans", slug="vans"),
        ProductLine.objects.create(name="Cars", slug="cars"),
    )
    return lead


def test_csv_holds_profile_fields_custom_fields_and_product_interests(profiled, marketer):
    [row] = csv_rows(client_for(marketer).get("/leads/export.csv"))

    assert row["id"] == str(profiled.pk)
    assert row["last_name"] == "Núñez"
    assert row["company"] == "Fleet & Söhne"
    assert row["company_domain"] == "fleet.example"
    assert row["phone"] == "030 1234567"
    assert row["job_title"] == "Head of Fleet"
    assert row["source"] == "event"
    assert row["utm_source"] == "newsletter"
    assert row["utm_campaign"] == 'spring, "launch"\nsecond line'
    assert row["owner"] == ""
    assert row["product_interests"] == "cars, vans"
    assert row["custom.fleet_size"] == "40"
    assert row["custom.has_depot"] == "true"
    assert row["custom.renewal_on"] == "2025-06-30"
    assert row["custom.motto"] == '\'=HYPERLINK("http://evil.example")'


def test_columns_name_the_lead_fields_then_each_custom_field(profiled):
    names = [column.name for column in export_columns()]

    assert names[:4] == ["id", "first_name", "last_name", "email"]
    assert {"owner", "stage", "score", "band", "grade", "last_activity_at"} <= set(names)
    assert {"phone", "job_title", "country", "source", "created_at"} <= set(names)
    assert {f"utm_{part}" for part in ("source", "medium", "campaign", "term", "content")} <= set(
        names
    )
    assert names[-4:] == [
        "custom.fleet_size",
        "custom.has_depot",
        "custom.motto",
        "custom.renewal_on",
    ]


def test_times_are_iso_8601_in_the_sites_time_zone(profiled, marketer, settings):
    settings.TIME_ZONE = "Europe/Berlin"

    [row] = csv_rows(client_for(marketer).get("/leads/export.csv"))

    assert row["created_at"] == "2025-01-15T13:00:30+01:00"
    assert row["last_activity_at"] == "2025-07-01T10:00:00+02:00"


@pytest.mark.parametrize(
    ("stored", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+49 30 1234", "'+49 30 1234"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=1", "a=1"),
        ("Head of Ops", "Head of Ops"),
    ],
)
def test_csv_text_that_would_start_a_formula_gets_a_quote(marketer, stored, written):
    LeadFactory(job_title=stored, score=-5)

    [row] = csv_rows(client_for(marketer).get("/leads/export.csv"))

    assert row["job_title"] == written
    # A number is not text: a negative score stays a number.
    assert row["score"] == "-5"


def test_xlsx_keeps_types_text_as_text_and_local_times(profiled, marketer, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    Lead.objects.filter(pk=profiled.pk).update(job_title="=1+1", city="Kiel\x07", score=-5)

    [row] = xlsx_rows(client_for(marketer).get("/leads/export.xlsx"))

    assert row["job_title"] == "=1+1"
    assert row["custom.motto"] == '=HYPERLINK("http://evil.example")'
    assert row["city"] == "Kiel"  # a control character cannot be stored in the file
    assert row["score"] == -5
    assert row["custom.fleet_size"] == 40
    assert row["custom.has_depot"] is True
    # Excel's cells hold no time zone: the site's local time
    assert row["custom.renewal_on"] == dt.datetime(2025, 6, 30)  # noqa: DTZ001
    assert row["created_at"] == dt.datetime(2025, 1, 15, 13, 0, 30)  # noqa: DTZ001
    assert row["last_name"] == "Núñez"


def test_xlsx_text_starting_with_equals_is_stored_as_a_string_cell(marketer):
    LeadFactory(job_title="=1+1")

    response = client_for(marketer).get("/leads/export.xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(body_of(response))).active
    header = [cell.value for cell in sheet[1]]
    cell = sheet.cell(row=2, column=header.index("job_title") + 1)

    assert cell.value == "=1+1"
    assert cell.data_type == "s"


def test_xlsx_continues_on_another_sheet_past_a_sheets_rows(marketer, monkeypatch):
    monkeypatch.setattr(exports, "XLSX_SHEET_ROWS", 3)
    for score in range(5):
        LeadFactory(score=score)

    response = client_for(marketer).get("/leads/export.xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(body_of(response)))

    assert workbook.sheetnames == ["Leads", "Leads 2", "Leads 3"]
    counts = [sheet.max_row for sheet in workbook.worksheets]
    assert counts == [3, 3, 2]  # each sheet repeats the header
    assert [sheet.cell(row=1, column=1).value for sheet in workbook.worksheets] == ["id"] * 3


def test_an_empty_list_exports_the_header_alone(marketer):
    rows = csv_rows(client_for(marketer).get("/leads/export.csv"))
    sheet = openpyxl.load_workbook(
        io.BytesIO(body_of(client_for(marketer).get("/leads/export.xlsx")))
    ).active

    assert rows == []
    assert sheet.max_row == 1
    assert sheet.cell(row=1, column=4).value == "email"


# --- Reading in bounded memory ---------------------------------------------------------------


MANY = 20_000


@pytest.fixture
def many_leads(db):
    fleet = ProductLine.objects.create(name="Fleet", slug="fleet")
    leads = Lead.objects.bulk_create(
        Lead(
            first_name=f"First{n}",
            last_name=f"Last{n}",
            email=f"lead{n}@bulk.example",
            job_title="Head of Operations at a reasonably long company name",
            city="Hamburg",
            utm_campaign="spring-launch-2025",
            score=n % 100,
        )
        for n in range(MANY)
    )
    Lead.product_interests.through.objects.bulk_create(
        Lead.product_interests.through(lead_id=lead.pk, productline_id=fleet.pk)
        for lead in leads[::10]
    )


def test_a_large_export_streams_in_bounded_memory(many_leads, marketer, monkeypatch):
    # Given chunks of a fortieth of the rows, so that what one costs is plain
    monkeypatch.setattr(exports, "EXPORT_CHUNK", MANY // 40)
    # and what holding every row of the file at once takes
    columns = export_columns()
    tracemalloc.start()
    held = list(leads_export_rows(leads=Lead.objects.all(), columns=columns))
    _, held_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(held) == MANY
    del held

    # When the CSV download is read through
    response = client_for(marketer).get("/leads/export.csv")
    tracemalloc.start()
    size = lines = 0
    for piece in response.streaming_content:
        size += len(piece)
        lines += piece.count(b"\n")
    _, streaming_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # Then every lead is in it, and its peak is a fraction of holding them all
    assert lines == MANY + 1
    assert size > 4_000_000
    assert streaming_peak < held_peak / 4, (streaming_peak, held_peak)


def test_a_large_export_reads_the_leads_in_one_query_and_chunks(many_leads, marketer):
    response = client_for(marketer).get("/leads/export.csv")

    with CaptureQueriesContext(connection) as queries:
        size = sum(len(piece) for piece in response.streaming_content)

    statements = [query["sql"] for query in queries.captured_queries]
    reads_leads = [sql for sql in statements if 'FROM "leads_lead" ' in sql]
    per_chunk = [sql for sql in statements if 'FROM "leads_lead_product_interests"' in sql]
    assert size > 0
    assert len(reads_leads) == 1
    assert len(per_chunk) == -(-MANY // EXPORT_CHUNK)


def test_rows_follow_the_querysets_order_or_the_id(db):
    low, high, middle = (LeadFactory(score=score) for score in (1, 9, 5))
    columns = export_columns(["id", "score"])

    by_score = list(leads_export_rows(leads=Lead.objects.order_by("-score"), columns=columns))
    unordered = list(leads_export_rows(leads=Lead.objects.all(), columns=columns))

    assert by_score == [[high.pk, 9], [middle.pk, 5], [low.pk, 1]]
    assert unordered == [[low.pk, 1], [high.pk, 9], [middle.pk, 5]]


def test_unknown_columns_are_refused_by_name(db):
    with pytest.raises(exports.UnknownColumn, match=r"custom\.nope"):
        export_columns(["email", "custom.nope"])


# --- The lead admin's action ----------------------------------------------------------------


def admin_export(user, *, leads=(), select_across=False):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    data = {"action": "export_csv", "_selected_action": [lead.pk for lead in leads], "index": 0}
    if select_across:
        data["select_across"] = "1"
    return client_for(user).post(reverse("admin:leads_lead_changelist"), data)


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("manager", [*NORTH_AND_POOL, "paul@pool.example"]),
        ("marketer", EVERYONE),
        ("admin_user", EVERYONE),
    ],
)
def test_admin_exports_every_matching_lead_the_person_sees(request, world, persona, expected):
    user = request.getfixturevalue(persona)

    # "Select all" across pages: the page's boxes are ticked too
    response = admin_export(user, leads=[world.pool], select_across=True)

    assert emails(csv_rows(response)) == expected


def test_admin_exports_the_selected_leads_only_among_those_seen(world, manager):
    response = admin_export(manager, leads=[world.rep, world.south, world.pool])

    assert emails(csv_rows(response)) == ["rita@north.example", "paul@pool.example"]


def test_admin_offers_the_export_to_those_who_may_export(world, manager, rep):
    manager.is_staff = rep.is_staff = True
    manager.save(update_fields=["is_staff"])
    rep.save(update_fields=["is_staff"])
    url = reverse("admin:leads_lead_changelist")

    offered = client_for(manager).get(url).content.decode()
    not_offered = client_for(rep).get(url).content.decode()

    assert "Export selected leads (CSV)" in offered
    assert "Export selected leads (CSV)" not in not_offered


def test_admin_refuses_the_export_to_a_rep(world, rep):
    response = admin_export(rep, leads=[world.rep, world.pool])

    # The list again, as for any action the person does not have
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "Content-Disposition" not in response


def test_admin_refuses_the_export_to_an_outsider(world, outsider):
    response = admin_export(outsider, leads=[world.pool], select_across=True)

    assert response.status_code == 403
    assert "Content-Disposition" not in response

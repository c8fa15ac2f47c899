"""``GET /api/v1/leads/export/``: the list's filters, search, ordering and visibility,
as a CSV or XLSX file; who may export; bad input; the schema."""

from __future__ import annotations

import codecs
import csv
import io

import openpyxl
import pytest

from leads.models import CustomFieldDefinition, ProductLine
from tests.api_client import error_of, token_client
from tests.factories import CompanyFactory, LeadFactory

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads/"
EXPORT = "/api/v1/leads/export/"


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    body = b"".join(response.streaming_content)
    assert body.startswith(codecs.BOM_UTF8)
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def listed_ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.fixture
def spread(rep, other_rep, manager):
    """Leads that differ in each filtered field, and one outside a manager's teams."""
    from crm.models import Role, Team
    from tests.conftest import make_user

    seller = make_user("south_rep", Role.REP, team=Team.objects.create(name="South"))
    fleet = ProductLine.objects.create(name="Fleet", slug="fleet")
    hot = LeadFactory(
        owner=rep,
        stage="mql",
        band="hot",
        score=90,
        source="event",
        last_name="Zed",
        company=CompanyFactory(name="Hotco"),
    )
    hot.product_interests.add(fleet)
    return {
        "hot": hot,
        "warm": LeadFactory(owner=other_rep, band="warm", score=40, last_name="Alpha"),
        "pool": LeadFactory(owner=None, score=10, last_name="Mid", email="pool@unique.example"),
        "mine": LeadFactory(owner=manager, score=60, last_name="Boss"),
        "south": LeadFactory(owner=seller, band="hot", score=95, last_name="South"),
    }


@pytest.mark.parametrize(
    "query",
    [
        "",
        "stage=mql",
        "owner=me",
        "owner=unassigned",
        "band=hot",
        "score_min=40",
        "source=event",
        "product_interest=fleet",
        "search=hotco",
        "q=pool@unique",
        "ordering=last_name",
        "ordering=score",
        "ordering=-created_at",
    ],
)
def test_export_holds_what_the_list_lists_in_its_order(manager, spread, query):
    client = token_client(manager)

    exported = [int(row["id"]) for row in csv_rows(client.get(f"{EXPORT}?format=csv&{query}"))]

    assert exported == listed_ids(client.get(f"{LEADS}?page_size=100&{query}"))


@pytest.mark.parametrize(
    ("persona", "hidden"),
    [("manager", {"south"}), ("marketer", set()), ("admin_user", set())],
)
def test_export_holds_the_leads_the_caller_sees(request, spread, persona, hidden):
    user = request.getfixturevalue(persona)

    rows = csv_rows(token_client(user).get(EXPORT))

    expected = {lead.pk for name, lead in spread.items() if name not in hidden}
    assert {int(row["id"]) for row in rows} == expected


@pytest.mark.parametrize("persona", ["rep", "outsider"])
def test_reps_and_people_without_a_role_are_refused(request, spread, persona):
    user = request.getfixturevalue(persona)

    response = token_client(user).get(EXPORT)

    assert response.status_code == 403
    assert error_of(response)["code"] == "permission_denied"


def test_rep_is_told_who_exports(spread, rep):
    response = token_client(rep).get(EXPORT)

    assert error_of(response)["message"] == "Exporting leads is for managers, marketers and admins."


def test_export_needs_credentials(spread):
    assert token_client(None).get(EXPORT).status_code == 401


def test_xlsx_holds_the_same_rows(marketer, spread):
    response = token_client(marketer).get(EXPORT, {"format": "xlsx", "ordering": "score"})

    assert response.status_code == 200
    assert response["Content-Type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert response["Content-Disposition"].endswith('.xlsx"')
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:4] == ("id", "first_name", "last_name", "email")
    assert [row[0] for row in rows[1:]] == [
        spread[name].pk for name in ("pool", "warm", "mine", "hot", "south")
    ]


def test_a_format_suffix_names_the_file_too(marketer, spread):
    response = token_client(marketer).get("/api/v1/leads/export.xlsx")

    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('.xlsx"')


def test_columns_choose_and_order_the_files_columns(marketer, spread):
    CustomFieldDefinition.objects.create(key="fleet_size", label="Fleet size", field_type="integer")
    spread["hot"].custom_fields = {"fleet_size": 12}
    spread["hot"].save(update_fields=["custom_fields"])

    response = token_client(marketer).get(
        EXPORT, {"columns": "email, custom.fleet_size,score", "band": "hot", "ordering": "score"}
    )

    rows = csv_rows(response)
    assert list(rows[0]) == ["email", "custom.fleet_size", "score"]
    assert [(row["custom.fleet_size"], row["score"]) for row in rows] == [("12", "90"), ("", "95")]


@pytest.mark.parametrize(
    "query",
    ["owner=somebody", "band=boiling", "score_min=lots", "activity=2", "score_max=5&score_min=9"],
)
def test_bad_filters_answer_the_lists_field_errors(marketer, spread, query):
    client = token_client(marketer)

    exported = client.get(f"{EXPORT}?{query}")
    listed = client.get(f"{LEADS}?{query}")

    assert exported.status_code == 400
    assert "Content-Disposition" not in exported
    assert error_of(exported)["fields"] == error_of(listed)["fields"]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("format=pdf", "format", '"pdf" is not a valid choice.'),
        ("format=json", "format", '"json" is not a valid choice.'),
        ("columns=email,password", "columns", "Unknown column: password."),
        ("columns=custom.nope", "columns", "Unknown column: custom.nope."),
    ],
)
def test_an_unknown_format_or_column_answers_400(marketer, spread, query, field, message):
    response = token_client(marketer).get(f"{EXPORT}?{query}")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert error_of(response)["fields"] == {field: [message]}


def test_the_schema_documents_the_export(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/api/v1/leads/export/"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert parameters["format"]["schema"]["enum"] == ["csv", "xlsx"]
    assert {"columns", "band", "owner", "score_min", "search", "ordering"} <= set(parameters)
    assert "cursor" not in parameters
    ok = operation["responses"]["200"]["content"]
    assert set(ok) == {
        "text/csv",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
    assert ok["text/csv"]["schema"] == {"type": "string", "format": "binary"}
    assert {"400", "401", "403"} <= set(operation["responses"])

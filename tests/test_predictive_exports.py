"""The predictive score in exported lists: the leads list's files (its "Predictive"
column, and the whole file), the REST API's and the lead admin's, at once and as export
jobs; an empty cell for a lead without one, read with the leads in one statement."""

from __future__ import annotations

import codecs
import csv
import io

import openpyxl
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from leads.models import ExportJob, ExportStatus, Lead
from scoring.models import LeadScore, ScoringModel
from tests.api_client import token_client
from tests.factories import LeadFactory, active_model

pytestmark = pytest.mark.django_db

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(autouse=True)
def _exports(settings, tmp_path):
    settings.EXPORT_DIR = tmp_path / "exports"
    settings.EXPORT_INLINE_MAX = 100


def predicted(lead: Lead, score: int | None, *, primary: bool = True) -> Lead:
    """Give the lead a score row in the default model holding ``score``."""
    model = ScoringModel.objects.filter(is_default=True).first() or active_model()
    LeadScore.objects.update_or_create(
        lead=lead, model=model, defaults={"is_primary": primary, "predictive_score": score}
    )
    return lead


@pytest.fixture
def leads(rep) -> dict[str, Lead]:
    """Hottest rule score first: predictive 80, none, 35, and a score row of a model that
    is not the lead's primary one (whose predictive score is not the lead's)."""
    secondary = LeadFactory(owner=rep, last_name="Dee", score=10)
    predicted(secondary, 64, primary=False)
    return {
        "high": predicted(LeadFactory(owner=rep, last_name="Able", score=40), 80),
        "none": predicted(LeadFactory(owner=rep, last_name="Bell", score=30), None),
        "low": predicted(LeadFactory(owner=rep, last_name="Cole", score=20), 35),
        "secondary": secondary,
    }


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def body_of(response) -> bytes:
    assert response.status_code == 200, response
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def csv_rows(response) -> list[dict[str, str]]:
    body = body_of(response)
    assert body.startswith(codecs.BOM_UTF8)
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def xlsx_rows(response) -> list[dict[str, object]]:
    assert response["Content-Type"] == XLSX_TYPE
    sheet = openpyxl.load_workbook(io.BytesIO(body_of(response)), read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def scores(rows) -> list[tuple[str, object]]:
    return [(row["last_name"], row["predictive_score"]) for row in rows]


CSV_SCORES = [("Able", "80"), ("Bell", ""), ("Cole", "35"), ("Dee", "")]
XLSX_SCORES = [("Able", 80), ("Bell", None), ("Cole", 35), ("Dee", None)]


# --- The leads list ----------------------------------------------------------------------


def test_the_lists_csv_with_the_predictive_column_writes_it_before_the_score(manager, leads):
    response = signed_in(manager).get("/leads/export.csv?cols=predictive&sort=-score")

    rows = csv_rows(response)
    assert list(rows[0]) == [
        "id",
        "first_name",
        "last_name",
        "email",
        "predictive_score",
        "score",
        "band",
    ]
    assert scores(rows) == CSV_SCORES


def test_the_lists_export_without_the_predictive_column_leaves_it_out(manager, leads):
    rows = csv_rows(signed_in(manager).get("/leads/export.csv?cols=phone"))

    assert "predictive_score" not in rows[0]


def test_the_lists_xlsx_holds_the_predictive_score_as_numbers(manager, leads):
    response = signed_in(manager).get("/leads/export.xlsx?cols=predictive&sort=-score")

    assert scores(xlsx_rows(response)) == XLSX_SCORES


def test_the_whole_file_has_the_predictive_score_after_the_rule_scores_columns(manager, leads):
    rows = csv_rows(signed_in(manager).get("/leads/export.csv?sort=-score"))

    header = list(rows[0])
    assert header.index("predictive_score") == header.index("quadrant") + 1
    assert header.index("score") < header.index("predictive_score")
    assert scores(rows) == CSV_SCORES


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_the_lists_export_job_writes_the_predictive_score(
    manager, leads, file_format, django_capture_on_commit_callbacks
):
    client = signed_in(manager)

    with django_capture_on_commit_callbacks(execute=True):
        asked = client.post(
            "/leads/exports/", {"format": file_format, "query": "cols=predictive&sort=-score"}
        )
    job = ExportJob.objects.get()
    file = client.get(f"/leads/exports/{job.pk}/download/")

    assert asked.status_code == 302
    assert job.status == ExportStatus.DONE
    assert "predictive_score" in job.columns
    read = csv_rows if file_format == "csv" else xlsx_rows
    assert scores(read(file)) == (CSV_SCORES if file_format == "csv" else XLSX_SCORES)


@pytest.mark.parametrize(
    ("path", "read"),
    [
        ("/leads/export.csv?cols=predictive", csv_rows),
        ("/leads/export.xlsx?cols=predictive", xlsx_rows),
        ("/leads/export.csv", csv_rows),
        ("/api/v1/leads/export/?format=csv", csv_rows),
        ("/api/v1/leads/export/?format=xlsx&columns=id,predictive_score", xlsx_rows),
    ],
)
def test_the_predictive_score_costs_no_query_per_row(marketer, rep, path, read):
    client = token_client(marketer) if path.startswith("/api/") else signed_in(marketer)
    read(client.get(path))  # the session, the person's caches

    def queries_for(count: int) -> list[str]:
        for n in range(count):
            predicted(LeadFactory(owner=rep), n if n % 3 else None)
        with CaptureQueriesContext(connection) as captured:
            rows = read(client.get(path))
        assert len(rows) == Lead.objects.count()
        return [query["sql"] for query in captured.captured_queries]

    few = queries_for(2)
    many = queries_for(30)

    assert len(many) == len(few)
    # The score rows are read inside the leads' one statement, never on their own.
    assert [sql for sql in many if "scoring_leadscore" in sql and "leads_lead" not in sql] == []


# --- The REST API ------------------------------------------------------------------------


def test_the_apis_csv_has_the_predictive_score_and_it_can_be_chosen(manager, leads):
    client = token_client(manager)

    whole = csv_rows(client.get("/api/v1/leads/export/?format=csv&ordering=-score"))
    chosen = csv_rows(
        client.get("/api/v1/leads/export/?columns=last_name,predictive_score&ordering=-score")
    )

    assert scores(whole) == CSV_SCORES
    assert [list(row.items()) for row in chosen] == [
        [("last_name", last_name), ("predictive_score", score)] for last_name, score in CSV_SCORES
    ]


def test_the_api_orders_and_exports_by_the_predictive_score(manager, leads):
    rows = csv_rows(
        token_client(manager).get(
            "/api/v1/leads/export/?columns=last_name,predictive_score&ordering=-predictive_score"
        )
    )

    assert scores(rows)[:2] == [("Able", "80"), ("Cole", "35")]
    assert sorted(scores(rows)[2:]) == [("Bell", ""), ("Dee", "")]  # the unscored last


def test_the_apis_export_job_writes_the_predictive_score(
    manager, leads, django_capture_on_commit_callbacks
):
    client = token_client(manager)

    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post("/api/v1/leads/export/?format=xlsx&ordering=-score")
    followed = client.get(answer["Location"]).json()
    file = client.get(followed["links"]["download"])

    assert answer.status_code == 202
    assert followed["status"] == "done"
    assert "predictive_score" in followed["columns"]
    assert scores(xlsx_rows(file)) == XLSX_SCORES


def test_the_apis_schema_names_the_predictive_score_column(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/api/v1/leads/export/"]["get"]
    [columns] = [p for p in operation["parameters"] if p["name"] == "columns"]
    names = columns["schema"]["items"]["anyOf"][0]["enum"]
    assert names.index("predictive_score") == names.index("quadrant") + 1


# --- The lead admin ----------------------------------------------------------------------


def admin_export(user, selected):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = signed_in(user)
    data = {"action": "export_csv", "_selected_action": [lead.pk for lead in selected], "index": 0}
    return client, client.post("/admin/leads/lead/", data)


def test_the_admins_export_of_a_selection_has_the_predictive_score(manager, leads):
    _, response = admin_export(manager, list(leads.values()))

    rows = csv_rows(response)
    assert sorted(scores(rows)) == sorted(CSV_SCORES)


def test_the_admins_large_selection_job_has_the_predictive_score(
    manager, leads, settings, django_capture_on_commit_callbacks
):
    settings.EXPORT_INLINE_MAX = 2

    with django_capture_on_commit_callbacks(execute=True):
        client, response = admin_export(manager, list(leads.values()))
    job = ExportJob.objects.get()

    assert response.status_code == 302
    assert job.status == ExportStatus.DONE
    rows = csv_rows(client.get(f"/leads/exports/{job.pk}/download/"))
    assert sorted(scores(rows)) == sorted(CSV_SCORES)

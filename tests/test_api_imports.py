"""Imports through the REST API: a file uploaded, run on the (eager) bulk queue and
followed to its end, its preview, its error file and its undo; bad files, mappings
and options refused with field messages and nothing stored; the permission rule of
every surface (``imports.permissions``)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from crm.models import Role, Team
from imports.drafts import import_drafts_sweep
from imports.models import ImportJob, ImportStatus
from imports.services import import_job_create, import_job_run
from leads.models import CustomFieldDefinition, Lead, Source
from tests.api_client import error_of, token_client
from tests.conftest import make_user
from tests.factories import LeadFactory
from tests.test_api_broker_down import broker_down  # noqa: F401  # a fixture

pytestmark = pytest.mark.django_db

IMPORTS = "/api/v1/imports/"
SOURCES = ", ".join(label for value, label in Source.choices if value)
FILE = (
    "Email Address;First Name;Last Name;Mobile;Lead Source\n"
    "ann@acme.example;ANN;LEE;+49 30 1234567;Event\n"
    "bo@acme.example;Bo;Diaz;+49 30 7654321;Select\n"
    "broken;Cy;;;\n"
)


@pytest.fixture(autouse=True)
def uploads(tmp_path, monkeypatch):
    """Uploaded files under this test's own folder. The file field's storage took
    ``IMPORT_DIR`` when the model was loaded, so the storage itself is replaced: then
    "nothing stored" is checked where the files would be."""
    folder = tmp_path / "uploads"
    field = ImportJob._meta.get_field("file")
    monkeypatch.setattr(field, "storage", FileSystemStorage(location=folder))
    return folder


def upload(text: str = FILE, name: str = "event.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def post(client, **fields):
    """POST an import as ``multipart/form-data``; dicts are sent as JSON text."""
    fields.setdefault("file", upload())
    fields.setdefault("kind", "leads")
    body = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in fields.items()}
    return client.post(IMPORTS, body, format="multipart")


def stored_files(uploads) -> list:
    return [path for path in uploads.rglob("*") if path.is_file()] if uploads.exists() else []


def job_of(user, text: str = FILE, *, run: bool = True, **fields) -> ImportJob:
    """A job created (and run) through the service, as another surface would."""
    job = import_job_create(
        file=io.BytesIO(text.encode()),
        file_name="event.csv",
        kind="leads",
        by=user,
        enqueue=False,
        **fields,
    )
    if run:
        assert import_job_run(job_id=job.pk) is not None
    job.refresh_from_db()
    return job


def refused_everywhere(client, job: ImportJob) -> list[int]:
    base = f"{IMPORTS}{job.pk}/"
    return [
        client.get(IMPORTS).status_code,
        post(client).status_code,
        client.get(base).status_code,
        client.get(f"{base}preview/").status_code,
        client.get(f"{base}errors.csv").status_code,
        client.post(f"{base}undo/").status_code,
        client.get(f"{IMPORTS}fields/", {"kind": "leads"}).status_code,
    ]


# --- Uploading and running ------------------------------------------------------------


def test_a_csv_uploaded_through_the_api_is_imported_end_to_end(
    marketer, uploads, django_capture_on_commit_callbacks
):
    client = token_client(marketer)

    # When a marketer uploads an event list with the suggested columns and a constant,
    # the job queued after commit and run (eagerly, as a worker would)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, constants={"campaign": "Expo 2025"})

    # Then the answer is the queued job, with the columns it read and the mapping used
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["status"], created["kind"], created["file_name"]) == (
        "queued",
        "leads",
        "event.csv",
    )
    assert created["headers"] == [
        "Email Address",
        "First Name",
        "Last Name",
        "Mobile",
        "Lead Source",
    ]
    assert created["mapping"]["Email Address"] == "email"
    assert created["mapping"]["Mobile"] == "phone"
    assert created["constants"] == {"campaign": "Expo 2025"}
    assert created["created_by"] == marketer.pk
    assert response["Location"] == created["links"]["self"]
    assert created["links"]["errors"].endswith(f"/api/v1/imports/{created['id']}/errors.csv")
    assert len(stored_files(uploads)) == 1

    # And following the job shows it done, with its counts and progress
    job = client.get(created["links"]["self"]).json()
    assert job["status"] == "done"
    assert job["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "skipped": 0, "failed": 1}
    assert (job["total_rows"], job["rows_done"], job["percent"], job["time_left"]) == (
        3,
        3,
        100,
        None,
    )
    assert job["links"]["undo"].endswith(f"/api/v1/imports/{job['id']}/undo/")
    ann = Lead.objects.get(email="ann@acme.example")
    assert (ann.first_name, ann.last_name, ann.phone) == ("Ann", "Lee", "+49301234567")
    assert (ann.source, ann.campaign) == ("event", "Expo 2025")
    assert Lead.objects.get(email="bo@acme.example").source == "import"


def test_a_mapping_constants_value_maps_and_options_are_taken_as_sent(
    manager, django_capture_on_commit_callbacks
):
    text = "Mail|Stage|Land|Tel\nzoe@firm.example|Hot prospect|Deutschland|030 1234567\n"

    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            token_client(manager),
            file=upload(text, "crm-export.csv"),
            mapping={"Mail": "email", "Stage": "stage", "Land": "", "Tel": "phone"},
            value_maps={"stage": {"hot prospect": "mql"}},
            delimiter="|",
            phone_region="de",
            time_zone="Europe/Berlin",
        )

    assert response.status_code == 201, response.content
    job = ImportJob.objects.get()
    assert (job.delimiter, job.phone_region, job.time_zone) == ("|", "DE", "Europe/Berlin")
    assert job.status == ImportStatus.DONE
    zoe = Lead.objects.get(email="zoe@firm.example")
    # The country column was left out, so the phone is read in the region given
    assert (zoe.stage, zoe.country, zoe.phone) == ("mql", "", "+49301234567")


def test_a_dry_run_counts_every_row_and_stores_nothing_to_undo(
    marketer, django_capture_on_commit_callbacks
):
    client = token_client(marketer)

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, dry_run="true")

    job = client.get(response.json()["links"]["self"]).json()
    assert (job["status"], job["dry_run"]) == ("done", True)
    assert job["counts"]["created"] == 2
    assert job["counts"]["failed"] == 1
    assert not Lead.objects.exists()
    assert job["links"]["undo"] is None
    undo = client.post(f"{IMPORTS}{job['id']}/undo/")
    assert undo.status_code == 409
    assert error_of(undo)["message"] == "A dry run stored nothing, so there is nothing to undo."


# --- Refusals: nothing stored ------------------------------------------------------------


def test_a_file_that_cannot_be_read_answers_400_on_file_and_stores_nothing(marketer, uploads):
    client = token_client(marketer)
    binary = SimpleUploadedFile("photo.csv", bytes(range(256)) * 4)
    xls = SimpleUploadedFile("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)

    answers = [post(client, file=binary), post(client, file=xls), post(client, file=upload(""))]

    assert [a.status_code for a in answers] == [400, 400, 400]
    fields = [error_of(a)["fields"] for a in answers]
    assert fields[0] == {"file": ["This is not a CSV or XLSX file (it holds binary data)."]}
    assert "Excel 97-2003 (.xls)" in fields[1]["file"][0]
    assert fields[2] == {"file": ["The file is empty."]}
    assert not ImportJob.objects.exists()
    assert stored_files(uploads) == []


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {"mapping": {"Mail": "email"}},
            {"mapping.Mail": ["The file has no column “Mail”."]},
        ),
        (
            {"mapping": {"Email Address": "email", "Mobile": "shoe_size"}},
            {"mapping.Mobile": ["“shoe_size” is not a field of a leads import."]},
        ),
        (
            {"mapping": {"Email Address": "email", "Mobile": "email"}},
            {"mapping.Mobile": ["“Email Address” and “Mobile” are both mapped to email."]},
        ),
        (
            {"constants": {"colour": "red"}},
            {"constants.colour": ["“colour” is not a field of a leads import."]},
        ),
        (
            {"constants": {"source": "Stand"}},
            {
                "constants.source": [
                    "The constant for source: “Stand” is not one of: " + SOURCES + "."
                ]
            },
        ),
        (
            {"value_maps": {"mood": {"happy": "hot"}}},
            {"value_maps.mood": ["Values are mapped for “mood”, no field of this import."]},
        ),
        (
            {"kind": "deals", "mapping": {"Email Address": "email"}},
            {"mapping": ["Map a column to name."]},
        ),
        (
            {"match_key": "external_id"},
            {"mapping": ["Map a column to external_id."]},
        ),
    ],
)
def test_a_mapping_that_does_not_fit_answers_400_naming_what_is_at_fault(
    manager, uploads, fields, errors
):
    response = post(token_client(manager), **fields)

    assert response.status_code == 400, response.content
    assert error_of(response)["fields"] == errors
    assert not ImportJob.objects.exists()
    assert stored_files(uploads) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "people"}, "kind"),
        ({"match_key": "phone"}, "match_key"),
        ({"mapping": '["Email Address"]'}, "mapping"),
        ({"mapping": "{not json"}, "mapping"),
        ({"mapping": '{"Email Address": 5}'}, "mapping"),
        ({"constants": '{"source": ["event"]}'}, "constants"),
        ({"constants": '{"source": NaN}'}, "constants"),
        ({"value_maps": '{"stage": "mql"}'}, "value_maps"),
        ({"encoding": "klingon"}, "encoding"),
        ({"delimiter": ";;"}, "delimiter"),
        ({"delimiter": '"'}, "delimiter"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"phone_region": "ZZ"}, "phone_region"),
        ({"dry_run": "perhaps"}, "dry_run"),
        ({"shoe_size": "42"}, "shoe_size"),
        ({"file": "Email\nann@acme.example"}, "file"),
    ],
)
def test_bad_options_answer_400_on_their_field_and_store_nothing(marketer, uploads, fields, field):
    response = post(token_client(marketer), **fields)

    assert response.status_code == 400, response.content
    assert list(error_of(response)["fields"]) == [field]
    assert not ImportJob.objects.exists()
    assert stored_files(uploads) == []


def test_a_missing_file_or_kind_answers_400(marketer):
    client = token_client(marketer)

    response = client.post(IMPORTS, {"dry_run": "true"}, format="multipart")

    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == {"file", "kind"}


@pytest.mark.parametrize("size", [2_000, 1_100_000])
def test_a_file_over_the_size_limit_answers_413_and_stores_nothing(
    marketer, uploads, settings, size
):
    # The small file passes the body's declared length and is refused by its own size;
    # the large one by the body's length, before it is read
    settings.IMPORT_MAX_FILE_BYTES = 1_000
    text = "Email\n" + "x@acme.example\n" * (size // 15)

    response = post(token_client(marketer), file=upload(text))

    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "too_large"
    assert "can be imported" in error["message"]
    assert not ImportJob.objects.exists()
    assert stored_files(uploads) == []


def test_form_fields_beyond_djangos_limits_answer_413_or_400(marketer, settings):
    client = token_client(marketer)

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    too_large = post(client, constants={"campaign": "x" * 200})
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 2
    too_many = post(client, dry_run="true", day_first="true")

    assert (too_large.status_code, error_of(too_large)["code"]) == (413, "too_large")
    assert (too_many.status_code, error_of(too_many)["code"]) == (400, "parse_error")
    assert not ImportJob.objects.exists()


def test_a_body_that_is_not_multipart_answers_415(marketer):
    response = token_client(marketer).post(IMPORTS, {"kind": "leads"}, format="json")

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"
    assert not ImportJob.objects.exists()


# --- Who sees what ----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["rep", "outsider"])
def test_reps_and_people_without_a_role_are_refused_every_import_endpoint(
    request, marketer, uploads, role
):
    job = job_of(marketer)
    leads = list(Lead.objects.order_by("pk").values())
    client = token_client(request.getfixturevalue(role))

    statuses = refused_everywhere(client, job)

    assert statuses == [403] * 7
    assert "managers, marketers and admins" in error_of(client.get(IMPORTS))["message"]
    assert list(ImportJob.objects.values_list("pk", "status")) == [(job.pk, ImportStatus.DONE)]
    assert list(Lead.objects.order_by("pk").values()) == leads


def test_anonymous_callers_answer_401(marketer):
    job = job_of(marketer, run=False)

    statuses = refused_everywhere(token_client(None), job)

    assert statuses == [401] * 7


def test_a_manager_sees_only_their_own_imports_and_a_marketer_every_one(
    manager, marketer, admin_user
):
    theirs = job_of(marketer, run=False)
    mine = job_of(manager, run=False)
    client = token_client(manager)

    listed = [job["id"] for job in client.get(IMPORTS).json()["results"]]
    base = f"{IMPORTS}{theirs.pk}/"
    hidden = [
        client.get(base).status_code,
        client.get(f"{base}preview/").status_code,
        client.get(f"{base}errors.csv").status_code,
        client.post(f"{base}undo/").status_code,
    ]

    assert listed == [mine.pk]
    assert hidden == [404, 404, 404, 404]
    theirs.refresh_from_db()
    assert theirs.status == ImportStatus.QUEUED
    for person in (marketer, admin_user):
        seen = token_client(person).get(IMPORTS).json()["results"]
        assert [job["id"] for job in seen] == [mine.pk, theirs.pk]


def test_a_managers_import_fails_the_rows_of_another_teams_lead(
    manager, django_capture_on_commit_callbacks
):
    south = Team.objects.create(name="South")
    stranger = make_user("south_rep", Role.REP, team=south)
    theirs = LeadFactory(email="theirs@acme.example", owner=stranger, job_title="CEO")
    text = "email,job_title\ntheirs@acme.example,Intern\nmine@acme.example,CTO\n"

    with django_capture_on_commit_callbacks(execute=True):
        response = post(token_client(manager), file=upload(text))

    job = token_client(manager).get(response.json()["links"]["self"]).json()
    assert (job["counts"]["created"], job["counts"]["failed"]) == (1, 1)
    theirs.refresh_from_db()
    assert theirs.job_title == "CEO"


def test_the_list_filters_by_status_and_kind(marketer):
    done = job_of(marketer)
    queued = job_of(marketer, run=False)
    client = token_client(marketer)

    def ids(**query):
        response = client.get(IMPORTS, query)
        assert response.status_code == 200, response.content
        return [job["id"] for job in response.json()["results"]]

    assert ids(status="done") == [done.pk]
    assert ids(status="queued", kind="leads") == [queued.pk]
    assert ids(kind="deals") == []
    assert error_of(client.get(IMPORTS, {"status": "asleep"}))["fields"].keys() == {"status"}


# --- Preview, error file, undo, fields --------------------------------------------------------


def test_the_preview_shows_the_first_rows_as_they_will_be_stored_with_each_bad_cell(marketer):
    job = job_of(marketer, run=False)
    client = token_client(marketer)

    response = client.get(f"{IMPORTS}{job.pk}/preview/")
    first = client.get(f"{IMPORTS}{job.pk}/preview/", {"rows": 1}).json()["rows"]
    too_many = client.get(f"{IMPORTS}{job.pk}/preview/", {"rows": 101})

    assert response.status_code == 200, response.content
    preview = response.json()
    assert preview["headers"] == job.headers
    assert preview["mapping"] == job.mapping
    rows = preview["rows"]
    assert [row["row"] for row in rows] == [2, 3, 4]
    assert rows[0]["values"] == {
        "email": "ann@acme.example",
        "first_name": "Ann",
        "last_name": "Lee",
        "phone": "+49301234567",
        "source": "event",
    }
    assert rows[0]["errors"] == {}
    assert "source" not in rows[1]["values"]  # "Select" is a placeholder
    assert rows[2]["errors"] == {"Email Address": "“broken” is not an email address."}
    assert first == rows[:1]
    assert list(error_of(too_many)["fields"]) == ["rows"]
    # A preview reads the file and stores nothing
    assert not Lead.objects.exists()
    assert ImportJob.objects.get().status == ImportStatus.QUEUED


def test_the_error_file_lists_the_failed_rows_and_imports_again_once_fixed(
    marketer, django_capture_on_commit_callbacks
):
    job = job_of(marketer)
    client = token_client(marketer)

    response = client.get(f"{IMPORTS}{job.pk}/errors.csv", HTTP_ACCEPT="text/csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="import-{job.pk}-errors.csv"'
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        "Email Address",
        "First Name",
        "Last Name",
        "Mobile",
        "Lead Source",
        "Row",
        "Error",
    ]
    assert rows[1][:6] == ["broken", "Cy", "", "", "", "4"]
    assert "“broken” is not an email address" in rows[1][6]
    assert len(rows) == 2

    # Fixed, the error file goes back in as it is
    fixed = text.replace("broken,", "cy@acme.example,")
    with django_capture_on_commit_callbacks(execute=True):
        again = post(client, file=upload(fixed, "errors-fixed.csv"))
    assert again.status_code == 201, again.content
    assert Lead.objects.get(email="cy@acme.example").first_name == "Cy"


def test_undo_removes_what_the_import_created_and_is_refused_twice(
    marketer, django_capture_on_commit_callbacks
):
    job = job_of(marketer)
    client = token_client(marketer)
    assert Lead.objects.count() == 2

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{IMPORTS}{job.pk}/undo/")

    # The answer is the job with the undo asked for; it then ran on the (eager) bulk
    # queue after commit: the job reads undone and the leads are gone
    assert response.status_code == 202, response.content
    assert response.json()["undo_requested_at"] is not None
    undone = client.get(f"{IMPORTS}{job.pk}/").json()
    assert (undone["status"], undone["undone_by"]) == ("undone", marketer.pk)
    assert undone["undo_report"]["deleted"] == 2
    assert undone["links"]["undo"] is None
    assert not Lead.objects.exists()
    again = client.post(f"{IMPORTS}{job.pk}/undo/")
    assert again.status_code == 409
    assert error_of(again)["message"] == "This import was undone already."


def test_undo_of_an_import_still_running_answers_409_and_changes_nothing(marketer):
    job = job_of(marketer, run=False)

    response = token_client(marketer).post(f"{IMPORTS}{job.pk}/undo/")

    assert response.status_code == 409
    assert "still running" in error_of(response)["message"]
    job.refresh_from_db()
    assert job.status == ImportStatus.QUEUED


def test_an_undo_asked_for_while_the_queue_is_down_is_kept_and_runs_once_it_is_back(
    marketer,
    broker_down,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    job = job_of(marketer)

    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(marketer).post(f"{IMPORTS}{job.pk}/undo/")

    assert response.status_code == 202, response.content
    assert response.json()["undo_requested_at"] is not None
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE
    assert Lead.objects.count() == 2
    broker_down()  # the queue is back
    import_drafts_sweep(now=timezone.now() + timedelta(minutes=10))
    job.refresh_from_db()
    assert job.status == ImportStatus.UNDONE
    assert not Lead.objects.exists()


def test_fields_lists_what_a_column_can_be_mapped_to(marketer):
    CustomFieldDefinition.objects.create(key="fleet_size", label="Fleet size", field_type="integer")
    client = token_client(marketer)

    leads = client.get(f"{IMPORTS}fields/", {"kind": "leads"}).json()
    deals = client.get(f"{IMPORTS}fields/", {"kind": "deals", "match_key": "external_id"}).json()
    missing = client.get(f"{IMPORTS}fields/")

    by_name = {field["name"]: field for field in leads["fields"]}
    assert (leads["kind"], leads["match_key"]) == ("leads", "email")
    assert by_name["email"]["required"] is True
    assert by_name["phone"] == {
        "name": "phone",
        "label": "Phone",
        "required": False,
        "synonyms": by_name["phone"]["synonyms"],
    }
    assert "mobile" in by_name["phone"]["synonyms"]
    assert by_name["custom:fleet_size"]["label"] == "Fleet size"
    required = [field["name"] for field in deals["fields"] if field["required"]]
    assert required == ["external_id", "name"]
    assert list(error_of(missing)["fields"]) == ["kind"]


def test_the_schema_describes_the_upload_the_error_file_and_the_undo(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]

    create = paths["/api/v1/imports/"]["post"]
    upload_schema = create["requestBody"]["content"]["multipart/form-data"]["schema"]
    properties = schema["components"]["schemas"][upload_schema["$ref"].rsplit("/", 1)[1]]
    assert properties["required"] == ["file", "kind"]
    assert properties["properties"]["file"]["format"] == "binary"
    assert properties["additionalProperties"] is False
    assert {"201", "400", "403", "413", "415"} <= set(create["responses"])
    errors = paths["/api/v1/imports/{id}/errors.csv"]["get"]["responses"]
    assert "text/csv" in errors["200"]["content"]
    undo = paths["/api/v1/imports/{id}/undo/"]["post"]["responses"]
    assert {"202", "404", "409"} <= set(undo)
    assert {"kind", "match_key"} <= {
        p["name"] for p in paths["/api/v1/imports/fields/"]["get"]["parameters"]
    }

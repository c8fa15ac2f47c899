"""Likely duplicates found as leads are written, through every surface that writes one:
a warning on the API and the admin, a quiet pair from a public form, pairs for a chunk
of an import; the review queue holds them at once, and detection never fails a write.
Runs on PostgreSQL and on SQLite (where names match only when equal)."""

from __future__ import annotations

import io
import logging

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from imports.models import ImportJob
from leads.duplicates import duplicates_record
from leads.models import (
    DuplicatePair,
    DuplicateSettings,
    Lead,
    LeadMatchKey,
    PairStatus,
    TrackingKey,
    WebForm,
)
from tests.admin_forms import changeform_data
from tests.api_client import token_client
from tests.factories import LeadFactory
from tests.tracking_client import send

LEADS = "/api/v1/leads/"


def pair_of(a: Lead | int, b: Lead | int) -> DuplicatePair:
    ids = sorted(x if isinstance(x, int) else x.pk for x in (a, b))
    return DuplicatePair.objects.get(lead_a=ids[0], lead_b=ids[1])


def api_create(user, **fields) -> dict:
    response = token_client(user).post(LEADS, fields, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def broken_detection(db, caplog):
    """Detection fails as on a database that lost the keys' table: every statement
    that touches it raises (undone with the test's transaction)."""
    table = LeadMatchKey._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_gone")
    caplog.set_level(logging.ERROR, logger="leads.duplicates")
    return caplog


# --- REST API ---------------------------------------------------------------------------


def test_an_api_create_names_the_likely_duplicate_in_its_body_and_stores_the_pair(rep):
    # Given a lead created through the API a moment ago, with a phone number
    first = api_create(rep, email="ada@acme.example", phone="+49 30 1234567")

    # When another is created with the same number written another way, before any scan
    body = api_create(rep, email="ada.l@other.example", phone="030 1234567", country="DE")

    # Then it is created and the answer names the first, with the evidence
    assert body["possible_duplicates"] == [
        {
            "id": first["id"],
            "score": 0.9,
            "reasons": [{"kind": "phone", "score": 0.9}],
            "evidence": "same phone",
        }
    ]
    # And the pair waits in the review queue with the same evidence
    pair = pair_of(first["id"], body["id"])
    assert (pair.status, pair.reasons, pair.sure) == (
        PairStatus.OPEN,
        [{"kind": "phone", "score": 0.9}],
        False,
    )
    # And a lead like no other answers an empty list
    assert api_create(rep, email="bob@elsewhere.example")["possible_duplicates"] == []


def test_an_api_create_warns_only_of_leads_the_caller_sees_but_queues_every_pair(rep, other_rep):
    hidden = LeadFactory(owner=other_rep, email="ada@acme.example")
    duplicates_record(lead_ids=[hidden.pk])

    body = api_create(rep, email="ada+crm@acme.example")

    assert body["possible_duplicates"] == []
    assert pair_of(hidden, body["id"]).sure


def test_a_replayed_api_create_answers_the_same_warning(rep):
    first = api_create(rep, email="ada@acme.example")
    api = token_client(rep)
    payload = {"email": "ada+news@acme.example"}

    created = api.post(LEADS, payload, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    replayed = api.post(LEADS, payload, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert created.status_code == replayed.status_code == 201
    assert replayed["Idempotent-Replayed"] == "true"
    assert replayed.json() == created.json()
    assert [d["id"] for d in replayed.json()["possible_duplicates"]] == [first["id"]]
    assert Lead.objects.filter(email__startswith="ada+news").count() == 1


def test_an_api_update_that_takes_anothers_phone_joins_the_queue_at_once(rep):
    a = api_create(rep, email="ada@acme.example", phone="+49 30 1234567")
    b = api_create(rep, email="bob@other.example", phone="+49 40 7654321")
    assert not DuplicatePair.objects.exists()

    response = token_client(rep).patch(
        f"{LEADS}{b['id']}/", {"phone": "+49 (30) 123-4567"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert pair_of(a["id"], b["id"]).reasons == [{"kind": "phone", "score": 0.9}]
    # And when the number changes back, the pair's evidence is gone and so is the pair
    token_client(rep).patch(f"{LEADS}{b['id']}/", {"phone": "+49 40 7654321"}, format="json")
    assert not DuplicatePair.objects.exists()


def test_an_api_create_never_fails_because_detection_does(rep, broken_detection):
    response = token_client(rep).post(LEADS, {"email": "ada@acme.example"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["possible_duplicates"] == []
    assert Lead.objects.filter(email="ada@acme.example", owner=rep).exists()
    assert "Duplicate detection failed" in broken_detection.text


def test_the_schema_documents_the_warning_in_the_create_answer(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    create = schema["paths"]["/api/v1/leads/"]["post"]
    answer = create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    created = schema["components"]["schemas"][answer.rsplit("/", 1)[1]]
    warning = created["properties"]["possible_duplicates"]
    assert warning["readOnly"] is True
    assert warning["items"]["$ref"].endswith("/PossibleDuplicate")
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/LeadRequest"
    )
    item = schema["components"]["schemas"]["PossibleDuplicate"]
    assert set(item["required"]) == {"id", "score", "reasons", "evidence"}


def test_the_workspace_lead_page_names_the_duplicate_of_a_lead_just_created(client, rep):
    # Given a lead created through the API, then a form post with its phone, before any scan
    known = api_create(rep, email="ada@acme.example", phone="+49 30 1234567")
    form = WebForm.objects.create(name="Demo", field_mapping={"email": "email", "phone": "phone"})
    post_form(client, form, {"email": "ada@private.example", "phone": "+49 (30) 1234567"})
    created = Lead.objects.get(email="ada@private.example")

    # When the rep opens the lead page of the lead she owns
    client.force_login(rep)
    page = client.get(reverse("lead-detail", args=[known["id"]])).content.decode()

    # Then it names the new lead as a possible duplicate, with the evidence
    assert reverse("lead-detail", args=[created.pk]) in page
    assert "same phone" in page


# --- Admin ------------------------------------------------------------------------------


@pytest.fixture
def staff(client):
    def sign_in(user):
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        client.force_login(user)
        return client

    return sign_in


def admin_add(client, **fields):
    data = changeform_data(client.get(reverse("admin:leads_lead_add")))
    data.update(fields)
    return client.post(reverse("admin:leads_lead_add"), data)


def test_adding_leads_in_the_admin_warns_of_one_added_before_without_a_scan(staff, admin_user):
    client = staff(admin_user)
    assert admin_add(client, email="ada@gmail.com").status_code == 302
    first = Lead.objects.get(email="ada@gmail.com")

    response = admin_add(client, email="a.d.a@googlemail.com")

    assert response.status_code == 302
    created = Lead.objects.get(email="a.d.a@googlemail.com")
    warnings = [str(m) for m in get_messages(response.wsgi_request) if "duplicate" in str(m)]
    assert len(warnings) == 1
    assert reverse("admin:leads_lead_change", args=[first.pk]) in warnings[0]
    assert "same mailbox" in warnings[0]
    assert pair_of(first, created).sure


def test_adding_a_lead_in_the_admin_never_fails_because_detection_does(
    staff, admin_user, broken_detection
):
    response = admin_add(staff(admin_user), email="ada@acme.example")

    assert response.status_code == 302
    assert Lead.objects.filter(email="ada@acme.example").exists()
    assert not [m for m in get_messages(response.wsgi_request) if "duplicate" in str(m)]


# --- Public web forms -------------------------------------------------------------------


@pytest.fixture
def web_form(db) -> WebForm:
    return WebForm.objects.create(
        name="Demo request", field_mapping={"email": "email", "phone": "phone"}
    )


def post_form(client, form: WebForm, payload: dict):
    return client.post(f"/f/{form.key}/", payload, content_type="application/json")


def test_a_form_post_that_creates_a_lead_queues_its_pair_and_tells_the_public_nothing(
    client, web_form, rep
):
    known = api_create(rep, email="ada@acme.example", phone="+49 30 1234567")

    response = post_form(
        client, web_form, {"email": "ada@private.example", "phone": known["phone"]}
    )

    assert response.status_code == 202
    assert response.json() == {"accepted": True}
    created = Lead.objects.get(email="ada@private.example")
    assert pair_of(known["id"], created).reasons == [{"kind": "phone", "score": 0.9}]


def test_a_form_post_never_fails_because_detection_does(client, web_form, broken_detection):
    response = post_form(client, web_form, {"email": "ada@private.example"})

    assert response.status_code == 202
    assert Lead.objects.filter(email="ada@private.example").exists()


def test_a_tracking_identify_that_creates_a_lead_queues_its_pair(client, default_events, rep):
    known = api_create(rep, email="ada@fleet.example", phone="+44 20 7946 0000")
    _, write_key = TrackingKey.objects.issue(name="Website")

    traits = {"email": "ada.lovelace@home.example", "phone": "020 7946 0000"}
    body = {"userId": "u-1", "traits": {**traits, "address": {"country": "gb"}}}
    send(client, "identify", body, key=write_key)

    created = Lead.objects.get(email="ada.lovelace@home.example")
    assert pair_of(known["id"], created).reasons == [{"kind": "phone", "score": 0.9}]


# --- Imports ----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def uploads(tmp_path, settings):
    settings.IMPORT_DIR = tmp_path / "uploads"


def import_file(tmp_path, text: str, *args: str) -> str:
    path = tmp_path / "leads.csv"
    path.write_text(text, encoding="utf-8")
    out = io.StringIO()
    call_command("import_leads", str(path), "--kind", "leads", *args, stdout=out)
    return out.getvalue()


def test_an_import_records_pairs_for_its_leads_before_the_night(tmp_path, rep):
    # Given a lead known before the import
    known = api_create(rep, email="ada@acme.example", phone="+49 30 1234567")

    # When a file brings her number again, and one person twice by mailbox
    import_file(
        tmp_path,
        "email,phone,country\n"
        "ada.lovelace@home.example,030 1234567,DE\n"
        "bob@gmail.com,,\n"
        "b.o.b+list@gmail.com,,\n"
        "cy@other.example,+1 415 555 0100,US\n",
    )

    # Then both pairs wait in the queue with their evidence, and nothing else
    ada = Lead.objects.get(email="ada.lovelace@home.example")
    bob, bob_again = (Lead.objects.get(email=e) for e in ("bob@gmail.com", "b.o.b+list@gmail.com"))
    assert pair_of(known["id"], ada).reasons == [{"kind": "phone", "score": 0.9}]
    assert pair_of(bob, bob_again).sure
    assert DuplicatePair.objects.count() == 2
    # And the imported leads' keys are stored, left for the night to compare again
    assert LeadMatchKey.objects.filter(scanned=False).count() == 5


def test_an_import_that_changes_a_phone_records_the_pair_it_makes(tmp_path, rep):
    known = api_create(rep, email="ada@acme.example", phone="+49 30 1234567")
    other = api_create(rep, email="bob@other.example", phone="+49 40 7654321")

    import_file(tmp_path, "email,phone\nbob@other.example,+49 30 1234567\n")

    assert pair_of(known["id"], other["id"]).reasons == [{"kind": "phone", "score": 0.9}]


def test_a_dry_run_import_queues_no_pair(tmp_path, rep):
    api_create(rep, email="ada@acme.example")

    import_file(tmp_path, "email\nada+x@acme.example\n", "--dry-run")

    assert not DuplicatePair.objects.exists()


def test_an_import_never_fails_a_row_because_detection_does(tmp_path, broken_detection):
    output = import_file(tmp_path, "email\nada@acme.example\nbob@acme.example\n")

    assert "2 created" in output
    assert Lead.objects.count() == 2


def test_a_chunk_is_compared_in_a_fixed_number_of_statements_not_one_per_lead(db):
    # Given a few leads and many, with pairs among them (and the settings row stored)
    DuplicateSettings.load()
    few = [LeadFactory(phone=f"+49 30 123456{n % 2}").pk for n in range(4)]
    many = [LeadFactory(phone=f"+49 40 12345{n % 20:02d}").pk for n in range(60)]

    # When each set is compared at once
    with CaptureQueriesContext(connection) as small:
        duplicates_record(lead_ids=few)
    with CaptureQueriesContext(connection) as large:
        found = duplicates_record(lead_ids=many)

    # Then both take the same number of statements
    assert len(large) == len(small)
    assert len(found) == 20 * 3  # three leads per number, three pairs each


def test_undoing_an_import_takes_its_leads_pairs_out_of_the_queue(tmp_path, rep):
    # Given an import that brought a second Ada by mailbox and moved Bob onto her phone
    ada = api_create(rep, email="ada@acme.example", phone="+49 30 1234567")
    bob = api_create(rep, email="bob@other.example", phone="+49 40 7654321")
    import_file(tmp_path, "email,phone\nada+list@acme.example,\nbob@other.example,+49 30 1234567\n")
    copy = Lead.objects.get(email="ada+list@acme.example")
    assert pair_of(ada["id"], copy).sure
    assert pair_of(ada["id"], bob["id"]).reasons == [{"kind": "phone", "score": 0.9}]

    # When the import is undone
    call_command("import_leads", "--undo", ImportJob.objects.get().pk, stdout=io.StringIO())

    # Then the deleted lead's pair and the pair of Bob's old phone leave the queue
    assert not Lead.objects.filter(pk=copy.pk).exists()
    assert Lead.objects.get(pk=bob["id"]).phone == "+49 40 7654321"
    assert not DuplicatePair.objects.exists()

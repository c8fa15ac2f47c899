"""Merging through the API: the merge endpoint, its preview, aliases that redirect, the
undo, the duplicate warning on create, and who may merge."""

from __future__ import annotations

import pytest

from crm.models import Role, Team
from leads.duplicates import duplicates_scan
from leads.models import Lead, LeadAlias, LeadMerge, Note
from tests.api_client import error_of, token_client
from tests.conftest import make_user
from tests.factories import LeadFactory

LEADS = "/api/v1/leads/"
MERGES = "/api/v1/lead-merges/"


def merge_url(lead: Lead) -> str:
    return f"{LEADS}{lead.pk}/merge/"


@pytest.fixture
def south_rep(db) -> object:
    return make_user("south-rep", Role.REP, team=Team.objects.create(name="South"))


@pytest.fixture
def pair(rep):
    a = LeadFactory(owner=rep, job_title="CTO", last_name="Lovelace")
    b = LeadFactory(owner=rep, job_title="Chief Technology Officer", last_name="King")
    Note.objects.create(lead=b, body="Prefers mornings")
    return a, b


def state(*leads: Lead) -> tuple:
    return (
        sorted(Lead.objects.filter(pk__in=[x.pk for x in leads]).values_list("pk", "job_title")),
        Note.objects.filter(lead__in=[x.pk for x in leads]).count(),
        LeadMerge.objects.count(),
    )


def test_marketer_merges_through_the_api_choosing_a_field(marketer, pair):
    a, b = pair
    api = token_client(marketer)

    response = api.post(
        merge_url(a), {"others": [b.pk], "fields": {"job_title": b.pk}}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["survivor"], body["merged_ids"]) == (a.pk, [b.pk])
    assert body["fields"]["job_title"]["after"] == "Chief Technology Officer"
    assert body["moved"]["leads.note"] == 1
    assert body["by"] == marketer.pk
    assert Lead.objects.get(pk=a.pk).job_title == "Chief Technology Officer"
    assert not Lead.objects.filter(pk=b.pk).exists()
    assert LeadAlias.objects.get(alias_id=b.pk).lead_id == a.pk


def test_a_merged_leads_id_redirects_to_the_survivor(marketer, pair):
    a, b = pair
    api = token_client(marketer)
    api.post(merge_url(a), {"others": [b.pk]}, format="json")

    read = api.get(f"{LEADS}{b.pk}/")
    assert (read.status_code, read["Location"]) == (301, f"{LEADS}{a.pk}/")
    followed = api.get(read["Location"])
    assert followed.json()["id"] == a.pk

    write = api.patch(f"{LEADS}{b.pk}/?x=1", {"city": "Berlin"}, format="json")
    assert (write.status_code, write["Location"]) == (308, f"{LEADS}{a.pk}/?x=1")
    assert api.get(f"{LEADS}{b.pk}/score/")["Location"] == f"{LEADS}{a.pk}/score/"


def test_an_alias_of_a_lead_out_of_view_answers_404_like_any_unknown_id(marketer, south_rep, rep):
    # Given a merge into a lead of another team
    a, b = LeadFactory(owner=south_rep), LeadFactory(owner=south_rep)
    token_client(marketer).post(merge_url(a), {"others": [b.pk]}, format="json")

    # Then a rep of this team learns nothing from the old id
    response = token_client(rep).get(f"{LEADS}{b.pk}/")
    assert response.status_code == 404
    assert "Location" not in response


def test_preview_lists_the_fields_that_differ_and_the_default_choice(admin_user, pair):
    a, b = pair

    response = token_client(admin_user).get(f"{merge_url(a)}?others={b.pk}")

    assert response.status_code == 200, response.content
    conflicts = {row["field"]: row for row in response.json()["conflicts"]}
    assert conflicts["job_title"]["values"] == {
        str(a.pk): "CTO",
        str(b.pk): "Chief Technology Officer",
    }
    assert conflicts["job_title"]["default"] == a.pk
    assert "owner" not in conflicts
    assert Lead.objects.filter(pk=b.pk).exists()


def test_undo_through_the_api_brings_the_merged_lead_back_once(marketer, pair):
    a, b = pair
    api = token_client(marketer)
    merge_id = api.post(merge_url(a), {"others": [b.pk]}, format="json").json()["id"]
    assert [m["id"] for m in api.get(MERGES).json()["results"]] == [merge_id]

    response = api.post(f"{MERGES}{merge_id}/undo/")

    assert response.status_code == 200, response.content
    assert response.json()["undone_at"] is not None
    assert Lead.objects.get(pk=b.pk).notes.count() == 1
    assert api.get(f"{LEADS}{b.pk}/").status_code == 200
    again = api.post(f"{MERGES}{merge_id}/undo/")
    assert again.status_code == 409
    assert "undone already" in error_of(again)["message"]


def test_bad_merge_requests_answer_400_and_change_nothing(admin_user, pair):
    a, b = pair
    api = token_client(admin_user)
    before = state(a, b)
    for body in (
        {"others": []},
        {"others": [a.pk]},
        {"others": [b.pk], "fields": {"score": b.pk}},
        {"others": [b.pk], "fields": {"email": 999999}},
        {"others": [b.pk], "extra": 1},
    ):
        response = api.post(merge_url(a), body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert error_of(response)["fields"]
    missing = api.post(merge_url(a), {"others": [999999]}, format="json")
    assert missing.status_code == 404
    assert state(a, b) == before


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("admin_user", 200),
        ("marketer", 200),
        ("manager", 200),
        ("rep", 403),
        ("outsider", 403),
    ],
)
def test_who_may_merge_through_the_api(request, persona, status, pair):
    # Given two leads of the manager's team, owned by a rep
    a, b = pair
    user = request.getfixturevalue(persona)
    before = state(a, b)

    response = token_client(user).post(merge_url(a), {"others": [b.pk]}, format="json")

    if persona == "outsider":
        # Without a role the lead is not even there to merge into
        assert response.status_code in (403, 404)
    else:
        assert response.status_code == status, response.content
    if status != 200:
        assert state(a, b) == before


def test_a_manager_cannot_merge_in_a_lead_of_another_team(manager, rep, south_rep):
    own, foreign = LeadFactory(owner=rep), LeadFactory(owner=south_rep)
    before = state(own, foreign)

    response = token_client(manager).post(merge_url(own), {"others": [foreign.pk]}, format="json")

    # Then, as for any lead outside their view, the other lead is not found
    assert response.status_code == 404
    assert state(own, foreign) == before


def test_reps_neither_list_nor_undo_merges(marketer, rep, pair):
    a, b = pair
    merge_id = (
        token_client(marketer).post(merge_url(a), {"others": [b.pk]}, format="json").json()["id"]
    )
    api = token_client(rep)

    assert api.get(MERGES).status_code == 403
    assert api.post(f"{MERGES}{merge_id}/undo/").status_code == 403
    assert LeadMerge.objects.get(pk=merge_id).undone_at is None
    assert not Lead.objects.filter(pk=b.pk).exists()


def test_creating_a_lead_with_a_likely_duplicate_warns_in_a_header(rep):
    # Given a lead in the pool known to the last scan, with a phone number
    known = LeadFactory(owner=None, phone="+49 30 1234567")
    duplicates_scan()
    api = token_client(rep)

    # When a rep creates a lead with the same number written another way
    response = api.post(
        LEADS,
        {"email": "ada@elsewhere.example", "phone": "030 1234567", "country": "DE"},
        format="json",
    )

    # Then it is created, and the header names the likely duplicate
    assert response.status_code == 201, response.content
    assert response["Possible-Duplicates"] == str(known.pk)
    unique = api.post(LEADS, {"email": "bob@elsewhere.example"}, format="json")
    assert unique.status_code == 201
    assert "Possible-Duplicates" not in unique


def test_records_posted_for_a_merged_leads_id_land_on_the_survivor(marketer, rep, pair):
    # Given b merged into a, and a rep's client that still knows b's id
    a, b = pair
    token_client(marketer).post(merge_url(a), {"others": [b.pk]}, format="json")
    api = token_client(rep)

    # When it logs a call, a batch of page views and a note by the old id
    one = api.post("/api/v1/activities/", {"lead": b.pk, "type": "call"}, format="json")
    batch = api.post(
        "/api/v1/activities/bulk/",
        {"activities": [{"lead": b.pk, "type": "page_view", "url": "https://x.example/"}]},
        format="json",
    )
    note = api.post("/api/v1/notes/", {"lead": b.pk, "body": "Called back"}, format="json")

    # Then each is stored on the survivor
    assert one.status_code == 201, one.content
    assert one.json()["lead"] == a.pk
    assert batch.status_code in (200, 201, 207), batch.content
    assert a.activities.filter(type="page_view").count() == 1
    assert note.status_code == 201, note.content
    assert note.json()["lead"] == a.pk


def test_a_merged_leads_id_out_of_view_is_refused_like_any_unknown_lead(marketer, south_rep, rep):
    a, b = LeadFactory(owner=south_rep), LeadFactory(owner=south_rep)
    token_client(marketer).post(merge_url(a), {"others": [b.pk]}, format="json")

    response = token_client(rep).post(
        "/api/v1/activities/", {"lead": b.pk, "type": "call"}, format="json"
    )

    assert response.status_code == 400
    assert not a.activities.exists()

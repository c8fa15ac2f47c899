"""Who may do what through the API: roles, ``visible_to`` (404, never 403), and bad keys."""

from __future__ import annotations

import pytest
from django.utils import timezone

from crm.models import ApiToken
from leads.deals import deal_save
from leads.models import Activity, Deal, Lead, Note, Task
from tests.api_client import error_of, ids, token_client
from tests.factories import ActivityFactory, LeadFactory


@pytest.fixture
def people(rep, other_rep, manager, marketer, admin_user, outsider) -> dict:
    return {
        "rep": rep,
        "other_rep": other_rep,
        "manager": manager,
        "marketer": marketer,
        "admin": admin_user,
        "outsider": outsider,
    }


def _with_children(lead: Lead, assignee) -> dict:
    return {
        "leads": lead,
        "activities": ActivityFactory(lead=lead),
        "deals": deal_save(deal=Deal(lead=lead, name=f"Deal {lead.pk}", amount=100)),
        "tasks": Task.objects.create(
            lead=lead, assignee=assignee, title="Call", due_at=timezone.now()
        ),
        "notes": Note.objects.create(lead=lead, author=assignee, body="Met at a fair"),
    }


@pytest.fixture
def other_reps_rows(other_rep) -> dict:
    return _with_children(LeadFactory(owner=other_rep), other_rep)


def client_for(persona: str, people: dict):
    if persona == "anonymous":
        return token_client(None)
    if persona == "revoked":
        client = token_client(people["rep"])
        ApiToken.objects.filter(user=people["rep"]).revoke()
        return client
    return token_client(people[persona])


# persona -> status for reading other_rep's lead and each row hanging off it
READ_OTHER_REPS = {
    "rep": 404,
    "other_rep": 200,
    "manager": 200,
    "marketer": 200,
    "admin": 200,
    "outsider": 403,
    "anonymous": 401,
    "revoked": 401,
}


@pytest.mark.parametrize("resource", ["leads", "activities", "deals", "tasks", "notes"])
@pytest.mark.parametrize(("persona", "expected"), READ_OTHER_REPS.items())
def test_reading_another_reps_rows(people, other_reps_rows, resource, persona, expected):
    client = client_for(persona, people)
    row = other_reps_rows[resource]

    response = client.get(f"/api/v1/{resource}/{row.pk}/")

    assert response.status_code == expected
    if expected != 200:
        error_of(response)
    else:
        assert response.json()["id"] == row.pk


@pytest.mark.parametrize("resource", ["leads", "activities", "deals", "tasks", "notes"])
def test_rep_lists_never_show_another_reps_rows(people, other_reps_rows, resource):
    own = _with_children(LeadFactory(owner=people["rep"]), people["rep"])

    listed = ids(client_for("rep", people).get(f"/api/v1/{resource}/"))

    assert listed == [own[resource].pk]


@pytest.mark.parametrize("resource", ["leads", "activities", "deals", "tasks", "notes"])
def test_manager_lists_show_the_teams_rows(people, other_reps_rows, resource):
    listed = ids(client_for("manager", people).get(f"/api/v1/{resource}/"))

    assert listed == [other_reps_rows[resource].pk]


@pytest.mark.parametrize(
    ("resource", "payload"),
    [
        ("activities", {"type": "call"}),
        ("deals", {"name": "Big", "amount": "10.00"}),
        ("tasks", {"title": "Call back", "due_at": "2030-01-01T09:00:00Z"}),
        ("notes", {"body": "Hidden"}),
    ],
)
def test_rows_for_a_lead_outside_view_are_refused_and_not_stored(
    people, other_reps_rows, resource, payload
):
    model = {"activities": Activity, "deals": Deal, "tasks": Task, "notes": Note}[resource]
    before = model.objects.count()
    lead = other_reps_rows["leads"]

    response = client_for("rep", people).post(
        f"/api/v1/{resource}/", {**payload, "lead": lead.pk}, format="json"
    )

    assert response.status_code == 400
    assert error_of(response)["fields"]["lead"] == [f"There is no lead {lead.pk} that you can see."]
    assert model.objects.count() == before


def test_rep_cannot_change_another_reps_lead(people, other_reps_rows):
    lead = other_reps_rows["leads"]

    response = client_for("rep", people).patch(
        f"/api/v1/leads/{lead.pk}/", {"job_title": "Hacked"}, format="json"
    )
    transition = client_for("rep", people).post(
        f"/api/v1/leads/{lead.pk}/transition/", {"stage": "sql"}, format="json"
    )
    score = client_for("rep", people).get(f"/api/v1/leads/{lead.pk}/score/")

    assert (response.status_code, transition.status_code, score.status_code) == (404, 404, 404)
    lead.refresh_from_db()
    assert (lead.job_title, lead.stage) == ("Head of Operations", "new")


def test_rep_sees_the_unassigned_pool_and_works_a_lead_once_taken(people):
    pool = LeadFactory(owner=None)
    client = client_for("rep", people)

    assert client.get(f"/api/v1/leads/{pool.pk}/").status_code == 200
    note = {"lead": pool.pk, "body": "Mine?"}
    refused = client.post("/api/v1/notes/", note, format="json")
    taken = client.patch(f"/api/v1/leads/{pool.pk}/", {"owner": people["rep"].pk}, format="json")
    response = client.post("/api/v1/notes/", note, format="json")

    assert refused.status_code == 403
    assert taken.status_code == 200
    assert response.status_code == 201
    assert Note.objects.get().author == people["rep"]


@pytest.mark.parametrize("persona", ["outsider", "anonymous", "revoked"])
def test_no_role_or_no_key_changes_nothing(people, other_reps_rows, persona):
    client = client_for(persona, people)
    lead = other_reps_rows["leads"]
    counts = [m.objects.count() for m in (Lead, Activity, Deal, Task, Note)]

    responses = [
        client.post("/api/v1/leads/", {"email": "new@example.com"}, format="json"),
        client.patch(f"/api/v1/leads/{lead.pk}/", {"job_title": "X"}, format="json"),
        client.post("/api/v1/activities/", {"lead": lead.pk, "type": "call"}, format="json"),
        client.post("/api/v1/notes/", {"lead": lead.pk, "body": "x"}, format="json"),
        client.get("/api/v1/leads/"),
    ]

    expected = 403 if persona == "outsider" else 401
    assert [r.status_code for r in responses] == [expected] * len(responses)
    assert [m.objects.count() for m in (Lead, Activity, Deal, Task, Note)] == counts
    lead.refresh_from_db()
    assert lead.job_title != "X"


def test_marketer_reads_deals_but_cannot_write_them(people, other_reps_rows):
    client = client_for("marketer", people)
    lead = other_reps_rows["leads"]

    read = client.get("/api/v1/deals/")
    write = client.post("/api/v1/deals/", {"lead": lead.pk, "name": "X"}, format="json")

    assert read.status_code == 200
    assert write.status_code == 403
    assert error_of(write)["code"] == "permission_denied"
    assert Deal.objects.count() == 1


def test_anonymous_gets_a_bearer_challenge(db):
    response = token_client(None).get("/api/v1/leads/")

    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'

"""Adding to a lead and changing what is on it through the API: the workspace's rule
(``leads.permissions``: ``lead_access``, ``task_refusal``), answered 403 with the reason."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crm.models import Role, Team
from leads.deals import deal_save
from leads.models import Deal, Lead, Note, Task
from leads.permissions import LEAD_UNASSIGNED
from tests.api_client import error_of, token_client
from tests.conftest import make_user
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

DUE = "2030-01-01T09:00:00Z"


def _adds(lead: Lead, assignee_pk: int) -> dict[str, dict]:
    """A body for each record the API adds to a lead."""
    return {
        "/api/v1/notes/": {"lead": lead.pk, "body": "Called, no answer"},
        "/api/v1/tasks/": {
            "lead": lead.pk,
            "title": "Call",
            "due_at": DUE,
            "assignee": assignee_pk,
        },
        "/api/v1/deals/": {"lead": lead.pk, "name": "Fleet", "amount": "100"},
    }


def _counts() -> list[int]:
    return [Note.objects.count(), Task.objects.count(), Deal.objects.count()]


def _task(lead: Lead | None, assignee, title: str = "Call") -> Task:
    due = timezone.now() + dt.timedelta(days=1)
    return Task.objects.create(lead=lead, assignee=assignee, title=title, due_at=due)


def test_rep_adds_nothing_to_a_pool_lead_until_taking_it(rep):
    pool = LeadFactory(owner=None)
    api = token_client(rep)

    refused = [api.post(url, body, format="json") for url, body in _adds(pool, rep.pk).items()]

    assert [r.status_code for r in refused] == [403, 403, 403]
    assert {error_of(r)["message"] for r in refused} == {LEAD_UNASSIGNED}
    assert {error_of(r)["code"] for r in refused} == {"permission_denied"}
    assert _counts() == [0, 0, 0]

    taken = api.patch(f"/api/v1/leads/{pool.pk}/", {"owner": rep.pk}, format="json")
    added = [api.post(url, body, format="json") for url, body in _adds(pool, rep.pk).items()]

    assert taken.status_code == 200, taken.content
    assert [r.status_code for r in added] == [201, 201, 201]
    assert _counts() == [1, 1, 1]


def test_marketer_adds_nothing_to_a_lead_they_read(rep, marketer):
    lead = LeadFactory(owner=rep)
    api = token_client(marketer)

    refused = [api.post(url, body, format="json") for url, body in _adds(lead, rep.pk).items()]

    assert [r.status_code for r in refused] == [403, 403, 403]
    assert _counts() == [0, 0, 0]


def test_manager_adds_to_the_team_leads_not_to_the_pool_nor_other_teams(rep, manager):
    south = Team.objects.create(name="South")
    southern = LeadFactory(owner=make_user("south_rep", Role.REP, team=south))
    api = token_client(manager)

    team_lead = [
        api.post(url, body, format="json")
        for url, body in _adds(LeadFactory(owner=rep), rep.pk).items()
    ]
    pool = [
        api.post(url, body, format="json")
        for url, body in _adds(LeadFactory(owner=None), rep.pk).items()
    ]
    other_team = [
        api.post(url, body, format="json") for url, body in _adds(southern, rep.pk).items()
    ]

    assert [r.status_code for r in team_lead] == [201, 201, 201]
    assert [r.status_code for r in pool] == [403, 403, 403]
    assert {error_of(r)["message"] for r in pool} == {LEAD_UNASSIGNED}
    # Another team's lead is not one the manager sees: no answer tells it exists.
    assert [r.status_code for r in other_team] == [400, 400, 400]
    assert {tuple(error_of(r)["fields"]) for r in other_team} == {("lead",)}
    assert _counts() == [1, 1, 1]


def test_manager_of_a_lead_owner_team_adds_to_it_a_manager_of_another_team_does_not(rep, manager):
    """A manager in the owner's team who does not manage it may act: the rule's own case."""
    helper = make_user("co_manager", Role.MANAGER, team=manager.team)
    lead = LeadFactory(owner=rep)

    response = token_client(helper).post(
        "/api/v1/notes/", {"lead": lead.pk, "body": "Hello"}, format="json"
    )

    assert response.status_code == 201, response.content


def test_rep_cannot_change_or_move_records_onto_a_lead_nobody_took(rep, admin_user):
    own = LeadFactory(owner=rep)
    pool = LeadFactory(owner=None)
    note = Note.objects.create(lead=own, author=rep, body="Mine")
    deal = deal_save(deal=Deal(lead=own, name="Mine", amount=10))
    on_pool = Note.objects.create(lead=pool, author=admin_user, body="Admin's")
    api = token_client(rep)

    moves = [
        api.patch(f"/api/v1/notes/{note.pk}/", {"lead": pool.pk}, format="json"),
        api.patch(f"/api/v1/deals/{deal.pk}/", {"lead": pool.pk}, format="json"),
        api.patch(f"/api/v1/notes/{on_pool.pk}/", {"body": "Changed"}, format="json"),
    ]
    kept = api.patch(f"/api/v1/notes/{note.pk}/", {"body": "Still mine"}, format="json")

    assert [r.status_code for r in moves] == [403, 403, 403]
    assert {error_of(r)["message"] for r in moves} == {LEAD_UNASSIGNED}
    note.refresh_from_db()
    deal.refresh_from_db()
    on_pool.refresh_from_db()
    assert (note.lead_id, deal.lead_id, on_pool.body) == (own.pk, own.pk, "Admin's")
    assert kept.status_code == 200


def test_a_lead_nobody_may_see_keeps_its_400(rep, other_rep):
    hidden = LeadFactory(owner=other_rep)

    response = token_client(rep).post(
        "/api/v1/notes/", {"lead": hidden.pk, "body": "x"}, format="json"
    )

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["lead"]


# --- A task's assignee, as in the workspace ----------------------------------------------


@pytest.mark.parametrize(
    ("change", "allowed"),
    [
        ({"done_at": DUE}, True),
        ({"due_at": DUE}, True),
        ({"title": "Call twice"}, False),
    ],
)
def test_assignee_completes_and_snoozes_own_task_on_a_lead_nobody_took(rep, change, allowed):
    task = _task(LeadFactory(owner=None), rep)

    response = token_client(rep).patch(f"/api/v1/tasks/{task.pk}/", change, format="json")

    assert response.status_code == (200 if allowed else 403), response.content
    task.refresh_from_db()
    assert (task.title == "Call twice") is (allowed and "title" in change)
    if not allowed:
        assert error_of(response)["message"] == LEAD_UNASSIGNED


def test_completing_a_task_is_allowed_by_the_api_exactly_when_by_the_workspace(
    rep, other_rep, manager
):
    """Each person, each task they can see: the API's answer follows the workspace's."""
    pool, reps = LeadFactory(owner=None), LeadFactory(owner=rep)
    tasks = [_task(pool, rep), _task(pool, other_rep), _task(reps, rep), _task(reps, manager)]
    for person in (rep, other_rep, manager):
        browser = Client()
        browser.force_login(person)
        api = token_client(person)
        for task in tasks:
            page = browser.post(reverse("my-day-task-done", args=[task.pk]))
            Task.objects.filter(pk=task.pk).update(done_at=None)
            answer = api.patch(f"/api/v1/tasks/{task.pk}/", {"done_at": DUE}, format="json")
            Task.objects.filter(pk=task.pk).update(done_at=None)
            web = {302: "allowed", 403: "refused", 404: "unseen"}[page.status_code]
            via_api = {200: "allowed", 403: "refused", 404: "unseen"}[answer.status_code]
            assert via_api == web, (person, task.assignee, task.lead)


def test_manager_completes_a_team_member_task_on_a_lead_nobody_took(rep, manager):
    task = _task(LeadFactory(owner=None), rep)
    api = token_client(manager)

    done = api.patch(f"/api/v1/tasks/{task.pk}/", {"done_at": DUE}, format="json")
    retitled = api.patch(f"/api/v1/tasks/{task.pk}/", {"title": "Other"}, format="json")

    assert done.status_code == 200
    assert retitled.status_code == 403
    task.refresh_from_db()
    assert task.title == "Call"


def test_rep_cannot_move_own_task_to_a_lead_nobody_took(rep):
    own = LeadFactory(owner=rep)
    task = _task(own, rep)

    response = token_client(rep).patch(
        f"/api/v1/tasks/{task.pk}/", {"lead": LeadFactory(owner=None).pk}, format="json"
    )

    assert response.status_code == 403
    assert error_of(response)["message"] == LEAD_UNASSIGNED
    task.refresh_from_db()
    assert task.lead_id == own.pk


def test_a_pool_lead_is_moved_through_the_api_only_once_taken_as_on_the_lead_page(rep):
    pool = LeadFactory(owner=None)
    api = token_client(rep)
    url = f"/api/v1/leads/{pool.pk}/transition/"

    refused = api.post(url, {"stage": "mql"}, format="json")

    assert refused.status_code == 403
    assert error_of(refused)["message"] == LEAD_UNASSIGNED
    assert Lead.objects.get(pk=pool.pk).stage == "new"
    page = Client()
    page.force_login(rep)
    in_browser = page.post(reverse("lead-change-stage", args=[pool.pk]), {"stage-stage": "mql"})
    assert in_browser.status_code == 403

    api.patch(f"/api/v1/leads/{pool.pk}/", {"owner": rep.pk}, format="json")
    moved = api.post(url, {"stage": "mql"}, format="json")

    assert moved.status_code == 200, moved.content
    assert Lead.objects.get(pk=pool.pk).stage == "mql"

"""A team's people cannot reach another team's leads, tasks, companies or team set-up:
not through the admin, the API or the workspace, and not by learning that a lead exists.

North is the ``team`` fixture (its ``manager``, ``rep`` and ``other_rep``); South is a
second team with a manager, a rep and a lead at a company of its own.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from crm.models import Role, Team, User
from leads.handoff_models import AssignmentRule
from leads.models import Company, Lead, Note, Task
from tests.admin_forms import changeform_data
from tests.api_client import error_of, token_client
from tests.conftest import make_user
from tests.factories import CompanyFactory, LeadFactory

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads/"
TASKS = "/api/v1/tasks/"
COMPANIES = "/api/v1/companies/"


def admin_url(model, view: str, *args) -> str:
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


@pytest.fixture
def staff_manager(manager) -> User:
    manager.is_staff = True
    manager.save(update_fields=["is_staff"])
    return User.objects.get(pk=manager.pk)


@pytest.fixture
def south(db) -> dict:
    team = Team.objects.create(name="South")
    boss = make_user("south_manager", Role.MANAGER, team=team, is_staff=True)
    team.manager = boss
    team.save(update_fields=["manager"])
    seller = make_user("south_rep", Role.REP, team=team)
    company = CompanyFactory(name="Southwind")
    lead = LeadFactory(owner=seller, company=company, email="grace@southwind.example")
    return {"team": team, "manager": boss, "rep": seller, "company": company, "lead": lead}


def row(obj) -> dict:
    return type(obj).objects.values().get(pk=obj.pk)


# --- The team admin ---------------------------------------------------------------------


def test_manager_cannot_make_themselves_manager_of_another_team(client, staff_manager, south):
    client.force_login(staff_manager)
    url = admin_url(Team, "change", south["team"].pk)

    response = client.post(url, {"name": "South", "manager": staff_manager.pk})

    assert response.status_code in (302, 403)
    assert Team.objects.get(pk=south["team"].pk).manager == south["manager"]
    # and so the other team's leads stay out of reach
    api = token_client(staff_manager)
    assert api.get(f"{LEADS}{south['lead'].pk}/").status_code == 404


def test_manager_cannot_hand_their_own_team_to_another_manager(client, staff_manager, south):
    team = staff_manager.team
    client.force_login(staff_manager)
    url = admin_url(Team, "change", team.pk)
    page = client.get(url)
    data = {**changeform_data(page), "manager": south["manager"].pk, "name": "Renamed"}

    response = client.post(url, data)

    assert page.status_code == 200  # a manager reads their own team
    assert response.status_code == 403
    team.refresh_from_db()
    assert (team.name, team.manager) == ("North", staff_manager)


def test_manager_sees_only_their_own_team_and_its_people_in_the_admin(
    client, staff_manager, rep, other_rep, south
):
    client.force_login(staff_manager)

    teams = client.get(admin_url(Team, "changelist"))
    other_team = client.get(admin_url(Team, "change", south["team"].pk))
    users = client.get(admin_url(User, "changelist"))
    other_user = client.get(admin_url(User, "change", south["rep"].pk))

    assert list(teams.context["cl"].result_list) == [staff_manager.team]
    assert other_team.status_code == 302  # "doesn't exist", back to the index
    assert set(users.context["cl"].result_list) == {staff_manager, rep, other_rep}
    assert other_user.status_code == 302
    assert b"south_rep" not in users.content
    assert b"South" not in users.content


def test_the_owner_autocomplete_lists_only_the_managers_people(client, staff_manager, rep, south):
    client.force_login(staff_manager)

    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "leads", "model_name": "lead", "field_name": "owner", "term": "rep"},
    )

    assert response.status_code == 200
    found = {int(item["id"]) for item in response.json()["results"]}
    assert rep.pk in found
    assert south["rep"].pk not in found


def test_admin_still_manages_every_team(client, admin_user, staff_manager, south):
    client.force_login(admin_user)
    url = admin_url(Team, "change", south["team"].pk)
    data = {**changeform_data(client.get(url)), "manager": staff_manager.pk}

    response = client.post(url, data)

    assert response.status_code == 302
    assert Team.objects.get(pk=south["team"].pk).manager == staff_manager


def test_managers_group_may_read_teams_but_not_change_them(db):
    managers = Group.objects.get(name=Role.MANAGER.label)
    codenames = set(managers.permissions.values_list("codename", flat=True))

    assert "view_team" in codenames
    assert "change_team" not in codenames


# --- Tasks and owners across teams: the API -------------------------------------------------


@pytest.mark.parametrize("persona", ["rep", "manager"])
def test_lead_less_task_for_another_teams_rep_is_refused(request, persona, south):
    api = token_client(request.getfixturevalue(persona))

    response = api.post(
        TASKS,
        {"assignee": south["rep"].pk, "title": "Spy", "due_at": timezone.now().isoformat()},
        format="json",
    )

    assert response.status_code == 400
    assert "assignee" in error_of(response)["fields"]
    assert not Task.objects.exists()


def test_rep_cannot_give_a_task_to_a_teammate(rep, other_rep):
    response = token_client(rep).post(
        TASKS,
        {"assignee": other_rep.pk, "title": "Yours", "due_at": timezone.now().isoformat()},
        format="json",
    )

    assert response.status_code == 400
    assert not Task.objects.exists()


def test_manager_gives_tasks_to_their_team_but_cannot_move_one_to_another_team(manager, rep, south):
    api = token_client(manager)
    created = api.post(
        TASKS,
        {"assignee": rep.pk, "title": "Call", "due_at": timezone.now().isoformat()},
        format="json",
    )
    assert created.status_code == 201, created.content
    task = Task.objects.get()

    moved = api.patch(f"{TASKS}{task.pk}/", {"assignee": south["rep"].pk}, format="json")

    assert moved.status_code == 400
    assert Task.objects.get().assignee == rep


def test_manager_cannot_create_a_lead_for_another_teams_rep(manager, south):
    response = token_client(manager).post(
        LEADS, {"email": "new@example.com", "owner": south["rep"].pk}, format="json"
    )

    assert response.status_code == 400
    assert "owner" in error_of(response)["fields"]
    assert not Lead.objects.filter(email="new@example.com").exists()


def test_manager_cannot_reassign_a_lead_to_another_teams_rep(manager, rep, south):
    lead = LeadFactory(owner=rep)
    before = row(lead)

    response = token_client(manager).patch(
        f"{LEADS}{lead.pk}/", {"owner": south["rep"].pk}, format="json"
    )

    assert response.status_code == 400
    assert row(lead) == before


def test_manager_may_still_reassign_within_the_team_and_keep_an_owner(manager, rep, other_rep):
    lead = LeadFactory(owner=rep)
    api = token_client(manager)

    moved = api.patch(f"{LEADS}{lead.pk}/", {"owner": other_rep.pk}, format="json")
    kept = api.patch(f"{LEADS}{lead.pk}/", {"owner": other_rep.pk, "city": "Oslo"}, format="json")

    assert (moved.status_code, kept.status_code) == (200, 200)
    assert Lead.objects.get(pk=lead.pk).owner == other_rep


# --- Tasks and owners across teams: the admin ------------------------------------------------


def test_manager_cannot_give_a_lead_to_another_teams_rep_in_the_admin(
    client, staff_manager, rep, south
):
    lead = LeadFactory(owner=rep)
    client.force_login(staff_manager)
    url = admin_url(Lead, "change", lead.pk)
    before = row(lead)
    data = {**changeform_data(client.get(url)), "owner": south["rep"].pk}

    response = client.post(url, data)

    assert response.status_code == 200
    assert "owner" in response.context["adminform"].form.errors
    assert row(lead) == before


def test_manager_cannot_add_a_task_for_another_team_or_on_its_lead_in_the_admin(
    client, staff_manager, rep, south
):
    client.force_login(staff_manager)
    url = admin_url(Task, "add")
    due = timezone.localtime()
    base = {"title": "Spy", "kind": "call", "due_at_0": f"{due:%Y-%m-%d}", "due_at_1": "09:00"}

    for_other_team = client.post(url, {**base, "assignee": south["rep"].pk})
    on_other_lead = client.post(url, {**base, "assignee": rep.pk, "lead": south["lead"].pk})

    assert "assignee" in for_other_team.context["adminform"].form.errors
    assert "lead" in on_other_lead.context["adminform"].form.errors
    assert not Task.objects.exists()


def test_manager_cannot_write_a_note_on_another_teams_lead_in_the_admin(
    client, staff_manager, south
):
    client.force_login(staff_manager)

    response = client.post(admin_url(Note, "add"), {"lead": south["lead"].pk, "body": "Hi"})

    assert "lead" in response.context["adminform"].form.errors
    assert not Note.objects.exists()


# --- Whether a lead exists -------------------------------------------------------------------


@pytest.mark.parametrize("email", ["grace@southwind.example", "GRACE@Southwind.example"])
def test_creating_a_lead_with_a_hidden_leads_email_tells_nothing_about_it(rep, south, email):
    hidden = south["lead"]
    before = row(hidden)

    response = token_client(rep).post(LEADS, {"email": email}, format="json")

    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "conflict"
    assert error["fields"] == {}
    text = response.content.decode().lower()
    assert "exist" not in text
    assert "south" not in text
    assert Lead.objects.count() == 1
    assert row(hidden) == before


def test_changing_a_leads_email_to_a_hidden_leads_answers_the_same_conflict(rep, south):
    mine = LeadFactory(owner=rep)
    before = row(mine)

    response = token_client(rep).patch(
        f"{LEADS}{mine.pk}/", {"email": "grace@southwind.example"}, format="json"
    )

    assert response.status_code == 409
    assert error_of(response)["fields"] == {}
    assert row(mine) == before


def test_a_taken_email_of_a_lead_the_caller_sees_is_named(rep):
    LeadFactory(owner=rep, email="mine@example.com")

    response = token_client(rep).post(LEADS, {"email": "mine@example.com"}, format="json")

    assert response.status_code == 400
    assert "exists already" in error_of(response)["fields"]["email"][0]


def test_the_admin_tells_a_manager_no_more_about_a_hidden_leads_email(
    client, staff_manager, admin_user, south
):
    data = {
        "email": "GRACE@southwind.example",
        "source": "website",
        "email_status": "valid",
        "custom_fields": "{}",
    }
    client.force_login(staff_manager)

    hidden = client.post(admin_url(Lead, "add"), data)
    client.force_login(admin_user)
    seen = client.post(admin_url(Lead, "add"), data)

    hidden_errors = hidden.context["adminform"].form.errors
    assert list(hidden_errors) == ["email"]
    assert "exist" not in str(hidden_errors)
    assert "exists already" in str(seen.context["adminform"].form.errors["email"])
    assert Lead.objects.count() == 1


# --- Companies -------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["rep", "manager"])
def test_company_carrying_another_teams_lead_cannot_be_changed_through_the_api(
    request, persona, south
):
    company = south["company"]
    before = row(company)
    api = token_client(request.getfixturevalue(persona))

    read = api.get(f"{COMPANIES}{company.pk}/")
    patched = api.patch(f"{COMPANIES}{company.pk}/", {"name": "Pwned"}, format="json")
    put = api.put(f"{COMPANIES}{company.pk}/", {"name": "Pwned"}, format="json")

    assert read.status_code == 200
    assert (patched.status_code, put.status_code) == (403, 403)
    assert error_of(patched)["code"] == "permission_denied"
    assert row(company) == before


def test_company_shared_with_a_teammates_lead_is_refused_to_a_rep_not_their_manager(
    rep, other_rep, manager
):
    company = CompanyFactory()
    LeadFactory(owner=rep, company=company)
    LeadFactory(owner=other_rep, company=company)

    by_rep = token_client(rep).patch(f"{COMPANIES}{company.pk}/", {"city": "Bergen"}, format="json")
    by_manager = token_client(manager).patch(
        f"{COMPANIES}{company.pk}/", {"city": "Oslo"}, format="json"
    )

    assert (by_rep.status_code, by_manager.status_code) == (403, 200)
    assert Company.objects.get(pk=company.pk).city == "Oslo"


def test_rep_changes_a_company_whose_leads_they_own_or_share_in_the_pool(rep):
    company = CompanyFactory()
    LeadFactory(owner=rep, company=company)
    LeadFactory(owner=None, company=company)

    response = token_client(rep).patch(
        f"{COMPANIES}{company.pk}/", {"city": "Bergen"}, format="json"
    )

    assert response.status_code == 200
    assert Company.objects.get(pk=company.pk).city == "Bergen"


def test_marketer_changes_any_company(marketer, south):
    company = south["company"]

    response = token_client(marketer).patch(
        f"{COMPANIES}{company.pk}/", {"city": "Lima"}, format="json"
    )

    assert response.status_code == 200
    assert Company.objects.get(pk=company.pk).city == "Lima"


def test_company_carrying_another_teams_lead_is_read_only_in_the_admin(
    client, staff_manager, rep, south
):
    company, own = south["company"], CompanyFactory(name="Northwind")
    LeadFactory(owner=rep, company=own)
    before = row(company)
    client.force_login(staff_manager)
    url = admin_url(Company, "change", company.pk)

    page = client.get(url)
    posted = client.post(url, {**changeform_data(page), "name": "Pwned"})
    deleted = client.post(admin_url(Company, "delete", company.pk), {"post": "yes"})
    own_url = admin_url(Company, "change", own.pk)
    saved = client.post(own_url, {**changeform_data(client.get(own_url)), "city": "Tromsø"})

    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert (posted.status_code, deleted.status_code) == (403, 403)
    assert row(company) == before
    assert saved.status_code == 302
    assert Company.objects.get(pk=own.pk).city == "Tromsø"


# --- Routing rules ---------------------------------------------------------------------------


def test_manager_reads_routing_rules_but_cannot_route_hand_offs_to_themselves(
    client, staff_manager
):
    client.force_login(staff_manager)

    listing = client.get(admin_url(AssignmentRule, "changelist"))
    added = client.post(
        admin_url(AssignmentRule, "add"),
        {
            "name": "All mine",
            "kind": "fallback",
            "position": "0",
            "active": "on",
            "owner": staff_manager.pk,
            "countries": "[]",
            "regions": "[]",
        },
    )

    assert listing.status_code == 200
    assert added.status_code == 403
    assert not AssignmentRule.objects.exists()


def test_bulk_delete_in_the_admin_spares_a_company_carrying_another_teams_lead(
    client, staff_manager, south
):
    company = south["company"]
    client.force_login(staff_manager)

    response = client.post(
        admin_url(Company, "changelist"),
        {"action": "delete_selected", "_selected_action": [company.pk], "post": "yes"},
    )

    assert response.status_code in (200, 302, 403)
    assert Company.objects.filter(pk=company.pk).exists()
    assert Lead.objects.get(pk=south["lead"].pk).company == company

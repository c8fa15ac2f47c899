"""Tasks at /tasks/: mine (a manager's team's too), overdue first; complete, snooze, reassign."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.utils import timezone

from leads.models import Task
from tests.conftest import make_user
from tests.factories import LeadFactory
from workspace.actions import snooze_until

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def task_for(user, *, hours: float = 1, title: str = "Call back", lead=None) -> Task:
    due = timezone.now() + dt.timedelta(hours=hours)
    return Task.objects.create(assignee=user, title=title, due_at=due, lead=lead)


def shown(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'id="task-(\d+)"', response.content.decode())]


def test_rep_sees_own_open_tasks_overdue_first(rep, other_rep):
    later = task_for(rep, hours=48, title="Later")
    overdue = task_for(rep, hours=-3, title="Overdue")
    soon = task_for(rep, hours=2, title="Soon")
    task_for(other_rep, title="Not mine")
    done = task_for(rep, title="Done")
    done.done_at = timezone.now()
    done.save()

    response = client_for(rep).get("/tasks/")

    body = response.content.decode()
    assert response.status_code == 200
    assert shown(response) == [overdue.pk, soon.pk, later.pk]
    assert body.index("Overdue") < body.index("Due within a day") < body.index("Later")
    assert "Not mine" not in body
    assert "Reassign" not in body


def test_manager_sees_the_team_and_filters_by_assignee(manager, rep, other_rep, outsider):
    mine = task_for(manager, hours=3)
    reps = task_for(rep, hours=1)
    others = task_for(other_rep, hours=2)
    task_for(outsider, hours=1)
    client = client_for(manager)

    assert shown(client.get("/tasks/")) == [reps.pk, others.pk, mine.pk]
    assert shown(client.get(f"/tasks/?assignee={other_rep.pk}")) == [others.pk]
    assert shown(client.get("/tasks/?assignee=me")) == [mine.pk]
    assert shown(client.get(f"/tasks/?assignee={outsider.pk}")) == [reps.pk, others.pk, mine.pk]


@pytest.mark.parametrize("persona", ["marketer", "admin_user"])
def test_others_see_only_their_own_tasks(request, rep, persona):
    user = request.getfixturevalue(persona)
    task_for(rep)
    own = task_for(user)

    assert shown(client_for(user).get("/tasks/")) == [own.pk]


def test_outsider_sees_no_tasks_not_even_one_given_to_them(rep, outsider):
    task_for(rep)
    given = task_for(outsider)

    response = client_for(outsider).get("/tasks/")

    assert shown(response) == []
    assert client_for(outsider).post(f"/tasks/{given.pk}/complete/").status_code == 404


def test_anonymous_visitor_is_sent_to_log_in(rep):
    task = task_for(rep)

    assert Client().get("/tasks/")["Location"].startswith("/accounts/login/")
    assert Client().post(f"/tasks/{task.pk}/complete/").status_code == 302
    assert Task.objects.get(pk=task.pk).done_at is None


def test_completing_a_task(rep):
    task = task_for(rep, title="Send the quote")
    client = client_for(rep)

    response = client.post(f"/tasks/{task.pk}/complete/", follow=True)
    again = client.post(f"/tasks/{task.pk}/complete/", follow=True)

    assert "Done: Send the quote." in response.content.decode()
    assert Task.objects.get(pk=task.pk).done_at is not None
    assert "was done already" in again.content.decode()


def test_completing_via_htmx_swaps_the_list(rep):
    task = task_for(rep)

    response = client_for(rep).post(f"/tasks/{task.pk}/complete/", HTTP_HX_REQUEST="true")

    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert "Done: Call back." in body
    assert shown(response) == []


@pytest.mark.parametrize("choice", ["hour", "tomorrow", "next_week"])
def test_snoozing_moves_the_due_time(rep, choice):
    task = task_for(rep, hours=-1)
    before = timezone.now()

    response = client_for(rep).post(f"/tasks/{task.pk}/snooze/", {"until": choice})

    after = timezone.now()
    due = Task.objects.get(pk=task.pk).due_at
    assert response.status_code == 302
    assert snooze_until(choice, now=before) <= due <= snooze_until(choice, now=after)
    assert due > after


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=timezone.get_current_timezone())


def test_snooze_times():
    monday_noon = at(2026, 3, 2, 12, 0)
    friday = at(2026, 3, 6, 17, 0)

    assert snooze_until("hour", now=monday_noon) == monday_noon + dt.timedelta(hours=1)
    assert snooze_until("tomorrow", now=monday_noon) == at(2026, 3, 3, 9, 0)
    assert snooze_until("next_week", now=monday_noon) == at(2026, 3, 9, 9, 0)
    assert snooze_until("next_week", now=friday) == at(2026, 3, 9, 9, 0)


def test_bad_snooze_is_a_400_and_keeps_the_task(rep):
    task = task_for(rep)
    due = task.due_at

    response = client_for(rep).post(f"/tasks/{task.pk}/snooze/", {"until": "forever"})

    assert response.status_code == 400
    assert "Choose how long to snooze." in response.content.decode()
    assert Task.objects.get(pk=task.pk).due_at == due


@pytest.mark.parametrize("action", ["complete", "snooze", "reassign"])
@pytest.mark.parametrize("persona", ["rep", "outsider", "marketer"])
def test_nobody_acts_on_someone_elses_task(request, other_rep, rep, persona, action):
    task = task_for(other_rep)

    response = client_for(request.getfixturevalue(persona)).post(
        f"/tasks/{task.pk}/{action}/", {"until": "hour", "assignee": rep.pk}
    )

    assert response.status_code == 404
    unchanged = Task.objects.get(pk=task.pk)
    assert (unchanged.done_at, unchanged.due_at, unchanged.assignee) == (
        None,
        task.due_at,
        other_rep,
    )


def test_manager_reassigns_within_the_team(manager, rep, other_rep):
    task = task_for(rep, title="Demo")

    response = client_for(manager).post(
        f"/tasks/{task.pk}/reassign/", {"assignee": other_rep.pk}, follow=True
    )

    assert Task.objects.get(pk=task.pk).assignee == other_rep
    assert "“Demo” is now" in response.content.decode()


def test_manager_cannot_reassign_outside_the_team(manager, rep, outsider):
    far = make_user("far", None)
    task = task_for(rep)

    for person in (outsider, far):
        response = client_for(manager).post(f"/tasks/{task.pk}/reassign/", {"assignee": person.pk})
        assert response.status_code == 400
    assert Task.objects.get(pk=task.pk).assignee == rep


def test_rep_cannot_reassign_own_task(rep, other_rep):
    task = task_for(rep)

    response = client_for(rep).post(f"/tasks/{task.pk}/reassign/", {"assignee": other_rep.pk})

    assert response.status_code == 403
    assert Task.objects.get(pk=task.pk).assignee == rep


def test_task_actions_need_the_csrf_token(rep):
    task = task_for(rep)
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)

    assert client.post(f"/tasks/{task.pk}/complete/").status_code == 403
    assert Task.objects.get(pk=task.pk).done_at is None


def test_task_titles_and_lead_names_are_escaped(rep):
    lead = LeadFactory(owner=rep, first_name="<script>alert(1)</script>", last_name="")
    task_for(rep, title="<b>bold</b>", lead=lead)

    body = client_for(rep).get("/tasks/").content.decode()

    assert "<script>alert(1)</script>" not in body
    assert "<b>bold</b>" not in body
    assert "&lt;b&gt;bold&lt;/b&gt;" in body


@pytest.mark.parametrize("count", [1, 15])
def test_tasks_page_runs_a_fixed_number_of_queries(
    manager, rep, other_rep, django_assert_max_num_queries, count
):
    for n in range(count):
        task_for(rep if n % 2 else other_rep, hours=n - 5, lead=LeadFactory(owner=rep))
    client = client_for(manager)

    with django_assert_max_num_queries(10):
        assert client.get("/tasks/").status_code == 200

"""My day through HTTP: each person's hottest leads with the reason, hand-offs to accept,
tasks due, surging leads, a manager's team numbers; escaping, CSRF and query counts."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from leads.activities import activities_record
from leads.handoff_models import HandOff, HandOffStatus
from leads.models import Activity, Lead, Stage, Task
from leads.stages import stage_change_record
from scoring.models import LeadScore
from scoring.selectors import lead_reasons
from tests.factories import LeadFactory, active_model, fit_rule, page_rule

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def my_day(client: Client, **headers: str) -> str:
    response = client.get(reverse("home"), headers=headers)
    assert response.status_code == 200
    return response.content.decode()


def section(page: str, heading_id: str) -> str:
    """The HTML of one My day section, from its heading to the end of the section."""
    start = page.index(f'id="{heading_id}"')
    return page[start : page.index("</section>", start)].replace("\xa0", " ")


def handoff_for(lead: Lead, owner, *, hours_left: float = 20) -> HandOff:
    change = stage_change_record(lead=lead, from_stage="mql", to_stage="sql")
    return HandOff.objects.create(
        lead=lead,
        stage_change=change,
        stage=Stage.SQL,
        owner=owner,
        sla_due_at=timezone.now() + dt.timedelta(hours=hours_left),
    )


@pytest.fixture
def scored(db, rep, other_rep, django_capture_on_commit_callbacks) -> dict[str, Lead]:
    """Leads scored by a real model: a director who viewed pricing (rep's), a quieter one
    (rep's), one of other_rep's, one in the pool, and a customer of rep's."""
    model = active_model(decay_half_life_days=30, surge_points=30, surge_hours=24)
    fit_rule(model, 20, "seniority", "equals", "director")
    page_rule(model, 40, "/pricing")
    page_rule(model, 5, "/blog")
    leads = {
        "hot": LeadFactory(owner=rep, seniority="director", first_name="Hannah"),
        "quiet": LeadFactory(owner=rep, first_name="Quentin"),
        "theirs": LeadFactory(owner=other_rep, seniority="director", first_name="Theo"),
        "pool": LeadFactory(owner=None, seniority="director", first_name="Paula"),
        "customer": LeadFactory(owner=rep, stage=Stage.CUSTOMER, first_name="Cora"),
    }
    visits = {"hot": "/pricing", "quiet": "/blog", "theirs": "/pricing", "pool": "/pricing"}
    with django_capture_on_commit_callbacks(execute=True):
        for name, url in {**visits, "customer": "/pricing"}.items():
            activities_record(lead=leads[name], activities=[Activity(type="page_view", url=url)])
    for lead in leads.values():
        lead.refresh_from_db()
    return leads


# --- Who sees what ----------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(reverse("home"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_an_outsider_sees_an_empty_day(client, outsider, scored):
    client.force_login(outsider)

    page = my_day(client)

    for lead in scored.values():
        assert str(lead) not in page
    assert "No open leads yet." in page


def test_a_rep_sees_their_open_leads_hottest_first_with_the_reason(client, rep, scored):
    client.force_login(rep)

    hottest = section(my_day(client), "hottest-h")

    assert hottest.index("Hannah") < hottest.index("Quentin")
    for other in ("Theo", "Paula", "Cora"):
        assert other not in hottest
    assert "Why: +40 when a page view URL contains /pricing; +20 when seniority is Director" in (
        hottest
    )
    assert "Why: +5 when a page view URL contains /blog" in hottest


def test_admins_and_marketers_see_the_hottest_open_leads_of_everyone(client, marketer, scored):
    client.force_login(marketer)

    hottest = section(my_day(client), "hottest-h")

    for name in ("Hannah", "Quentin", "Theo", "Paula"):
        assert name in hottest
    assert "Cora" not in hottest


def test_the_reason_skips_reversed_points_and_decays_engagement(rep, scored):
    # Given the hot lead's pricing visit happened 90 days (three half-lives) ago
    lead = scored["hot"]
    later = timezone.now() + dt.timedelta(days=90)

    # When the reasons are read then
    reasons = lead_reasons(leads=[lead], now=later)

    # Then the fit rule, worth 20, outranks the visit, now worth 5
    assert reasons[lead.pk] == [
        "+20 when seniority is Director",
        "+40 when a page view URL contains /pricing",
    ]


def test_a_manager_sees_the_teams_leads_and_numbers(client, manager, rep, other_rep, scored):
    Task.objects.create(
        assignee=other_rep, title="Late", due_at=timezone.now() - dt.timedelta(days=1)
    )
    handoff_for(scored["theirs"], other_rep)
    client.force_login(manager)

    page = my_day(client)

    hottest = section(page, "hottest-h")
    team = section(page, "team-h")
    assert "Hannah" in hottest
    assert "Theo" in hottest
    assert "Paula" not in hottest
    row = team[team.index("rep2") :]
    row = row[: row.index("</tr>")]
    # open leads, hot, hand-offs waiting, overdue tasks
    assert [cell.split(">")[-1] for cell in row.split("</td>")[:-1]] == ["1", "0", "1", "1"]


def test_reps_do_not_see_the_team_numbers(client, rep, scored):
    client.force_login(rep)

    assert 'id="team-h"' not in my_day(client)


# --- Hand-offs ---------------------------------------------------------------------------


def test_new_hand_offs_show_their_sla_countdown_and_accept_in_place(client, rep, scored):
    handoff = handoff_for(scored["hot"], rep, hours_left=5)
    late = handoff_for(scored["quiet"], rep, hours_left=-2)
    handoff_for(scored["theirs"], scored["theirs"].owner)
    client.force_login(rep)

    handoffs = section(my_day(client), "handoffs-h")
    response = client.post(
        reverse("handoff-accept", args=[handoff.pk]),
        {"next": reverse("home")},
        headers={"HX-Request": "true"},
        follow=True,
    )

    assert "Hannah" in handoffs
    assert "Theo" not in handoffs
    assert "4 hours, 59 minutes left to accept" in handoffs
    assert "SLA passed 2 hours ago" in handoffs
    assert handoffs.index("Quentin") < handoffs.index("Hannah")  # the most urgent first
    assert response.redirect_chain == [(reverse("home"), 302)]
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="my-day"')
    assert f"Hand-off of {scored['hot']} accepted." in body
    assert HandOff.objects.get(pk=handoff.pk).status == HandOffStatus.ACCEPTED
    assert "Hannah" not in section(body, "handoffs-h")
    assert HandOff.objects.get(pk=late.pk).status == HandOffStatus.PENDING


def test_a_rep_cannot_accept_another_reps_hand_off_from_my_day(client, rep, other_rep, scored):
    handoff = handoff_for(scored["theirs"], other_rep)
    client.force_login(rep)

    response = client.post(reverse("handoff-accept", args=[handoff.pk]), {"next": "/"})

    assert response.status_code == 404
    assert HandOff.objects.get(pk=handoff.pk).status == HandOffStatus.PENDING


# --- Tasks -------------------------------------------------------------------------------


def test_tasks_overdue_and_due_today_are_listed_and_completed_in_place(
    client, rep, other_rep, scored
):
    now = timezone.now()
    overdue = Task.objects.create(
        assignee=rep, title="Overdue call", due_at=now - dt.timedelta(days=2), lead=scored["hot"]
    )
    today = Task.objects.create(assignee=rep, title="Today's email", due_at=now)
    Task.objects.create(assignee=rep, title="Next week", due_at=now + dt.timedelta(days=7))
    Task.objects.create(assignee=other_rep, title="Not mine", due_at=now)
    Task.objects.create(assignee=rep, title="Finished", due_at=now, done_at=now)
    client.force_login(rep)

    tasks = section(my_day(client), "tasks-h")
    response = client.post(reverse("my-day-task-done", args=[today.pk]), {"next": "/"})

    assert tasks.index("Overdue call") < tasks.index("Today&#x27;s email")
    for hidden in ("Next week", "Not mine", "Finished"):
        assert hidden not in tasks
    assert response.status_code == 302
    assert response["Location"] == "/"
    today.refresh_from_db()
    assert today.done_at is not None
    assert "Today&#x27;s email" not in section(my_day(client), "tasks-h")
    assert Task.objects.get(pk=overdue.pk).done_at is None


def test_completing_someone_elses_task_is_404_and_changes_nothing(client, rep, other_rep):
    task = Task.objects.create(assignee=other_rep, title="Theirs", due_at=timezone.now())
    client.force_login(rep)

    response = client.post(reverse("my-day-task-done", args=[task.pk]), {"next": "/"})

    assert response.status_code == 404
    assert Task.objects.get(pk=task.pk).done_at is None


def test_next_never_leaves_the_site(client, rep):
    task = Task.objects.create(assignee=rep, title="Mine", due_at=timezone.now())
    client.force_login(rep)

    response = client.post(
        reverse("my-day-task-done", args=[task.pk]), {"next": "https://evil.example/"}
    )

    assert response["Location"] == reverse("home")


# --- Surging leads --------------------------------------------------------------------


def test_surging_leads_visible_to_me_show_the_points_gained(client, rep, scored):
    # Given scoring marked the pricing visitors as surging (40 points within 24 hours)
    assert LeadScore.objects.filter(surged_at__isnull=False).count() == 4
    client.force_login(rep)

    surging = section(my_day(client), "surging-h")

    assert "Hannah" in surging
    assert "Paula" in surging
    assert "+60 points in 24 h" in surging  # the fit points were scored in the window too
    assert "Theo" not in surging  # another rep's
    assert "Cora" not in surging  # a customer
    assert "Quentin" not in surging  # 5 points are no surge


def test_a_surge_older_than_the_window_is_not_shown(client, rep, scored):
    LeadScore.objects.update(surged_at=timezone.now() - dt.timedelta(hours=25))
    client.force_login(rep)

    assert "No lead surged recently." in my_day(client)


# --- Escaping, CSRF, queries ------------------------------------------------------------


def test_names_and_titles_render_as_text_on_my_day(client, rep):
    lead = LeadFactory(owner=rep, first_name=SCRIPT)
    Task.objects.create(assignee=rep, title=SCRIPT, due_at=timezone.now(), lead=lead)
    handoff_for(lead, rep)
    client.force_login(rep)

    page = my_day(client)

    assert SCRIPT not in page
    assert page.count(ESCAPED) >= 4


def test_my_day_posts_need_the_csrf_token(rep, scored):
    handoff = handoff_for(scored["hot"], rep)
    task = Task.objects.create(assignee=rep, title="Call", due_at=timezone.now())
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)

    page = client.get(reverse("home")).content.decode()
    accept = client.post(reverse("handoff-accept", args=[handoff.pk]), {"next": "/"})
    done = client.post(reverse("my-day-task-done", args=[task.pk]), {"next": "/"})

    assert page.count('name="csrfmiddlewaretoken"') >= page.count('method="post"') >= 2
    assert (accept.status_code, done.status_code) == (403, 403)
    assert HandOff.objects.get(pk=handoff.pk).status == HandOffStatus.PENDING
    assert Task.objects.get(pk=task.pk).done_at is None


def count_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        my_day(client)
    return len(queries)


def busy_day(rep, leads: int, django_capture_on_commit_callbacks) -> None:
    now = timezone.now()
    for i in range(leads):
        lead = LeadFactory(owner=rep, seniority="director")
        with django_capture_on_commit_callbacks(execute=True):
            activities_record(lead=lead, activities=[Activity(type="page_view", url="/pricing")])
        Task.objects.create(assignee=rep, title=f"Call {i}", due_at=now, lead=lead)
        handoff_for(lead, rep)


@pytest.mark.parametrize("persona", ["rep", "manager"])
def test_my_day_runs_the_same_queries_for_2_or_12_leads(
    request, persona, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    rep = request.getfixturevalue("rep")
    user = request.getfixturevalue(persona)
    model = active_model(surge_points=30, surge_hours=24)
    fit_rule(model, 20, "seniority", "equals", "director")
    page_rule(model, 40, "/pricing")
    busy_day(rep, 2, django_capture_on_commit_callbacks)
    client = Client()
    client.force_login(user)
    count_queries(client)
    baseline = count_queries(client)

    busy_day(rep, 10, django_capture_on_commit_callbacks)

    assert baseline <= 20
    with django_assert_max_num_queries(baseline):
        page = my_day(client)
    assert section(page, "hottest-h").count("Why: +40 when a page view URL") == 10


def test_my_day_counts_every_hand_off_waiting_and_shows_all_on_request(client, rep):
    from leads.handoff_models import HandOff
    from leads.stages import stage_change_record
    from tests.factories import LeadFactory

    for _ in range(23):
        lead = LeadFactory(owner=rep, stage="sql")
        change = stage_change_record(lead=lead, from_stage="mql", to_stage="sql")
        HandOff.objects.create(lead=lead, stage_change=change, stage="sql", owner=rep)
    client.force_login(rep)

    page = client.get("/").content.decode()
    everything = client.get("/?handoffs=all").content.decode()

    assert 'New hand-offs <span class="count">23</span>' in page
    assert page.count('class="handoff-item') == 20
    assert "See all 23 hand-offs" in page
    assert everything.count('class="handoff-item') == 23
    assert "See all" not in everything


def test_a_hand_off_is_rejected_from_my_day_with_a_reason_and_its_notice_is_read(client, rep):
    from leads.handoff_models import HandOff, Notification
    from leads.stages import stage_change_record
    from tests.factories import LeadFactory

    lead = LeadFactory(owner=rep, stage="sql")
    change = stage_change_record(lead=lead, from_stage="mql", to_stage="sql")
    handoff = HandOff.objects.create(lead=lead, stage_change=change, stage="sql", owner=rep)
    Notification.objects.create(user=rep, kind="handoff", title="New lead", lead=lead)
    client.force_login(rep)

    refused = client.post(
        f"/handoffs/{handoff.pk}/reject/", {"next": "/", "reject-reason": ""}, follow=True
    )
    assert "Say why the lead is not ready for sales." in refused.content.decode()
    assert refused.redirect_chain[-1][0] == "/"
    response = client.post(
        f"/handoffs/{handoff.pk}/reject/",
        {"next": "/", "reject-choice": "territory", "reject-reason": "Austria is Kim's"},
    )

    assert response.status_code == 302
    handoff.refresh_from_db()
    assert handoff.status == "rejected"
    assert handoff.reject_reason == "Not my territory or product: Austria is Kim's"
    assert not Notification.objects.filter(user=rep).unread().exists()


def test_accepting_a_hand_off_or_finishing_a_task_answers_its_notifications(client, rep):
    import datetime as dt

    from django.utils import timezone

    from leads.handoff_models import HandOff, Notification
    from leads.models import Task
    from leads.stages import stage_change_record
    from tests.factories import LeadFactory

    lead = LeadFactory(owner=rep, stage="sql")
    change = stage_change_record(lead=lead, from_stage="mql", to_stage="sql")
    handoff = HandOff.objects.create(lead=lead, stage_change=change, stage="sql", owner=rep)
    task = Task.objects.create(
        lead=lead, assignee=rep, title="Call back", due_at=timezone.now() + dt.timedelta(hours=1)
    )
    for kind in ("handoff", "escalation", "task", "surge"):
        Notification.objects.create(user=rep, kind=kind, title=kind, lead=lead)
    client.force_login(rep)

    client.post(f"/handoffs/{handoff.pk}/accept/", {"next": "/"})
    unread = set(Notification.objects.filter(user=rep).unread().values_list("kind", flat=True))
    assert unread == {"task", "surge"}
    client.post(f"/my-day/tasks/{task.pk}/done/", {"next": "/"})
    unread = set(Notification.objects.filter(user=rep).unread().values_list("kind", flat=True))
    assert unread == {"surge"}

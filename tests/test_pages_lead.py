"""The lead page through HTTP: what each person sees and may do, bad input, escaping, CSRF,
the timeline's pages and the page's query count."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from leads.activities import activities_record
from leads.deals import deal_save
from leads.handoff_models import HandOff, HandOffStatus, LeadRating
from leads.models import Activity, Lead, Note, Stage, Task
from leads.stages import stage_change_record
from tests.factories import LeadFactory, active_model, fit_rule, page_rule
from workspace.views.lead import score_chart

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def people(rep, other_rep, manager, marketer, admin_user, outsider) -> dict:
    return {
        "rep": rep,
        "other_rep": other_rep,
        "manager": manager,
        "marketer": marketer,
        "admin": admin_user,
        "outsider": outsider,
        "anonymous": None,
    }


@pytest.fixture
def lead(rep) -> Lead:
    """A lead of rep's, with some activity."""
    lead = LeadFactory(owner=rep, stage=Stage.MQL)
    now = timezone.now()
    activities_record(
        lead=lead,
        activities=[
            Activity(type="page_view", url="/pricing", occurred_at=now - dt.timedelta(hours=h))
            for h in range(3)
        ],
    )
    return lead


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def stored(lead: Lead) -> dict:
    """What an action may change on a lead, to prove a refused one changed nothing."""
    lead.refresh_from_db()
    return {
        "activities": lead.activities.count(),
        "notes": lead.notes.count(),
        "tasks": lead.tasks.count(),
        "done": lead.tasks.filter(done_at__isnull=False).count(),
        "stage": lead.stage,
        "owner": lead.owner_id,
        "changes": lead.stage_changes.count(),
        "ratings": LeadRating.objects.filter(lead=lead).count(),
        "handoffs": list(lead.handoffs.values_list("status", flat=True)),
    }


def tomorrow() -> str:
    return (timezone.localtime() + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")


def action_posts(lead: Lead, assignee) -> dict[str, tuple[str, dict]]:
    """Every action on the lead page: its URL and a valid post."""
    return {
        "touch": (
            reverse("lead-log-touch", args=[lead.pk]),
            {"touch-type": "call", "touch-notes": "Talked about pricing"},
        ),
        "note": (reverse("lead-add-note", args=[lead.pk]), {"note-body": "Prefers mornings"}),
        "task": (
            reverse("lead-add-task", args=[lead.pk]),
            {
                "task-title": "Send the proposal",
                "task-kind": "email",
                "task-due_at": tomorrow(),
                "task-assignee": assignee.pk,
            },
        ),
        "stage": (reverse("lead-change-stage", args=[lead.pk]), {"stage-stage": "sql"}),
        "rating": (reverse("lead-rate", args=[lead.pk]), {"rating-rating": "good"}),
    }


# --- Seeing the page ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("rep", 200),
        ("other_rep", 404),
        ("manager", 200),
        ("marketer", 200),
        ("admin", 200),
        ("outsider", 404),
        ("anonymous", 302),
    ],
)
def test_who_sees_a_reps_lead_page(people, lead, persona, status):
    # Given a lead owned by rep
    # When each persona opens its page
    response = client_for(people[persona]).get(lead.get_absolute_url())

    # Then only the people who may see it get it; anonymous visitors go to log in
    assert response.status_code == status
    if status == 302:
        assert response["Location"].startswith(reverse("login"))
    if status == 200:
        assert str(lead) in response.content.decode()


def test_lead_page_shows_who_they_are_and_the_records(client, rep, lead):
    from leads.models import CustomFieldDefinition, Deal

    CustomFieldDefinition.objects.create(key="fleet_size", label="Fleet size", field_type="integer")
    lead.budget = "10k_50k"
    lead.custom_fields = {"fleet_size": 42}
    lead.save()
    deal_save(deal=Deal(lead=lead, name="Fleet pilot", amount=12000))
    Note.objects.create(lead=lead, author=rep, body="Met at the fair")
    Task.objects.create(lead=lead, assignee=rep, title="Call back", due_at=timezone.now())
    client.force_login(rep)

    page = client.get(lead.get_absolute_url()).content.decode()

    for text in (
        "10k to 50k",
        "Fleet size",
        "42",
        "Fleet pilot",
        "Met at the fair",
        "Call back",
        lead.company.name,
        "120 employees",
        "Software",
    ):
        assert text in page


@pytest.mark.parametrize("persona", ["rep", "manager", "admin"])
def test_people_who_may_act_get_the_action_forms(people, lead, persona):
    page = client_for(people[persona]).get(lead.get_absolute_url()).content.decode()

    for name in ("lead-log-touch", "lead-add-note", "lead-add-task", "lead-change-stage"):
        assert f'action="{reverse(name, args=[lead.pk])}"' in page


def test_a_marketer_reads_the_lead_without_action_forms(client, marketer, lead):
    client.force_login(marketer)

    page = client.get(lead.get_absolute_url()).content.decode()

    assert reverse("lead-add-note", args=[lead.pk]) not in page
    assert "You can read this lead" in page


# --- Acting: the permission matrix ---------------------------------------------------


@pytest.mark.parametrize("action", ["touch", "note", "task", "stage", "rating"])
@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("rep", 302),
        ("other_rep", 404),
        ("manager", 302),
        ("marketer", 403),
        ("admin", 302),
        ("outsider", 404),
        ("anonymous", 302),
    ],
)
def test_who_may_act_on_a_reps_lead(people, rep, lead, action, persona, status):
    # Given rep's lead and a valid post of the action, as each persona
    user = people[persona]
    url, data = action_posts(lead, user or rep)[action]
    before = stored(lead)

    # When they post it
    response = client_for(user).post(url, data)

    # Then the owner, the manager and admins change the lead; nobody else changes anything
    assert response.status_code == status
    if persona in ("rep", "manager", "admin"):
        assert response["Location"].startswith(lead.get_absolute_url())
        assert stored(lead) != before
    else:
        assert stored(lead) == before
    if persona == "anonymous":
        assert response["Location"].startswith(reverse("login"))


def test_logging_a_call_records_a_touch_by_the_rep(client, rep, lead):
    client.force_login(rep)

    response = client.post(
        reverse("lead-log-touch", args=[lead.pk]),
        {"touch-type": "call", "touch-notes": "Budget approved"},
        follow=True,
    )

    call = lead.activities.get(type="call")
    assert call.created_by == rep
    assert call.properties == {"notes": "Budget approved"}
    page = response.content.decode()
    assert "Call logged." in page
    assert "Budget approved" in page


def test_an_htmx_action_answers_with_the_page_body_to_swap_in(client, rep, lead):
    client.force_login(rep)

    response = client.post(
        reverse("lead-add-note", args=[lead.pk]),
        {"note-body": "Call after the board meeting"},
        headers={"HX-Request": "true"},
        follow=True,
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<div id="lead-page"')
    assert "<html" not in page
    assert "Note added." in page
    assert "Call after the board meeting" in page
    assert "HX-Request" in response["Vary"]


def test_a_manager_creates_a_task_for_a_rep_of_the_team(client, manager, rep, lead):
    client.force_login(manager)
    url, data = action_posts(lead, rep)["task"]

    client.post(url, data)

    task = lead.tasks.get()
    assert (task.assignee, task.title, task.kind) == (rep, "Send the proposal", "email")


def test_a_rep_cannot_give_a_task_to_another_rep(client, rep, other_rep, lead):
    client.force_login(rep)
    url, data = action_posts(lead, other_rep)["task"]

    response = client.post(url, data)

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not lead.tasks.exists()


def test_changing_the_stage_offers_only_allowed_moves_and_records_them(client, rep, lead):
    client.force_login(rep)
    page = client.get(lead.get_absolute_url()).content.decode()
    form = page[page.index('id="id_stage-stage"') :]
    options = re.findall(r'<option value="(\w+)"', form[: form.index("</select>")])

    response = client.post(reverse("lead-change-stage", args=[lead.pk]), {"stage-stage": "sql"})

    assert sorted(options) == ["disqualified", "opportunity", "recycled", "sql"]
    assert response.status_code == 302
    change = lead.stage_changes.get()
    assert (change.from_stage, change.to_stage, change.by) == ("mql", "sql", rep)


# --- Taking an unassigned lead -----------------------------------------------------------


def test_a_rep_acts_on_an_unassigned_lead_only_after_taking_it(client, rep, other_rep):
    pool = LeadFactory(owner=None)
    client.force_login(rep)
    page = client.get(pool.get_absolute_url()).content.decode()
    refused = client.post(reverse("lead-add-note", args=[pool.pk]), {"note-body": "Mine?"})

    taken = client.post(reverse("lead-take", args=[pool.pk]))
    late = client_for(other_rep).post(reverse("lead-take", args=[pool.pk]))

    assert "Take this lead" in page
    assert refused.status_code == 403
    assert not pool.notes.exists()
    assert taken.status_code == 302
    assert late.status_code == 404  # no longer visible to other_rep
    pool.refresh_from_db()
    assert pool.owner == rep
    assert "Take this lead" not in client.get(pool.get_absolute_url()).content.decode()


def test_a_marketer_cannot_take_a_lead(client, marketer):
    pool = LeadFactory(owner=None)
    client.force_login(marketer)

    response = client.post(reverse("lead-take", args=[pool.pk]))

    assert response.status_code == 403
    pool.refresh_from_db()
    assert pool.owner is None


# --- Bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "data", "message"),
    [
        ("stage", {"stage-stage": "disqualified", "stage-reason": " "}, "Say why the lead is"),
        ("stage", {"stage-stage": "customer"}, "Select a valid choice"),
        ("stage", {"stage-stage": "bogus"}, "Select a valid choice"),
        (
            "task",
            {"task-title": "Call", "task-kind": "call", "task-due_at": "2024-13-45T10:00"},
            "Enter a valid date/time",
        ),
        ("task", {"task-title": "   ", "task-kind": "call", "task-due_at": "x"}, "required"),
        ("touch", {"touch-type": "call", "touch-occurred_at": "2999-01-01T10:00"}, "future"),
        ("touch", {"touch-type": "page_view"}, "Select a valid choice"),
        ("touch", {"touch-type": "call", "touch-occurred_at": "yesterday"}, "valid date/time"),
        ("note", {"note-body": "  "}, "Write the note first."),
        ("rating", {"rating-rating": "not_fit", "rating-reason": ""}, "Say why the lead is not"),
        ("rating", {"rating-rating": "great"}, "Select a valid choice"),
    ],
)
def test_bad_input_shows_the_error_beside_the_field_and_stores_nothing(
    client, rep, lead, action, data, message
):
    client.force_login(rep)
    url = action_posts(lead, rep)[action][0]
    if action == "task":
        data = {**data, "task-assignee": rep.pk}
    before = stored(lead)

    response = client.post(url, data)

    page = response.content.decode()
    assert response.status_code == 400
    assert message in page
    assert 'class="error field-error"' in page
    assert stored(lead) == before


def test_a_stage_moved_meanwhile_is_refused_with_the_lifecycles_message(client, rep, lead):
    # Given the page was read while the lead was MQL, and someone moved it to customer since
    Lead.objects.filter(pk=lead.pk).update(stage=Stage.OPPORTUNITY)
    client.force_login(rep)

    # When the rep posts a move the new stage does not allow
    response = client.post(reverse("lead-change-stage", args=[lead.pk]), {"stage-stage": "sql"})

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not lead.stage_changes.exists()


# --- Hand-offs -----------------------------------------------------------------------


def make_handoff(lead: Lead, owner, **fields) -> HandOff:
    change = stage_change_record(lead=lead, from_stage="mql", to_stage="sql")
    Lead.objects.filter(pk=lead.pk).update(stage=Stage.SQL)
    defaults = {"sla_due_at": timezone.now() + dt.timedelta(hours=20), "assigned_by": "territory"}
    return HandOff.objects.create(
        lead=lead, stage_change=change, stage=Stage.SQL, owner=owner, **{**defaults, **fields}
    )


def test_the_owner_accepts_a_hand_off_on_the_lead_page(client, rep, lead):
    handoff = make_handoff(lead, rep)
    client.force_login(rep)
    page = client.get(lead.get_absolute_url()).content.decode()

    response = client.post(reverse("handoff-accept", args=[handoff.pk]))

    assert "Accept hand-off" in page
    assert "left, due" in page
    assert response.status_code == 302
    handoff.refresh_from_db()
    assert handoff.status == HandOffStatus.ACCEPTED
    assert handoff.closed_by == rep


def test_rejecting_a_hand_off_needs_a_reason_and_returns_the_lead(client, rep, lead):
    handoff = make_handoff(lead, rep)
    client.force_login(rep)
    url = reverse("handoff-reject", args=[handoff.pk])

    empty = client.post(url, {"reject-reason": "  "})
    unchanged = HandOff.objects.get(pk=handoff.pk).status
    rejected = client.post(url, {"reject-reason": "Student project, no budget"})

    assert empty.status_code == 400
    assert "Say why the lead is not ready for sales." in empty.content.decode()
    assert unchanged == HandOffStatus.PENDING
    assert rejected.status_code == 302
    handoff.refresh_from_db()
    lead.refresh_from_db()
    assert handoff.status == HandOffStatus.REJECTED
    assert handoff.reject_reason == "Student project, no budget"
    assert (lead.stage, lead.owner) == (Stage.RECYCLED, None)


@pytest.mark.parametrize(
    ("persona", "status"),
    [("other_rep", 404), ("outsider", 404), ("marketer", 403), ("anonymous", 302)],
)
def test_others_cannot_accept_or_reject_a_reps_hand_off(people, rep, lead, persona, status):
    handoff = make_handoff(lead, rep)
    client = client_for(people[persona])

    accepted = client.post(reverse("handoff-accept", args=[handoff.pk]))
    rejected = client.post(reverse("handoff-reject", args=[handoff.pk]), {"reject-reason": "No"})

    assert (accepted.status_code, rejected.status_code) == (status, status)
    assert HandOff.objects.get(pk=handoff.pk).status == HandOffStatus.PENDING
    assert Lead.objects.get(pk=lead.pk).owner == rep


def test_accepting_twice_says_it_was_accepted_already(client, rep, lead):
    handoff = make_handoff(lead, rep)
    client.force_login(rep)
    client.post(reverse("handoff-accept", args=[handoff.pk]))

    response = client.post(reverse("handoff-accept", args=[handoff.pk]), follow=True)

    assert "This hand-off was accepted already." in response.content.decode()


# --- Rating, tasks ------------------------------------------------------------------------


def test_rating_a_lead_keeps_one_verdict_per_person(client, rep, lead):
    client.force_login(rep)
    url = reverse("lead-rate", args=[lead.pk])

    client.post(url, {"rating-rating": "good"})
    client.post(url, {"rating-rating": "not_fit", "rating-reason": "Consultant, no budget"})

    rating = LeadRating.objects.get(lead=lead)
    assert (rating.by, rating.rating, rating.reason) == (rep, "not_fit", "Consultant, no budget")
    assert "Consultant, no budget" in client.get(lead.get_absolute_url()).content.decode()


def test_completing_a_task_on_the_lead_page(client, rep, other_rep, manager, lead):
    task = Task.objects.create(lead=lead, assignee=rep, title="Call", due_at=timezone.now())
    url = reverse("my-day-task-done", args=[task.pk])

    refused = client_for(other_rep).post(url)
    done = client_for(manager).post(url)

    assert refused.status_code == 404
    assert done.status_code == 302
    assert done["Location"] == lead.get_absolute_url() + "#tasks"
    task.refresh_from_db()
    assert task.done_at is not None


# --- Escaping and CSRF ------------------------------------------------------------------


def test_user_text_renders_as_text(client, rep):
    lead = LeadFactory(owner=rep, first_name=SCRIPT, job_title=SCRIPT)
    Note.objects.create(lead=lead, author=rep, body=SCRIPT)
    activities_record(
        lead=lead,
        activities=[
            Activity(type="page_view", url=f'javascript:alert(1)//"{SCRIPT}'),
            Activity(type="call", properties={"notes": SCRIPT}, created_by=rep),
        ],
    )
    Task.objects.create(lead=lead, assignee=rep, title=SCRIPT, due_at=timezone.now())
    client.force_login(rep)

    page = client.get(lead.get_absolute_url()).content.decode()

    assert SCRIPT not in page
    assert page.count(ESCAPED) >= 5
    assert 'href="javascript:' not in page


@pytest.mark.parametrize("action", ["touch", "note", "task", "stage", "rating", "take"])
def test_posts_without_a_csrf_token_are_refused(rep, lead, action):
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)
    posts = action_posts(lead, rep)
    posts["take"] = (reverse("lead-take", args=[lead.pk]), {})
    url, data = posts[action]
    before = stored(lead)

    response = client.post(url, data)

    assert response.status_code == 403
    assert stored(lead) == before


def test_hand_off_and_task_posts_without_a_csrf_token_are_refused(rep, lead):
    handoff = make_handoff(lead, rep)
    task = Task.objects.create(lead=lead, assignee=rep, title="Call", due_at=timezone.now())
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)

    for url in (
        reverse("handoff-accept", args=[handoff.pk]),
        reverse("handoff-reject", args=[handoff.pk]),
        reverse("my-day-task-done", args=[task.pk]),
    ):
        assert client.post(url, {"reject-reason": "x"}).status_code == 403
    assert HandOff.objects.get(pk=handoff.pk).status == HandOffStatus.PENDING
    assert Task.objects.get(pk=task.pk).done_at is None


def test_every_form_on_the_page_carries_a_csrf_token(client, rep, lead):
    make_handoff(lead, rep)
    client.force_login(rep)

    page = client.get(lead.get_absolute_url()).content.decode()

    posts = page.count('method="post"')
    assert posts >= 7
    assert page.count('name="csrfmiddlewaretoken"') >= posts


# --- The timeline -------------------------------------------------------------------------


def add_activities(lead: Lead, count: int, **fields) -> None:
    now = timezone.now()
    activities_record(
        lead=lead,
        activities=[
            Activity(
                **{"type": "page_view", "url": f"/page/{i}", **fields},
                occurred_at=now - dt.timedelta(minutes=i + 10),
            )
            for i in range(count)
        ],
    )


def timeline_urls(page: str) -> list[str]:
    return re.findall(r'<div class="event-url">(/page/\d+)</div>', page)


def test_the_timeline_pages_through_every_activity_without_javascript(client, rep):
    lead = LeadFactory(owner=rep)
    add_activities(lead, 45)
    client.force_login(rep)

    seen, url = [], lead.get_absolute_url()
    for _ in range(5):
        page = client.get(url).content.decode()
        seen += timeline_urls(page)
        more = re.search(r'<li class="more">\s*<a href="([^"]+)"', page)
        if not more:
            break
        url = more.group(1).replace("&amp;", "&")

    assert seen == [f"/page/{i}" for i in range(45)]


def test_load_more_with_htmx_answers_the_next_rows_only(client, rep):
    lead = LeadFactory(owner=rep)
    add_activities(lead, 25)
    client.force_login(rep)
    page = client.get(lead.get_absolute_url()).content.decode()
    more = re.search(r'hx-get="([^"]+)"\s+hx-target="closest li"', page).group(1)

    response = client.get(more.replace("&amp;", "&"), headers={"HX-Request": "true"})

    rows = response.content.decode()
    assert "<html" not in rows
    assert timeline_urls(rows) == [f"/page/{i}" for i in range(20, 25)]
    assert 'class="more"' not in rows


def test_the_timeline_filters_by_type(client, rep):
    lead = LeadFactory(owner=rep)
    add_activities(lead, 3)
    add_activities(lead, 2, type="call", created_by=rep)
    client.force_login(rep)

    page = client.get(lead.get_absolute_url(), {"type": "call"}).content.decode()
    fragment = client.get(
        reverse("lead-activity", args=[lead.pk]), {"type": "call"}, headers={"HX-Request": "true"}
    ).content.decode()
    bad = client.get(lead.get_absolute_url(), {"type": "nonsense"})

    for html in (page, fragment):
        timeline = html[html.index('class="event') :]
        assert timeline.count('class="event event-call"') == 2
        assert "event-page_view" not in timeline
    assert bad.status_code == 400
    assert "Select a valid choice" in bad.content.decode()


def test_the_timeline_url_without_htmx_opens_the_lead_page_there(client, rep, lead):
    client.force_login(rep)

    response = client.get(reverse("lead-activity", args=[lead.pk]), {"type": "call"})

    assert response.status_code == 302
    assert response["Location"] == f"{lead.get_absolute_url()}?type=call#activity"


def test_a_bad_timeline_cursor_is_a_clear_error(client, rep, lead):
    client.force_login(rep)

    response = client.get(lead.get_absolute_url(), {"before": "not-a-cursor"})

    assert response.status_code == 400
    assert "This page of the timeline does not exist." in response.content.decode()


def test_the_timeline_of_another_reps_lead_is_404(client, other_rep, lead):
    client.force_login(other_rep)

    response = client.get(reverse("lead-activity", args=[lead.pk]), headers={"HX-Request": "1"})

    assert response.status_code == 404


# --- Query counts -------------------------------------------------------------------------


def count_queries(client: Client, url: str, **headers: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, headers=headers).status_code == 200
    return len(queries)


def busy_lead(rep, activities: int) -> Lead:
    lead = LeadFactory(owner=rep)
    for i in range(3):
        Task.objects.create(lead=lead, assignee=rep, title=f"T{i}", due_at=timezone.now())
        Note.objects.create(lead=lead, author=rep, body=f"N{i}")
    add_activities(lead, activities)
    add_activities(lead, 2, type="call", created_by=rep)
    return lead


def test_the_lead_page_runs_the_same_queries_for_5_or_50_activities(
    client, rep, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    model = active_model(decay_half_life_days=30)
    page_rule(model, 5, "/page")
    fit_rule(model, 10, "job_title", "contains", "Operations")
    with django_capture_on_commit_callbacks(execute=True):
        few, many = busy_lead(rep, 5), busy_lead(rep, 50)
    make_handoff(many, rep)
    make_handoff(few, rep)
    client.force_login(rep)
    count_queries(client, few.get_absolute_url())  # session and caches warmed up

    baseline = count_queries(client, few.get_absolute_url())

    assert baseline <= 40
    with django_assert_max_num_queries(baseline):
        client.get(many.get_absolute_url())
    htmx = count_queries(client, reverse("lead-activity", args=[many.pk]), HX_Request="true")
    assert htmx < baseline


# --- The chart ----------------------------------------------------------------------------


def test_the_score_chart_is_an_inline_svg_with_a_table(
    client, rep, django_capture_on_commit_callbacks
):
    model = active_model(decay_half_life_days=30)
    page_rule(model, 40, "/pricing")
    lead = LeadFactory(owner=rep)
    with django_capture_on_commit_callbacks(execute=True):
        activities_record(lead=lead, activities=[Activity(type="page_view", url="/pricing")])
    lead.refresh_from_db()
    client.force_login(rep)

    page = client.get(lead.get_absolute_url()).content.decode()

    assert '<svg viewBox="0 0 600 160" role="img"' in page
    assert "Score over time in Default" in page
    assert "Score history as a table" in page
    assert f"<td>{lead.score}</td>" in page
    assert "<script" not in page.split('id="lead-page"')[1]


def test_score_chart_geometry():
    start = timezone.now() - dt.timedelta(days=2)
    history = [
        {"at": (start + dt.timedelta(days=i)).isoformat(), "score": s}
        for i, s in enumerate([0, 40, 100])
    ]
    model = {"id": 7, "name": "Default", "hot_from": 80, "warm_from": 30}

    chart = score_chart(history, model=model)

    drawing = chart["drawing"]
    (line,) = drawing.series
    points = [tuple(map(float, p.split(","))) for p in line.points.split()]
    assert [x for x, _ in points] == [24.0, 300.0, 576.0]
    assert [y for _, y in points] == [136.0, 91.2, 24.0]  # 0 at the bottom, 100 at the top
    hot, warm = drawing.guides
    assert hot.y == pytest.approx(136 - 112 * 0.8, abs=0.1)
    assert (hot.label, warm.label) == ("hot 80", "warm 30")
    assert "highest 100, lowest 0" in drawing.desc
    assert drawing.title_id == "chart-7-title"
    first = timezone.localtime(start)
    assert chart["rows"][0] == (first.isoformat(), first.strftime("%-d %b %Y, %H:%M"), 0)
    assert [score for _, _, score in chart["rows"]] == [0, 40, 100]
    assert score_chart([], model=model) is None

"""The leads list's chosen columns and their export, select all across pages, the bulk
bar per action, and the name sort by the displayed name."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re

import pytest
from django.test import Client
from django.utils import timezone

from crm.models import Role, Team
from leads.models import ActivityType, Lead, Task
from tests.conftest import make_user
from tests.factories import ActivityFactory, LeadFactory
from workspace import bulk
from workspace.keyset import cursor_decode, leads_page

pytestmark = pytest.mark.django_db

ROW = re.compile(r'<th scope="row" data-label="Name"><a href="/leads/(\d+)/">')
HEADING = re.compile(r'<th scope="col"(?: aria-sort="[a-z]+")?>(?:<a [^>]+>)?([^<]+)<')


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def ids_in(response) -> list[int]:
    return [int(pk) for pk in ROW.findall(response.content.decode())]


def headings(response) -> list[str]:
    return HEADING.findall(response.content.decode())


def csv_rows(response) -> list[list[str]]:
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    body = b"".join(response.streaming_content)
    assert body.startswith(codecs.BOM_UTF8)
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


# --- Columns ---------------------------------------------------------------------------------


def test_default_columns_without_cols(rep):
    LeadFactory(owner=rep)

    shown = headings(client_for(rep).get("/leads/"))

    assert shown == [
        "Name",
        "Company",
        "Owner",
        "Stage",
        "Stage changed",
        "Last activity",
        "Grade",
        "Score",
    ]


def test_chosen_columns_are_shown_in_the_tables_order_and_unknown_ones_ignored(rep):
    LeadFactory(owner=rep)

    response = client_for(rep).get("/leads/?cols=source&cols=phone&cols=bogus&cols=owner")

    assert response.status_code == 200
    assert headings(response) == ["Name", "Owner", "Phone", "Source", "Score"]


def test_an_empty_choice_shows_only_name_and_score(rep):
    LeadFactory(owner=rep)

    assert headings(client_for(rep).get("/leads/?cols=")) == ["Name", "Score"]


def test_next_task_is_the_earliest_open_one_and_last_touch_the_latest_sales_touch(rep):
    now = timezone.now()
    lead = LeadFactory(owner=rep, phone="+49 30 1234")
    Task.objects.create(
        lead=lead,
        assignee=rep,
        title="Done long ago",
        due_at=now - dt.timedelta(days=9),
        done_at=now,
    )
    Task.objects.create(
        lead=lead, assignee=rep, title="Call back", due_at=now + dt.timedelta(days=1)
    )
    Task.objects.create(lead=lead, assignee=rep, title="Later", due_at=now + dt.timedelta(days=5))
    touched = now - dt.timedelta(days=2)
    ActivityFactory(lead=lead, type=ActivityType.CALL, occurred_at=now - dt.timedelta(days=4))
    ActivityFactory(lead=lead, type=ActivityType.MEETING, occurred_at=touched)
    ActivityFactory(lead=lead, type=ActivityType.PAGE_VIEW, occurred_at=now)  # not a touch
    bare = LeadFactory(owner=rep)

    body = client_for(rep).get("/leads/?cols=phone&cols=next_task&cols=last_touch").content.decode()

    assert '<a href="tel:+49 30 1234">+49 30 1234</a>' in body
    assert "Call back<span" in body
    assert "Done long ago" not in body
    assert "Later" not in body
    local = timezone.localtime(touched)
    assert f'<time datetime="{local.isoformat()}">{local.day} {local:%b %Y}</time>' in body
    assert bare.pk in ids_in(client_for(rep).get("/leads/?cols=next_task"))


@pytest.mark.parametrize("rows", [3, 30])
def test_columns_add_no_query_per_row(rep, manager, django_assert_max_num_queries, rows):
    now = timezone.now()
    for n in range(rows):
        lead = LeadFactory(owner=rep)
        Task.objects.create(lead=lead, assignee=rep, title=f"T{n}", due_at=now)
        ActivityFactory(lead=lead, type=ActivityType.CALL)
    client = client_for(manager)
    every = "&".join(
        f"cols={key}"
        for key in (
            "phone",
            "source",
            "next_task",
            "last_touch",
            "created",
            "company",
            "owner",
            "stage",
            "grade",
        )
    )
    client.get("/leads/")

    with django_assert_max_num_queries(14):
        response = client.get(f"/leads/?{every}")

    assert response.status_code == 200
    assert len(ids_in(response)) == min(rows, 25)


# --- Export of the chosen columns ------------------------------------------------------------


def test_export_links_carry_the_chosen_columns(manager):
    body = (
        client_for(manager)
        .get("/leads/?band=hot&cols=phone&cols=next_task&view=3")
        .content.decode()
    )

    assert 'href="/leads/export.csv?band=hot&amp;cols=phone&amp;cols=next_task"' in body
    assert 'href="/leads/export.xlsx?band=hot&amp;cols=phone&amp;cols=next_task"' in body
    assert 'href="/leads/export.csv?band=hot" download>Every field (CSV)</a>' in body


def test_export_writes_exactly_the_chosen_columns(manager, rep):
    now = timezone.now()
    lead = LeadFactory(
        owner=rep, first_name="Ana", last_name="Ávila", email="ana@north.example", phone="=1+2"
    )
    Task.objects.create(lead=lead, assignee=rep, title="Send offer", due_at=now)
    ActivityFactory(lead=lead, type=ActivityType.EMAIL_REPLY, occurred_at=now)
    LeadFactory(owner=None, email="pia@pool.example", first_name="Pia", last_name="Pool")

    rows = csv_rows(
        client_for(manager).get(
            "/leads/export.csv?sort=name&cols=phone&cols=next_task&cols=last_touch&cols=nope"
        )
    )

    assert rows[0] == [
        "id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "next_task",
        "next_task_due_at",
        "last_touch_at",
        "score",
        "band",
    ]
    assert [row[3] for row in rows[1:]] == ["ana@north.example", "pia@pool.example"]
    ana, pia = rows[1], rows[2]
    assert ana[2] == "Ávila"
    assert ana[4] == "'=1+2"  # a formula is written as text
    assert ana[5] == "Send offer"
    day = timezone.localtime(now).date().isoformat()
    assert ana[6].startswith(day)
    assert ana[7].startswith(day)
    assert pia[5:8] == ["", "", ""]


def test_export_shows_only_what_the_person_sees(manager, other_rep):
    south = make_user("south_rep", Role.REP, team=Team.objects.create(name="South"))
    LeadFactory(owner=south, email="zeb@south.example")
    LeadFactory(owner=other_rep, email="otto@north.example")

    rows = csv_rows(client_for(manager).get("/leads/export.csv?cols=phone"))

    assert [row[3] for row in rows[1:]] == ["otto@north.example"]


def test_export_without_cols_keeps_the_whole_file(manager, rep):
    LeadFactory(owner=rep)

    header = csv_rows(client_for(manager).get("/leads/export.csv"))[0]

    assert "utm_campaign" in header
    assert "next_task" not in header


# --- Select all across pages -------------------------------------------------------------------


def test_select_all_takes_every_matching_lead_across_pages_within_what_the_rep_sees(rep, other_rep):
    pool = [LeadFactory(owner=None, band="warm") for _ in range(30)]
    theirs = LeadFactory(owner=other_rep, band="warm")
    LeadFactory(owner=None, band="cold")
    client = client_for(rep)
    page = client.get("/leads/?band=warm").content.decode()
    assert 'Select all <span id="select-all-count">30 leads</span> matching these filters' in page
    assert len(ids_in(client.get("/leads/?band=warm"))) == 25  # more than a page

    response = client.post(
        "/leads/bulk/?band=warm&sort=name",
        {"action": "take", "select_all": "on", "expected": "30", "lead": [theirs.pk]},
        follow=True,
    )

    assert response.status_code == 200
    body = response.content.decode()
    assert "All 30 leads matching the filters: 30 leads assigned to you." in body
    assert Lead.objects.filter(pk__in=[lead.pk for lead in pool], owner=rep).count() == 30
    theirs.refresh_from_db()
    assert theirs.owner == other_rep  # not in the rep's view: never touched
    assert Lead.objects.filter(band="cold", owner=None).count() == 1


def test_select_all_says_when_the_count_changed_since_the_list_was_shown(manager, rep):
    for _ in range(3):
        LeadFactory(owner=None, band="hot")

    response = client_for(manager).post(
        "/leads/bulk/?band=hot",
        {"action": "assign", "owner": rep.pk, "select_all": "on", "expected": "2"},
        follow=True,
    )

    assert "All 3 leads matching the filters (the list showed 2; leads changed meanwhile)" in (
        response.content.decode()
    )
    assert Lead.objects.filter(owner=rep).count() == 3


def test_select_all_refuses_invalid_filters_and_too_many(manager, rep, monkeypatch):
    for _ in range(3):
        LeadFactory(owner=None)
    client = client_for(manager)

    invalid = client.post(
        "/leads/bulk/?band=boiling", {"action": "assign", "owner": rep.pk, "select_all": "on"}
    )
    monkeypatch.setattr(bulk, "SELECT_ALL_MAX", 2)
    many = client.post("/leads/bulk/", {"action": "assign", "owner": rep.pk, "select_all": "on"})

    assert invalid.status_code == 400
    assert "Correct the filters before acting on every lead they match." in invalid.content.decode()
    assert many.status_code == 400
    assert "narrow the filters first" in many.content.decode()
    assert not Lead.objects.filter(owner=rep).exists()


def test_select_all_works_from_a_later_keyset_page(rep):
    for _ in range(30):
        LeadFactory(owner=None)
    client = client_for(rep)
    first = client.get("/leads/?sort=name").content.decode()
    following = re.search(r'<a rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get(following).content.decode()
    action = (
        re.search(r'<form id="bulk-form"[^>]* action="([^"]+)"', second)
        .group(1)
        .replace("&amp;", "&")
    )
    assert "cursor" not in action

    client.post(action, {"action": "take", "select_all": "on"})

    assert Lead.objects.filter(owner=rep).count() == 30


# --- The bulk bar per action ---------------------------------------------------------------------


def test_bulk_bar_marks_each_field_with_the_actions_that_need_it(manager):
    body = client_for(manager).get("/leads/").content.decode()

    assert 'class="field field-owner" data-actions="assign"' in body
    assert 'class="field field-stage" data-actions="stage"' in body
    assert 'class="field field-reason" data-actions="stage score"' in body
    assert 'class="field field-points" data-actions="score"' in body
    assert 'class="field field-task_title" data-actions="task"' in body
    assert 'class="field field-task_due" data-actions="task"' in body


@pytest.mark.parametrize(
    ("data", "error", "not_errors"),
    [
        ({"action": "assign"}, "Choose who gets the leads.", ["Choose the stage", "non-zero"]),
        (
            {"action": "stage"},
            "Choose the stage to move the leads to.",
            ["Choose who gets", "non-zero"],
        ),
        (
            {"action": "task", "task_due": "2030-01-02T09:00"},
            "Say what needs doing.",
            ["Say when the task is due.", "Choose who gets"],
        ),
        (
            {"action": "task", "task_title": "Call", "task_due": "soon"},
            "Enter a valid date/time.",
            ["Say what needs doing.", "Say when the task is due."],
        ),
        (
            {"action": "score"},
            "Give a non-zero number of points.",
            ["Choose who gets", "Choose the stage"],
        ),
    ],
)
def test_bulk_bar_checks_only_the_fields_the_action_needs(manager, rep, data, error, not_errors):
    lead = LeadFactory(owner=rep)

    response = client_for(manager).post("/leads/bulk/", {**data, "lead": [lead.pk]})

    assert response.status_code == 400
    body = response.content.decode()
    assert error in body
    for other in not_errors:
        assert other not in body
    lead.refresh_from_db()
    assert lead.owner == rep


def test_add_a_task_to_every_selected_lead_the_person_may_act_on(manager, rep, other_rep):
    team_lead = LeadFactory(owner=rep)
    pool = LeadFactory(owner=None)  # to be taken before it is worked

    response = client_for(manager).post(
        "/leads/bulk/",
        {
            "action": "task",
            "task_title": "Send the offer",
            "task_due": "2030-01-02T09:00",
            "lead": [team_lead.pk, pool.pk],
        },
        follow=True,
    )

    assert "1 lead given the task “Send the offer”; 1 could not" in response.content.decode()
    task = Task.objects.get()
    assert (task.lead, task.assignee, task.title) == (team_lead, manager, "Send the offer")
    assert timezone.localtime(task.due_at).strftime("%Y-%m-%d %H:%M") == "2030-01-02 09:00"


# --- Name sort by the displayed name ------------------------------------------------------------


@pytest.fixture
def accented(rep):
    names = [
        ("Zoe", "Adams"),
        ("Émile", "Zola"),
        ("eva", "Brown"),
        ("Edgar", "Allan"),
        ("adam", "Smith"),
    ]
    leads = {
        first: LeadFactory(owner=rep, first_name=first, last_name=last) for first, last in names
    }
    leads["email"] = LeadFactory(owner=rep, first_name="", last_name="", email="bea@example.com")
    return leads


DISPLAYED_ORDER = [
    "adam",
    "email",
    "Edgar",
    "Émile",
    "eva",
    "Zoe",
]  # adam, bea@…, Edgar, Émile, eva, Zoe


def test_name_sort_orders_by_the_displayed_name_accents_and_case_aside(rep, accented):
    response = client_for(rep).get("/leads/?sort=name")
    backwards = client_for(rep).get("/leads/?sort=-name")

    assert ids_in(response) == [accented[key].pk for key in DISPLAYED_ORDER]
    assert ids_in(backwards) == [accented[key].pk for key in reversed(DISPLAYED_ORDER)]


def test_name_sort_keyset_pages_walk_accented_names_in_order(rep, accented):
    rows = Lead.objects.values("id")
    seen, cursor = [], None
    while True:
        page = leads_page(rows, sort="name", cursor=cursor, size=2)
        seen.extend(row["id"] for row in page.rows)
        if not page.next_cursor:
            break
        cursor = cursor_decode(page.next_cursor, sort="name")

    assert seen == [accented[key].pk for key in DISPLAYED_ORDER]


def test_export_by_name_follows_the_same_order(manager, accented):
    rows = csv_rows(client_for(manager).get("/leads/export.csv?sort=name&cols="))

    assert [int(row[0]) for row in rows[1:]] == [accented[key].pk for key in DISPLAYED_ORDER]

"""Next up through HTTP: the queue page, logging an outcome, snoozing and skipping,
with and without htmx; bad input and other people's leads change nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from leads.handoff_models import HandOff
from leads.models import Activity, ActivityType, Lead, QueueDeferral, Stage, Task
from leads.stages import stage_change_record
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
HTMX = {"HX-Request": "true"}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def current_lead(body: str) -> int:
    """The id of the lead on the current card."""
    start = body.index('class="card queue-current"')
    marker = 'data-lead="'
    at = body.index(marker, start) + len(marker)
    return int(body[at : body.index('"', at)])


@pytest.fixture
def queue(rep) -> dict[str, Lead]:
    """A hand-off past its SLA (first), a demo request (second), a hot lead (third)."""
    first = LeadFactory(
        owner=rep, stage=Stage.SQL, first_name="Hanna", phone="+49 30 1234", score=40
    )
    change = stage_change_record(lead=first, from_stage="mql", to_stage="sql")
    HandOff.objects.create(
        lead=first,
        stage_change=change,
        stage=Stage.SQL,
        owner=rep,
        created_at=timezone.now() - dt.timedelta(hours=3),
        sla_due_at=timezone.now() - dt.timedelta(hours=1),
    )
    second = LeadFactory(owner=rep, first_name="Dora", score=20)
    Activity.objects.create(lead=second, type=ActivityType.DEMO_REQUEST)
    third = LeadFactory(owner=rep, first_name="Theo", score=90, band="hot")
    return {"first": first, "second": second, "third": third}


def test_the_page_shows_the_current_lead_large_with_why_and_how_to_reach_them(queue, rep):
    response = client_for(rep).get(reverse("next-up"))

    body = response.content.decode()
    assert response.status_code == 200
    assert current_lead(body) == queue["first"].pk
    assert "Hand-off past its SLA: first touch due 1 hour ago" in body
    assert 'href="tel:+49 30 1234"' in body
    assert f'href="mailto:{queue["first"].email}"' in body
    assert "Asked for a demo today" in body  # the second item, listed below
    for key, label in [("1", "Connected"), ("5", "Not interested")]:
        assert f'data-key="{key}"><kbd>{key}</kbd> {label}</button>' in body
    assert 'href="/next/"' in body  # in the navigation
    assert 'aria-current="page">Next up' in body


def test_a_chosen_lead_becomes_current_and_htmx_gets_the_queue_alone(queue, rep):
    client = client_for(rep)

    response = client.get(reverse("next-up"), {"lead": queue["third"].pk}, headers=HTMX)

    body = response.content.decode()
    assert current_lead(body) == queue["third"].pk
    assert body.startswith('<div id="next-up"')
    assert "<html" not in body
    assert current_lead(client.get("/next/?lead=nonsense").content.decode()) == queue["first"].pk


def test_names_are_escaped(rep):
    LeadFactory(owner=rep, first_name=SCRIPT, score=80, band="hot")

    body = client_for(rep).get(reverse("next-up")).content.decode()

    assert SCRIPT not in body
    assert "&lt;script&gt;" in body


def test_an_empty_queue_says_so(rep):
    body = client_for(rep).get(reverse("next-up")).content.decode()

    assert "Nothing waiting" in body


def test_marketers_and_outsiders_have_no_queue(marketer, outsider):
    assert client_for(marketer).get(reverse("next-up")).status_code == 403
    assert client_for(outsider).get(reverse("next-up")).status_code == 403
    assert Client().get(reverse("next-up")).status_code == 302
    nav = client_for(marketer).get(reverse("home")).content.decode()
    assert 'href="/next/"' not in nav


def test_an_outcome_is_logged_counts_for_speed_to_lead_and_the_next_item_is_current(
    queue, rep, django_capture_on_commit_callbacks
):
    client = client_for(rep)
    lead = queue["first"]

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("next-up-outcome", args=[lead.pk]), {"outcome": "meeting_booked"}
        )

    assert response.status_code == 302
    assert response["Location"] == reverse("next-up")
    call = Activity.objects.get(lead=lead, type=ActivityType.CALL)
    assert call.properties == {"outcome": "meeting_booked"}
    handoff = HandOff.objects.get(lead=lead)
    assert handoff.first_touch_at == call.occurred_at
    body = client.get(response["Location"]).content.decode()
    assert "Meeting booked: logged for Hanna" in body
    assert current_lead(body) == queue["second"].pk


def test_an_outcome_on_a_task_completes_it_through_htmx(rep):
    lead = LeadFactory(owner=rep)
    task = Task.objects.create(lead=lead, assignee=rep, title="Ring", due_at=timezone.now())
    client = client_for(rep)

    response = client.post(
        reverse("next-up-outcome", args=[lead.pk]),
        {"outcome": "no_answer", "task": task.pk, "notes": "Rang twice"},
        headers=HTMX,
        follow=True,
    )

    task.refresh_from_db()
    assert task.done_at is not None
    assert "No answer: logged for" in response.content.decode()
    assert Activity.objects.get(lead=lead).properties == {
        "notes": "Rang twice",
        "outcome": "no_answer",
    }


@pytest.mark.parametrize(
    ("url_name", "data", "error"),
    [
        ("next-up-outcome", {"outcome": "sold"}, "Select a valid choice"),
        ("next-up-outcome", {}, "This field is required"),
        ("next-up-snooze", {"until": "forever"}, "Select a valid choice"),
        ("next-up-skip", {}, "Choose why you skip this lead."),
        ("next-up-skip", {"reason": "other", "note": " "}, "Say why you skip this lead."),
        ("next-up-skip", {"reason": "not_now", "note": "x" * 201}, "at most 200 characters"),
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_bad_input_answers_400_with_the_error_in_place_and_changes_nothing(
    queue, rep, url_name, data, error, htmx, settings
):
    settings.DEBUG = htmx  # both ways, with and without DEBUG
    lead = queue["second"]

    response = client_for(rep).post(
        reverse(url_name, args=[lead.pk]), data, headers=HTMX if htmx else {}
    )

    body = response.content.decode()
    assert response.status_code == 400
    assert error in body
    assert current_lead(body) == lead.pk  # on the lead's own card
    assert 'role="alert"' in body
    assert not QueueDeferral.objects.exists()
    assert not Activity.objects.filter(type=ActivityType.CALL).exists()


def test_snooze_and_skip_take_the_lead_out_of_the_queue(queue, rep):
    client = client_for(rep)

    snoozed = client.post(reverse("next-up-snooze", args=[queue["first"].pk]), {"until": "hour"})
    skipped = client.post(
        reverse("next-up-skip", args=[queue["second"].pk]),
        {"reason": "wrong_person"},
        follow=True,
    )

    assert snoozed.status_code == 302
    body = skipped.content.decode()
    assert "skipped (wrong person)" in body
    assert current_lead(body) == queue["third"].pk
    reasons = dict(QueueDeferral.objects.values_list("lead_id", "reason"))
    assert reasons == {queue["first"].pk: "snoozed", queue["second"].pk: "wrong_person"}


def test_another_reps_lead_is_404_and_a_pool_lead_403_with_nothing_changed(rep, other_rep):
    theirs = LeadFactory(owner=other_rep)
    pool = LeadFactory(owner=None)
    client = client_for(rep)

    for lead, status in ((theirs, 404), (pool, 403)):
        for name, data in (
            ("next-up-outcome", {"outcome": "connected"}),
            ("next-up-snooze", {"until": "hour"}),
            ("next-up-skip", {"reason": "not_now"}),
        ):
            assert client.post(reverse(name, args=[lead.pk]), data).status_code == status

    assert not Activity.objects.exists()
    assert not QueueDeferral.objects.exists()


def test_the_page_runs_a_fixed_number_of_queries(rep):
    client = client_for(rep)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("next-up")).status_code == 200
        return len(queries)

    LeadFactory(owner=rep, score=80, band="hot")
    few = count()
    for n in range(30):
        lead = LeadFactory(owner=rep, score=n, band="hot")
        Activity.objects.create(lead=lead, type=ActivityType.FORM_SUBMISSION)
        Task.objects.create(lead=lead, assignee=rep, title="t", due_at=timezone.now())

    assert count() == few

"""Next up, the work queue (``leads.work_queue``): what is in a person's queue and in
which order, the sentence saying why, working an item (outcome, snooze, skip), who sees
what, and its fixed number of queries."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leads.handoff_models import HandOff, Notification
from leads.models import Activity, ActivityType, Lead, QueueDeferral, Stage, Task
from leads.queue_reasons import Event, duration_words, how_often, reason_sentence, when
from leads.stages import stage_change_record
from leads.work_queue import (
    Urgency,
    queue_outcome_log,
    queue_skip,
    queue_snooze,
    work_queue_for,
)
from tests.factories import LeadFactory

NOW = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)  # a Wednesday
PRICING = "https://hotlist.example/pricing"


# --- The sentence: pure, no database ------------------------------------------------------


def test_the_reason_names_the_most_telling_events_first_in_plain_words():
    events = [
        Event(ActivityType.PAGE_VIEW, NOW - dt.timedelta(days=d), PRICING) for d in (0, 2, 4)
    ] + [
        Event(ActivityType.EMAIL_OPEN, NOW - dt.timedelta(hours=3)),
        Event(ActivityType.DEMO_REQUEST, NOW - dt.timedelta(days=1)),
    ]

    sentence = reason_sentence(events, now=NOW)

    assert sentence == (
        "Asked for a demo yesterday; visited pricing 3 times this week; opened an email today"
    )


def test_the_reason_leaves_out_old_events_and_those_that_say_nothing():
    events = [
        Event(ActivityType.DEMO_REQUEST, NOW - dt.timedelta(days=9)),
        Event(ActivityType.EMAIL_BOUNCE, NOW - dt.timedelta(hours=1)),
        Event(ActivityType.CALL, NOW - dt.timedelta(hours=1)),
        Event(ActivityType.PAGE_VIEW, NOW - dt.timedelta(days=3), "https://x.example/blog"),
        Event(ActivityType.PAGE_VIEW, NOW - dt.timedelta(days=2), "https://x.example/"),
    ]

    assert reason_sentence(events, now=NOW) == "Visited the site twice this week"
    assert reason_sentence([], now=NOW) == ""


def test_the_reason_says_at_most_three_things():
    kinds = [ActivityType.QUOTE_REQUEST, ActivityType.TRIAL_SIGNUP, ActivityType.EMAIL_REPLY]
    events = [Event(kind, NOW - dt.timedelta(days=3)) for kind in kinds]
    events.append(Event(ActivityType.FORM_SUBMISSION, NOW))

    sentence = reason_sentence(events, now=NOW)

    assert sentence.count(";") == 2
    assert "form" not in sentence
    assert sentence.startswith("Asked for a quote on ")


def test_times_and_counts_read_as_people_say_them(settings):
    settings.TIME_ZONE = "UTC"
    assert when(NOW - dt.timedelta(hours=2), now=NOW) == "today"
    assert when(NOW - dt.timedelta(days=1), now=NOW) == "yesterday"
    assert when(NOW - dt.timedelta(days=2), now=NOW) == "on Monday"
    assert when(NOW - dt.timedelta(days=8), now=NOW) == "8 days ago"
    assert [how_often(n) for n in (1, 2, 5)] == ["once", "twice", "5 times"]
    assert duration_words(dt.timedelta(minutes=1)) == "1 minute"
    assert duration_words(dt.timedelta(hours=2, minutes=59)) == "2 hours"
    assert duration_words(-dt.timedelta(days=3)) == "3 days"
    assert duration_words(dt.timedelta(seconds=20)) == "less than a minute"


# --- The queue ---------------------------------------------------------------------------------


def handoff_for(lead: Lead, owner, *, sla_in: dt.timedelta) -> HandOff:
    change = stage_change_record(lead=lead, from_stage="mql", to_stage="sql")
    return HandOff.objects.create(
        lead=lead,
        stage_change=change,
        stage=Stage.SQL,
        owner=owner,
        created_at=timezone.now() - dt.timedelta(hours=1),
        sla_due_at=timezone.now() + sla_in,
    )


def hot(owner, score: int = 80, **fields) -> Lead:
    return LeadFactory(owner=owner, score=score, band="hot", **fields)


def activity(lead: Lead, type: str, ago: dt.timedelta, by=None, url: str = "") -> Activity:
    return Activity.objects.create(
        lead=lead, type=type, occurred_at=timezone.now() - ago, url=url, created_by=by
    )


def queue(user, **kwargs) -> list:
    return work_queue_for(user, now=timezone.now(), **kwargs)


@pytest.fixture
def world(db, rep):
    now = timezone.now()
    leads = {
        "late": LeadFactory(owner=rep, score=10, stage=Stage.SQL),
        "soon": LeadFactory(owner=rep, score=5, stage=Stage.SQL),
        "later": LeadFactory(owner=rep, score=90, stage=Stage.SQL),
        "overdue": LeadFactory(owner=rep, score=20),
        "today": LeadFactory(owner=rep, score=30),
        "reply": LeadFactory(owner=rep, score=15),
        "surging": LeadFactory(owner=rep, score=40, band="warm"),
        "hot_low": hot(rep, 70),
        "hot_high": hot(rep, 95),
        "cold": LeadFactory(owner=rep, score=99, band="cold"),
    }
    handoff_for(leads["late"], rep, sla_in=-dt.timedelta(hours=2))
    handoff_for(leads["later"], rep, sla_in=dt.timedelta(hours=5))
    handoff_for(leads["soon"], rep, sla_in=dt.timedelta(hours=1))
    Task.objects.create(
        lead=leads["overdue"], assignee=rep, title="Call back", due_at=now - dt.timedelta(days=1)
    )
    Task.objects.create(
        lead=leads["today"], assignee=rep, title="Send deck", due_at=now + dt.timedelta(seconds=30)
    )
    activity(leads["reply"], ActivityType.DEMO_REQUEST, dt.timedelta(minutes=5))
    return leads


def test_the_queue_runs_by_urgency_then_score(world, rep, settings):
    settings.TIME_ZONE = "UTC"
    items = queue(rep, surging=[world["surging"].pk])

    assert [(item.urgency, item.lead) for item in items] == [
        (Urgency.HANDOFF_LATE, world["late"]),
        # Within their SLA, hand-offs run by the clock, not the score.
        (Urgency.HANDOFF, world["soon"]),
        (Urgency.HANDOFF, world["later"]),
        (Urgency.TASK_OVERDUE, world["overdue"]),
        (Urgency.TASK_DUE, world["today"]),
        (Urgency.INBOUND, world["reply"]),
        (Urgency.SURGING, world["surging"]),
        (Urgency.HOT, world["hot_high"]),
        (Urgency.HOT, world["hot_low"]),
    ]
    assert items[0].label.startswith("Hand-off past its SLA: first touch due 2 hours ago")
    assert items[3].label == "Overdue task: Call back (overdue by 1 day)"
    assert items[5].reason == "Asked for a demo today"
    assert items[-1].reason == "No activity of its own this week."
    assert len(queue(rep, limit=3)) == 3


def test_a_lead_appears_once_with_its_most_urgent_reason(world, rep):
    lead = world["hot_high"]
    Task.objects.create(lead=lead, assignee=rep, title="Chase", due_at=timezone.now())
    # Earlier today, wherever in the day the test runs.
    local = timezone.localtime()
    since_midnight = local - local.replace(hour=0, minute=0, second=0, microsecond=0)
    activity(lead, ActivityType.QUOTE_REQUEST, min(dt.timedelta(hours=1), since_midnight / 2))

    items = [item for item in queue(rep) if item.lead == lead]

    assert [item.urgency for item in items] == [Urgency.TASK_OVERDUE]
    assert items[0].reason == "Asked for a quote today"


def test_a_touch_answers_inbound_and_hot_leads_but_an_older_touch_does_not(world, rep):
    activity(world["reply"], ActivityType.CALL, dt.timedelta(minutes=1), by=rep)
    activity(world["hot_high"], ActivityType.MEETING, dt.timedelta(days=2), by=rep)
    activity(world["hot_low"], ActivityType.CALL, dt.timedelta(days=8), by=rep)
    # An email reply nobody logged is the lead's own: it asks for an answer.
    quiet = LeadFactory(owner=rep, score=1)
    activity(quiet, ActivityType.EMAIL_REPLY, dt.timedelta(hours=2))
    # A touch before the inbound activity does not answer it.
    early = LeadFactory(owner=rep, score=2)
    activity(early, ActivityType.CALL, dt.timedelta(hours=3), by=rep)
    activity(early, ActivityType.TRIAL_SIGNUP, dt.timedelta(hours=1))

    leads = {item.lead for item in queue(rep)}

    assert world["reply"] not in leads
    assert world["hot_high"] not in leads
    assert world["hot_low"] in leads
    assert quiet in leads
    assert early in leads


def test_snoozed_and_skipped_leads_stay_out_until_their_time(world, rep):
    now = timezone.now()
    queue_snooze(lead=world["late"], by=rep, choice="hour", now=now)
    queue_skip(lead=world["hot_high"], by=rep, reason="not_now", now=now)
    QueueDeferral.objects.create(
        user=rep, lead=world["overdue"], until=now - dt.timedelta(minutes=1), reason="snoozed"
    )

    leads = {item.lead for item in queue(rep)}

    assert world["late"] not in leads
    assert world["hot_high"] not in leads
    assert world["overdue"] in leads  # its time is up
    later = now + dt.timedelta(days=1, hours=1)
    assert world["late"] in {item.lead for item in work_queue_for(rep, now=later)}


def test_a_second_snooze_replaces_the_first(world, rep):
    now = timezone.now()
    queue_skip(lead=world["late"], by=rep, reason="wrong_person", now=now)
    queue_snooze(lead=world["late"], by=rep, choice="hour", now=now)

    deferral = QueueDeferral.objects.get(user=rep, lead=world["late"])
    assert (deferral.reason, deferral.until) == ("snoozed", now + dt.timedelta(hours=1))


def test_a_skip_needs_a_known_reason_and_a_note_for_other(world, rep):
    now = timezone.now()
    with pytest.raises(ValidationError) as error:
        queue_skip(lead=world["late"], by=rep, reason="bored", now=now)
    assert "reason" in error.value.error_dict
    with pytest.raises(ValidationError) as error:
        queue_skip(lead=world["late"], by=rep, reason="other", note="  ", now=now)
    assert "note" in error.value.error_dict
    with pytest.raises(ValidationError):
        queue_snooze(lead=world["late"], by=rep, choice="forever", now=now)
    assert not QueueDeferral.objects.exists()

    skipped = queue_skip(lead=world["late"], by=rep, reason="other", note="On leave", now=now)
    assert (skipped.note, skipped.until) == ("On leave", now + dt.timedelta(days=7))


def test_only_leads_the_person_may_act_on_are_in_their_queue(world, rep, other_rep, manager):
    theirs = hot(other_rep, 99)
    handoff_for(LeadFactory(owner=other_rep), other_rep, sla_in=-dt.timedelta(hours=1))
    pool = LeadFactory(owner=None, score=50)
    Task.objects.create(lead=pool, assignee=rep, title="Pool task", due_at=timezone.now())

    leads = {item.lead for item in queue(rep)}

    assert theirs not in leads
    assert pool not in leads  # seen, but taken first before it is worked
    assert all(lead.owner == rep for lead in leads)
    # Another person's snooze is theirs alone.
    queue_snooze(lead=world["late"], by=manager, choice="hour", now=timezone.now())
    assert world["late"] in {item.lead for item in queue(rep)}
    # A manager's queue holds their own work, not each rep's hot leads.
    assert queue(manager) == []


def test_the_queue_costs_the_same_queries_for_few_and_many_items(rep, db):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            queue(rep, surging=surging)
        return len(queries)

    surging: list[int] = []
    queue(rep)  # the person's roles, read once and kept on the user
    for n in range(2):
        lead = hot(rep, 60 + n)
        activity(lead, ActivityType.PAGE_VIEW, dt.timedelta(days=1), url=PRICING)
    few = count()
    for n in range(12):
        lead = hot(rep, 70 + n)
        activity(lead, ActivityType.FORM_SUBMISSION, dt.timedelta(hours=n + 1))
        Task.objects.create(lead=lead, assignee=rep, title="t", due_at=timezone.now())
        handoff_for(LeadFactory(owner=rep), rep, sla_in=dt.timedelta(hours=n))
        surging.append(LeadFactory(owner=rep, score=n).pk)
    many = count()

    assert len(queue(rep, surging=surging)) == 25
    # Deferrals, hand-offs, tasks, inbound, hot leads, their last touches, every
    # source's ranks, the chosen items' leads, the events of the leads shown.
    assert few == 9
    assert many == few


def test_of_many_candidates_only_the_chosen_items_leads_are_read(db, rep):
    # Given hand-offs, tasks, inbound activity, surges and hot leads, more than fill a queue
    surging: list[int] = []
    for n in range(6):
        handoff_for(LeadFactory(owner=rep), rep, sla_in=dt.timedelta(hours=n + 1))
        overdue = timezone.now() - dt.timedelta(hours=n + 1)
        Task.objects.create(lead=LeadFactory(owner=rep), assignee=rep, title="t", due_at=overdue)
        activity(hot(rep, 40 + n), ActivityType.FORM_SUBMISSION, dt.timedelta(hours=n + 1))
        surging.append(LeadFactory(owner=rep, score=30 + n).pk)
        hot(rep, 80 + n)

    with CaptureQueriesContext(connection) as queries:
        shown = queue(rep, surging=surging, limit=8)

    # Then the queue is the six hand-offs and two of the overdue tasks
    assert [item.urgency for item in shown] == [Urgency.HANDOFF] * 6 + [Urgency.TASK_OVERDUE] * 2
    # And only the rows of the leads shown were read, whatever the candidates behind them
    (read,) = [q["sql"] for q in queries.captured_queries if 'FROM "leads_lead"' in q["sql"]]
    (listed,) = re.findall(r'"leads_lead"\."id" IN \(([\d, ]+)\)', read)
    assert {int(pk) for pk in listed.split(",")} == {item.lead.pk for item in shown}


def test_the_hottest_untouched_leads_fill_the_queue_and_no_more_are_read(db, rep):
    # Hot leads, hottest first: the two hottest were called this week
    leads = [hot(rep, 99 - n) for n in range(8)]
    for lead in leads[:2]:
        activity(lead, ActivityType.CALL, dt.timedelta(days=1), by=rep)
    with CaptureQueriesContext(connection) as queries:
        shown = [item.lead for item in queue(rep, limit=3)]

    # Then the next three fill a queue of three, as hot leads
    assert shown == leads[2:5]
    # And only their rows are read, not those of the hot leads behind them
    (read,) = [q["sql"] for q in queries.captured_queries if 'FROM "leads_lead"' in q["sql"]]
    (listed,) = re.findall(r'"leads_lead"\."id" IN \(([\d, ]+)\)', read)
    assert {int(pk) for pk in listed.split(",")} == {lead.pk for lead in leads[2:5]}


# --- Working an item ----------------------------------------------------------------------------


def test_an_outcome_is_a_call_and_the_first_touch_of_the_hand_off(
    world, rep, django_capture_on_commit_callbacks
):
    lead = world["late"]
    handoff = HandOff.objects.get(lead=lead)
    Notification.objects.create(user=rep, kind="surge", title="Surge", lead=lead)
    Notification.objects.create(user=rep, kind="handoff", title="Handed", lead=lead)

    with django_capture_on_commit_callbacks(execute=True):
        logged = queue_outcome_log(lead=lead, by=rep, outcome="voicemail", notes="Back Tue")

    stored = Activity.objects.get(pk=logged.pk)
    assert (stored.type, stored.created_by, stored.properties) == (
        "call",
        rep,
        {"notes": "Back Tue", "outcome": "voicemail"},
    )
    handoff.refresh_from_db()
    assert handoff.first_touch_at == stored.occurred_at
    assert handoff.speed_to_lead is not None
    assert handoff.status == "pending"  # accepting stays the rep's step
    unread = set(Notification.objects.filter(read_at__isnull=True).values_list("kind", flat=True))
    assert unread == {"handoff"}
    assert lead not in {item.lead for item in queue(rep)}


def test_a_worked_lead_is_back_tomorrow_when_something_still_calls_for_it(world, rep):
    lead = world["late"]
    Task.objects.create(lead=lead, assignee=rep, title="Send the deck", due_at=timezone.now())

    queue_outcome_log(lead=lead, by=rep, outcome="no_answer")

    assert lead not in {item.lead for item in queue(rep)}
    tomorrow = timezone.now() + dt.timedelta(days=1, hours=10)
    items = {item.lead: item for item in work_queue_for(rep, now=tomorrow)}
    assert items[lead].urgency == Urgency.TASK_OVERDUE  # the hand-off was touched
    assert Task.objects.get(lead=lead).done_at is None  # not the item's task: left open


def test_an_outcome_on_a_task_item_completes_that_task_only(world, rep, other_rep):
    lead = world["overdue"]
    task = Task.objects.get(lead=lead)
    foreign = Task.objects.create(lead=lead, assignee=other_rep, title="x", due_at=timezone.now())

    queue_outcome_log(lead=lead, by=rep, outcome="connected", task=task)
    queue_outcome_log(lead=lead, by=rep, outcome="connected", task=foreign)

    task.refresh_from_db()
    foreign.refresh_from_db()
    assert task.done_at is not None
    assert foreign.done_at is None
    assert Lead.objects.get(pk=lead.pk).stage == lead.stage


def test_not_interested_only_logs(world, rep):
    lead = world["hot_high"]
    queue_outcome_log(lead=lead, by=rep, outcome="not_interested")

    lead.refresh_from_db()
    assert (lead.stage, lead.owner) == (Stage.NEW, rep)
    assert Activity.objects.get(lead=lead).properties == {"outcome": "not_interested"}


def test_a_bad_outcome_or_a_hidden_lead_stores_nothing(world, rep, other_rep):
    with pytest.raises(ValidationError) as error:
        queue_outcome_log(lead=world["late"], by=rep, outcome="sold")
    assert "outcome" in error.value.error_dict
    with pytest.raises(PermissionDenied):
        queue_outcome_log(lead=hot(other_rep), by=rep, outcome="connected")
    with pytest.raises(PermissionDenied):
        queue_snooze(lead=hot(other_rep), by=rep, choice="hour", now=timezone.now())

    assert not Activity.objects.filter(type="call").exists()
    assert HandOff.objects.filter(first_touch_at__isnull=False).count() == 0
    assert not QueueDeferral.objects.exists()

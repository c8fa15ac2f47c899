"""The hand-off with a real Celery worker on Redis, PostgreSQL, and a real SMTP server.

The worker runs in a thread of this process (``celery_worker_live``) and mails through
Django's SMTP backend to an aiosmtpd server on a local port, so what is asserted is what
a mail client would receive.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pytest
from django.utils import timezone

from leads.activities import activities_record
from leads.handoff_assignment import handoff_assign
from leads.handoff_models import (
    AssignmentKind,
    AssignmentRule,
    HandOff,
    Notification,
    NotificationKind,
)
from leads.models import Activity, ActivityType, Lead, Stage, Task
from leads.stages import stage_change_record
from leads.tasks import handoff_assign as handoff_assign_task
from leads.tasks import handoff_escalate_overdue
from tests.factories import LeadFactory, active_model, fit_rule, page_rule
from tests.test_scoring_worker import in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 60
PRICING = "https://hotlist.example/pricing"
CAREERS = "https://hotlist.example/careers"


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"not within {WAIT_SECONDS} s: {what}")


def scoring_setup(rep) -> None:
    """DE +10, pricing view +35, careers view -5, SQL at 40; Germany goes to ``rep``."""
    model = active_model(mql_threshold=10, sql_threshold=40, surge_points=0)
    fit_rule(model, 10, "country", "equals", "DE")
    page_rule(model, 35, "/pricing")
    page_rule(model, -5, "/careers")
    AssignmentRule.objects.create(
        name="Germany", kind=AssignmentKind.TERRITORY, countries=["DE"], owner=rep
    )


@pytest.mark.worker
def test_crossing_the_threshold_on_the_worker_hands_off_once_and_escalates_after_the_deadline(
    celery_worker_live, smtp_inbox, finished_tasks, rep, manager
):
    # Given an active model where two page views reach SQL, and Germany going to rep
    scoring_setup(rep)
    lead = LeadFactory()

    # When the page views are recorded (committed; scoring runs on the worker)
    activities_record(
        lead=lead,
        activities=[
            Activity(type=ActivityType.PAGE_VIEW, url=PRICING),
            Activity(type=ActivityType.PAGE_VIEW, url=CAREERS),
        ],
    )

    # Then the worker scores the lead to SQL, assigns it, creates the task and mails rep
    wait_for(lambda: len(smtp_inbox.messages) >= 1, "the hand-off email")
    lead.refresh_from_db()
    assert (lead.stage, lead.score, lead.owner) == (Stage.SQL, 40, rep)
    handoff = HandOff.objects.get()
    assert (handoff.owner, handoff.assigned_by) == (rep, "territory DE")
    assert Task.objects.filter(lead=lead, assignee=rep).count() == 1
    assert Notification.objects.filter(user=rep, kind=NotificationKind.HANDOFF).count() == 1
    assert smtp_inbox.recipients == [[rep.email]]
    assert smtp_inbox.messages[0]["Subject"] == f"New lead for you: {lead}"
    text = smtp_inbox.text_of(0)
    assert f"Score 40 ({lead.get_band_display()})" in text
    assert "/pricing" in text
    assert "/careers" in text
    assert f"/leads/{lead.pk}/" in text

    # When the assignment message is delivered twice more
    handoff_assign_task.delay(handoff.pk)
    handoff_assign_task.delay(handoff.pk)
    wait_for(lambda: finished_tasks["leads.tasks.handoff_assign"] >= 3, "the repeated assignments")

    # Then nothing is created or sent a second time
    assert HandOff.objects.count() == 1
    assert Task.objects.count() == 1
    assert Notification.objects.count() == 1
    assert finished_tasks["leads.tasks.send_notification_email"] == 1
    assert len(smtp_inbox.messages) == 1

    # When the SLA deadline passes with no touch and beat runs the escalation twice
    HandOff.objects.filter(pk=handoff.pk).update(
        sla_due_at=timezone.now() - dt.timedelta(seconds=1)
    )
    handoff_escalate_overdue.delay()
    wait_for(lambda: len(smtp_inbox.messages) >= 2, "the escalation email")
    handoff_escalate_overdue.delay()
    wait_for(
        lambda: finished_tasks["leads.tasks.handoff_escalate_overdue"] >= 2, "the second sweep"
    )

    # Then the manager was told once, by email too
    handoff.refresh_from_db()
    assert handoff.escalated_to == manager
    assert smtp_inbox.recipients[1:] == [[manager.email]]
    assert smtp_inbox.messages[1]["Subject"] == f"Overdue hand-off: {lead}"
    time.sleep(0.5)
    assert len(smtp_inbox.messages) == 2
    assert Notification.objects.filter(kind=NotificationKind.ESCALATION).count() == 1


def unassigned_handoff(**lead_fields) -> HandOff:
    """A hand-off as the stage move writes it, before any assigning run."""
    lead = LeadFactory(stage=Stage.SQL, **lead_fields)
    change = stage_change_record(lead=lead, from_stage=Stage.MQL, to_stage=Stage.SQL)
    return HandOff.objects.create(lead=lead, stage_change=change, stage=Stage.SQL)


def test_two_concurrent_assigning_runs_create_one_task_and_one_notification(rep):
    AssignmentRule.objects.create(name="All", kind=AssignmentKind.FALLBACK, owner=rep)
    handoff = unassigned_handoff()

    errors = in_threads([lambda: handoff_assign(handoff_id=handoff.pk) for _ in range(4)])

    assert errors == []
    handoff.refresh_from_db()
    assert handoff.owner == rep
    assert Task.objects.filter(lead=handoff.lead).count() == 1
    assert Notification.objects.filter(lead=handoff.lead).count() == 1


def test_concurrent_round_robin_picks_spread_over_the_reps(rep, other_rep, team):
    # Given two reps with no leads, and two leads handed off at the same moment
    AssignmentRule.objects.create(name="Team", kind=AssignmentKind.ROUND_ROBIN, team=team)
    first, second = unassigned_handoff(), unassigned_handoff()

    # When both are assigned at once, on two connections
    errors = in_threads(
        [
            lambda: handoff_assign(handoff_id=first.pk),
            lambda: handoff_assign(handoff_id=second.pk),
        ]
    )

    # Then the rule's lock made the second pick see the first: one lead each
    assert errors == []
    owners = set(
        Lead.objects.filter(pk__in=[first.lead_id, second.lead_id]).values_list("owner", flat=True)
    )
    assert owners == {rep.pk, other_rep.pk}

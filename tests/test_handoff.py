"""The hand-off: a lead reaching SQL gets an owner, a task and a deadline, once."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from crm.models import Role
from leads.activities import activities_record
from leads.handoff_acceptance import HandOffError, handoff_accept, handoff_reject
from leads.handoff_assignment import handoff_open, handoffs_resume_stalled
from leads.handoff_escalation import handoffs_escalate_overdue
from leads.handoff_models import (
    AssignmentKind,
    AssignmentRule,
    HandOff,
    HandOffStatus,
    LeadRating,
    Notification,
    NotificationKind,
)
from leads.models import Activity, ActivityType, Lead, Stage, StageChange, Task, TaskKind
from leads.sales_feedback import lead_log_touch, lead_rate_quality
from leads.signals import handoff_escalated, lead_handed_off
from leads.stages import lead_move_to_stage, lead_move_to_stage_locked
from leads.tasks import handoff_assign, handoff_escalate_overdue
from scoring.explanation import lead_explanation
from tests.api_client import token_client
from tests.conftest import make_user
from tests.factories import LeadFactory, active_model, fit_rule, page_rule

pytestmark = pytest.mark.django_db

PRICING = "https://hotlist.example/pricing"
CAREERS = "https://hotlist.example/careers"


@pytest.fixture
def scoring_model(db):
    """DE +10, a pricing view +35, a careers view -5: both views together reach SQL at 40."""
    model = active_model(mql_threshold=10, sql_threshold=40, surge_points=0)
    fit_rule(model, 10, "country", "equals", "DE")
    page_rule(model, 35, "/pricing")
    page_rule(model, -5, "/careers")
    return model


@pytest.fixture
def territory(rep) -> AssignmentRule:
    return AssignmentRule.objects.create(
        name="Germany", kind=AssignmentKind.TERRITORY, countries=["DE"], owner=rep, position=1
    )


@pytest.fixture
def sent_signals():
    """The hand-off signals sent while the test runs, as (signal name, hand-off id)."""
    got: list[tuple[str, int]] = []

    def handed_off(sender, handoff, **kwargs) -> None:
        got.append(("handed_off", handoff.pk))

    def escalated(sender, handoff, **kwargs) -> None:
        got.append(("escalated", handoff.pk))

    lead_handed_off.connect(handed_off, weak=False)
    handoff_escalated.connect(escalated, weak=False)
    yield got
    lead_handed_off.disconnect(handed_off)
    handoff_escalated.disconnect(escalated)


def cross_threshold(lead: Lead, capture) -> None:
    """Record the two page views that take the lead over the SQL threshold, and let every
    after-commit hook run (scoring, hand-off, emails) as the worker would."""
    with capture(execute=True):
        activities_record(
            lead=lead,
            activities=[
                Activity(type=ActivityType.PAGE_VIEW, url=PRICING),
                Activity(type=ActivityType.PAGE_VIEW, url=CAREERS),
            ],
        )


def handed_off_lead(capture, **fields) -> tuple[Lead, HandOff]:
    lead = LeadFactory(stage=Stage.MQL, **fields)
    with capture(execute=True):
        lead_move_to_stage(lead_id=lead.pk, stage=Stage.SQL)
    lead.refresh_from_db()
    return lead, HandOff.objects.get(lead=lead)


# --- Crossing the threshold ------------------------------------------------------------


def test_crossing_the_sql_threshold_assigns_notifies_and_creates_the_task(
    scoring_model, territory, rep, sent_signals, django_capture_on_commit_callbacks
):
    # Given a new lead in Germany, where the territory rule names rep
    lead = LeadFactory()
    before = timezone.now()

    # When its page views take the score over the SQL threshold
    cross_threshold(lead, django_capture_on_commit_callbacks)

    # Then scoring moved it to SQL and the hand-off gave it to rep, with the reason
    lead.refresh_from_db()
    assert (lead.stage, lead.score, lead.owner) == (Stage.SQL, 40, rep)
    handoff = HandOff.objects.get()
    assert (handoff.lead, handoff.owner, handoff.assigned_by) == (lead, rep, "territory DE")
    assert handoff.status == HandOffStatus.PENDING
    assert handoff.stage_change == StageChange.objects.get(lead=lead, to_stage=Stage.SQL)
    # And a follow-up task is due within the SLA
    task = Task.objects.get()
    assert (task.lead, task.assignee, task.kind) == (lead, rep, TaskKind.FOLLOW_UP)
    assert handoff.task == task
    assert task.due_at == handoff.sla_due_at
    assert before + dt.timedelta(hours=24) <= task.due_at <= timezone.now() + dt.timedelta(hours=24)
    # And rep is notified in the app and by one email that carries the why
    notification = Notification.objects.get()
    assert (notification.user, notification.kind, notification.lead) == (
        rep,
        NotificationKind.HANDOFF,
        lead,
    )
    assert notification.url == f"/leads/{lead.pk}/"
    assert [m.to for m in mail.outbox] == [[rep.email]]
    body = mail.outbox[0].body
    assert f"Score 40 ({lead.get_band_display()})" in body
    why = lead_explanation(lead=lead)["models"][0]
    assert why["positive"]
    assert why["negative"]
    for line in why["positive"] + why["negative"]:
        assert line["reason"] in body
    assert "Page view" in body
    assert PRICING in body
    assert lead.job_title in body
    assert lead.company.name in body
    # And the hand-off was announced once, after commit
    assert sent_signals == [("handed_off", handoff.pk)]


def test_repeated_assign_runs_change_nothing(
    scoring_model, territory, rep, sent_signals, django_capture_on_commit_callbacks
):
    lead = LeadFactory()
    cross_threshold(lead, django_capture_on_commit_callbacks)
    handoff = HandOff.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        handoff_assign.delay(handoff.pk)
        handoff_assign.delay(handoff.pk)
        # And the stage move's receiver seeing the same move again opens nothing new
        assert handoff_open(lead=lead, change=handoff.stage_change) == handoff

    assert HandOff.objects.count() == 1
    assert Task.objects.count() == 1
    assert Notification.objects.count() == 1
    assert len(mail.outbox) == 1
    assert sent_signals == [("handed_off", handoff.pk)]


def test_manual_move_to_sql_by_a_manager_hands_off_the_same_way(
    territory, rep, manager, sent_signals, django_capture_on_commit_callbacks
):
    lead = LeadFactory(stage=Stage.MQL)

    with django_capture_on_commit_callbacks(execute=True):
        lead_move_to_stage(lead_id=lead.pk, stage=Stage.SQL, by=manager, reason="Called in")

    lead.refresh_from_db()
    handoff = HandOff.objects.get()
    assert (lead.owner, handoff.owner, handoff.assigned_by) == (rep, rep, "territory DE")
    assert handoff.stage_change.by == manager
    assert Task.objects.filter(assignee=rep, lead=lead).count() == 1
    assert Notification.objects.filter(user=rep, kind=NotificationKind.HANDOFF).count() == 1
    assert [m.to for m in mail.outbox] == [[rep.email]]
    assert sent_signals == [("handed_off", handoff.pk)]


def test_moves_to_other_stages_hand_nothing_off(territory, django_capture_on_commit_callbacks):
    lead = LeadFactory()

    with django_capture_on_commit_callbacks(execute=True):
        lead_move_to_stage(lead_id=lead.pk, stage=Stage.MQL)

    assert not HandOff.objects.exists()
    assert not Task.objects.exists()
    assert mail.outbox == []


def test_hand_off_stage_is_configurable(
    settings, territory, rep, django_capture_on_commit_callbacks
):
    settings.HANDOFF_STAGE = "mql"
    settings.HANDOFF_SLA_HOURS = 4
    lead = LeadFactory()

    with django_capture_on_commit_callbacks(execute=True):
        lead_move_to_stage(lead_id=lead.pk, stage=Stage.MQL)

    handoff = HandOff.objects.get()
    assert (handoff.stage, handoff.owner) == (Stage.MQL, rep)
    assert handoff.sla_due_at - handoff.assigned_at == dt.timedelta(hours=4)


def test_lead_keeps_its_current_owner(territory, other_rep, django_capture_on_commit_callbacks):
    lead, handoff = handed_off_lead(django_capture_on_commit_callbacks, owner=other_rep)

    assert (lead.owner, handoff.owner, handoff.assigned_by) == (
        other_rep,
        other_rep,
        "kept current owner",
    )


def test_without_any_owner_the_managers_are_told(
    manager, sent_signals, django_capture_on_commit_callbacks
):
    lead, handoff = handed_off_lead(django_capture_on_commit_callbacks, country="US")

    assert (lead.owner, handoff.owner, handoff.assigned_by) == (None, None, "no rule matched")
    assert handoff.sla_due_at is None
    assert not Task.objects.exists()
    notification = Notification.objects.get()
    assert notification.user == manager
    assert notification.title.startswith("Unassigned hand-off")
    assert sent_signals == []


def test_lost_assignment_is_queued_again_by_beat(
    territory, rep, django_capture_on_commit_callbacks
):
    # Given a hand-off whose assignment message never arrived
    lead = LeadFactory(stage=Stage.MQL)
    # Not committed in a way that runs its hooks
    change = lead_move_to_stage_locked(lead=lead, stage=Stage.SQL)
    handoff = HandOff.objects.get(stage_change=change)
    HandOff.objects.filter(pk=handoff.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=5)
    )

    with django_capture_on_commit_callbacks(execute=True):
        queued = handoffs_resume_stalled()

    handoff.refresh_from_db()
    assert queued == 1
    assert (handoff.owner, handoff.notified_at is not None) == (rep, True)
    assert Task.objects.count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert handoffs_resume_stalled() == 0


def test_recycled_lead_that_qualifies_again_is_handed_off_again(
    territory, rep, django_capture_on_commit_callbacks
):
    lead, first = handed_off_lead(django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        handoff_reject(handoff=first, by=rep, reason="No budget until Q3")
        lead_move_to_stage(lead_id=lead.pk, stage=Stage.SQL)

    assert HandOff.objects.filter(lead=lead).count() == 2
    second = HandOff.objects.filter(lead=lead).exclude(pk=first.pk).get()
    assert (second.status, second.owner) == (HandOffStatus.PENDING, rep)
    assert Task.objects.filter(lead=lead, done_at__isnull=True).count() == 1


# --- Accepting and rejecting --------------------------------------------------------------


@pytest.fixture
def pending(territory, rep, django_capture_on_commit_callbacks) -> HandOff:
    _, handoff = handed_off_lead(django_capture_on_commit_callbacks)
    mail.outbox.clear()
    return handoff


@pytest.mark.parametrize("who", ["rep", "manager", "admin_user"])
def test_owner_their_manager_or_an_admin_accepts(request, pending, who):
    person = request.getfixturevalue(who)

    accepted = handoff_accept(handoff=pending, by=person)

    pending.refresh_from_db()
    assert accepted.status == pending.status == HandOffStatus.ACCEPTED
    assert pending.accepted_at is not None
    assert pending.closed_by == person
    # Accepting is not a touch: speed to lead waits for real contact
    assert pending.first_touch_at is None


@pytest.mark.parametrize("who", ["other_rep", "marketer", "outsider"])
def test_anyone_else_can_neither_accept_nor_reject(request, pending, who):
    person = request.getfixturevalue(who)

    with pytest.raises(PermissionDenied):
        handoff_accept(handoff=pending, by=person)
    with pytest.raises(PermissionDenied):
        handoff_reject(handoff=pending, by=person, reason="Not mine")

    pending.refresh_from_db()
    assert pending.status == HandOffStatus.PENDING
    assert pending.lead.stage == Stage.SQL
    assert pending.closed_by is None


def test_manager_of_another_team_cannot_accept(pending):
    from crm.models import Team

    south = Team.objects.create(name="South")
    stranger = make_user("south-manager", Role.MANAGER, team=south)
    south.manager = stranger
    south.save()

    with pytest.raises(PermissionDenied):
        handoff_accept(handoff=pending, by=stranger)


def test_closed_hand_off_cannot_be_accepted_or_rejected_again(pending, rep):
    handoff_accept(handoff=pending, by=rep)

    with pytest.raises(HandOffError, match="accepted already"):
        handoff_accept(handoff=pending, by=rep)
    with pytest.raises(HandOffError, match="accepted already"):
        handoff_reject(handoff=pending, by=rep, reason="Changed my mind")

    pending.refresh_from_db()
    assert pending.status == HandOffStatus.ACCEPTED
    assert pending.lead.stage == Stage.SQL


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
def test_reject_needs_a_reason(pending, rep, reason):
    with pytest.raises(HandOffError) as refused:
        handoff_reject(handoff=pending, by=rep, reason=reason)

    assert "reason" in refused.value.message_dict
    pending.refresh_from_db()
    assert pending.status == HandOffStatus.PENDING
    assert pending.lead.stage == Stage.SQL
    assert pending.lead.owner == rep


def test_reject_returns_the_lead_to_marketing(
    pending, rep, marketer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        handoff_reject(handoff=pending, by=rep, reason="Student project, no budget")

    pending.refresh_from_db()
    lead = pending.lead
    assert pending.status == HandOffStatus.REJECTED
    assert pending.reject_reason == "Student project, no budget"
    # The lead went back through the normal transition, with the reason
    assert (lead.stage, lead.owner) == (Stage.RECYCLED, None)
    move = StageChange.objects.filter(lead=lead).first()
    assert (move.from_stage, move.to_stage, move.by) == (Stage.SQL, Stage.RECYCLED, rep)
    assert "Student project, no budget" in move.reason
    # The follow-up task is closed and the marketers are told, in the app and by email
    assert pending.task.done_at is not None
    told = Notification.objects.get(kind=NotificationKind.REJECTION)
    assert told.user == marketer
    assert "Student project, no budget" in told.body
    assert [m.to for m in mail.outbox] == [[marketer.email]]


def test_leaving_the_stage_another_way_closes_the_pending_hand_off(
    pending, rep, django_capture_on_commit_callbacks
):
    lead = pending.lead
    lead_move_to_stage(lead_id=lead.pk, stage=Stage.OPPORTUNITY, by=rep)

    pending.refresh_from_db()
    assert (pending.status, pending.closed_by) == (HandOffStatus.ACCEPTED, rep)


def test_disqualifying_the_lead_rejects_the_pending_hand_off(pending, manager):
    lead_move_to_stage(lead_id=pending.lead_id, stage=Stage.DISQUALIFIED, by=manager, reason="Spam")

    pending.refresh_from_db()
    assert pending.status == HandOffStatus.REJECTED
    assert pending.reject_reason == "Moved to Disqualified: Spam"


# --- Speed to lead -------------------------------------------------------------------------


def test_first_logged_touch_records_speed_to_lead(pending, rep, django_capture_on_commit_callbacks):
    handed_off_at = timezone.now() - dt.timedelta(hours=3)
    HandOff.objects.filter(pk=pending.pk).update(created_at=handed_off_at)
    called_at = handed_off_at + dt.timedelta(minutes=42)

    touch = lead_log_touch(
        lead=pending.lead,
        by=rep,
        type=ActivityType.CALL,
        notes="Left a voicemail",
        occurred_at=called_at,
    )
    lead_log_touch(
        lead=pending.lead,
        by=rep,
        type=ActivityType.MEETING,
        occurred_at=called_at + dt.timedelta(hours=1),
    )

    pending.refresh_from_db()
    assert pending.first_touch_at == called_at
    assert pending.speed_to_lead == dt.timedelta(minutes=42)
    assert (touch.created_by, touch.source, touch.properties) == (
        rep,
        "crm",
        {"notes": "Left a voicemail"},
    )
    assert Activity.objects.filter(lead=pending.lead, type=ActivityType.CALL).count() == 1


def test_touch_before_the_hand_off_does_not_count(pending, rep):
    lead_log_touch(
        lead=pending.lead,
        by=rep,
        type=ActivityType.CALL,
        occurred_at=pending.created_at - dt.timedelta(days=2),
    )

    pending.refresh_from_db()
    assert pending.first_touch_at is None
    assert pending.speed_to_lead is None


def test_a_touch_posted_through_the_api_counts(pending, rep, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(rep).post(
            "/api/v1/activities/",
            {"lead": pending.lead_id, "type": "email_reply"},
            format="json",
        )

    assert response.status_code == 201, response.content
    pending.refresh_from_db()
    assert pending.first_touch_at == Activity.objects.get(pk=response.json()["id"]).occurred_at


def test_tracked_behaviour_is_not_a_touch(pending):
    activities_record(
        lead=pending.lead, activities=[Activity(type=ActivityType.PAGE_VIEW, url=PRICING)]
    )
    activities_record(lead=pending.lead, activities=[Activity(type=ActivityType.EMAIL_REPLY)])

    pending.refresh_from_db()
    assert pending.first_touch_at is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"type": ActivityType.PAGE_VIEW}, "type"),
        ({"type": ActivityType.NOTE}, "type"),
        ({"type": ActivityType.CALL, "notes": "x" * 5001}, "notes"),
        (
            {"type": ActivityType.CALL, "occurred_at": timezone.now() + dt.timedelta(days=1)},
            "occurred_at",
        ),
    ],
)
def test_bad_touch_is_refused_and_stores_nothing(pending, rep, fields, field):
    with pytest.raises(ValidationError) as refused:
        lead_log_touch(lead=pending.lead, by=rep, **fields)

    assert field in refused.value.message_dict
    assert not Activity.objects.filter(lead=pending.lead).exists()


def test_rep_cannot_log_a_touch_on_another_reps_lead(pending, other_rep):
    with pytest.raises(PermissionDenied):
        lead_log_touch(lead=pending.lead, by=other_rep, type=ActivityType.CALL)

    assert not Activity.objects.filter(lead=pending.lead).exists()


# --- Escalation ----------------------------------------------------------------------------


def test_overdue_hand_off_escalates_to_the_manager_once(
    pending, manager, sent_signals, django_capture_on_commit_callbacks
):
    due = pending.sla_due_at

    with django_capture_on_commit_callbacks(execute=True):
        early = handoffs_escalate_overdue(now=due - dt.timedelta(minutes=1))
    assert early == 0
    assert mail.outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        first = handoffs_escalate_overdue(now=due + dt.timedelta(minutes=1))
        again = handoffs_escalate_overdue(now=due + dt.timedelta(hours=5))

    pending.refresh_from_db()
    assert (first, again) == (1, 0)
    assert pending.escalated_to == manager
    assert pending.escalated_at == due + dt.timedelta(minutes=1)
    told = Notification.objects.get(kind=NotificationKind.ESCALATION)
    assert (told.user, told.lead) == (manager, pending.lead)
    assert [m.to for m in mail.outbox] == [[manager.email]]
    assert ("escalated", pending.pk) in sent_signals
    assert sent_signals.count(("escalated", pending.pk)) == 1


def test_beat_task_escalates_what_is_past_due(pending, manager, django_capture_on_commit_callbacks):
    HandOff.objects.filter(pk=pending.pk).update(
        sla_due_at=timezone.now() - dt.timedelta(minutes=1)
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert handoff_escalate_overdue.delay().get() == 1
        assert handoff_escalate_overdue.delay().get() == 0

    assert Notification.objects.filter(kind=NotificationKind.ESCALATION).count() == 1


@pytest.mark.parametrize("action", ["accepted", "touched"])
def test_accepted_or_touched_hand_off_does_not_escalate(pending, rep, action):
    if action == "accepted":
        handoff_accept(handoff=pending, by=rep)
    else:
        lead_log_touch(lead=pending.lead, by=rep, type=ActivityType.CALL)

    assert handoffs_escalate_overdue(now=pending.sla_due_at + dt.timedelta(days=1)) == 0
    assert not Notification.objects.filter(kind=NotificationKind.ESCALATION).exists()


def test_owner_without_a_manager_is_marked_escalated_once(pending, team):
    team.manager = None
    team.save()

    late = pending.sla_due_at + dt.timedelta(hours=1)
    assert handoffs_escalate_overdue(now=late) == 1
    assert handoffs_escalate_overdue(now=late) == 0

    pending.refresh_from_db()
    assert (pending.escalated_at, pending.escalated_to) == (late, None)


# --- Surge alert and rating ----------------------------------------------------------------


def test_surge_alert_reaches_the_owner_once_per_surge(rep, django_capture_on_commit_callbacks):
    model = active_model(mql_threshold=500, sql_threshold=900, surge_points=20, surge_hours=24)
    page_rule(model, 25, "/pricing")
    lead = LeadFactory(owner=rep)

    with django_capture_on_commit_callbacks(execute=True):
        activities_record(
            lead=lead, activities=[Activity(type=ActivityType.PAGE_VIEW, url=PRICING)]
        )
    with django_capture_on_commit_callbacks(execute=True):
        activities_record(
            lead=lead, activities=[Activity(type=ActivityType.PAGE_VIEW, url=PRICING)]
        )

    alert = Notification.objects.get(kind=NotificationKind.SURGE)
    assert (alert.user, alert.lead) == (rep, lead)
    assert "25 points in the last 24 hours" in alert.body
    assert [m.to for m in mail.outbox] == [[rep.email]]


def test_surge_on_an_unowned_lead_tells_nobody(django_capture_on_commit_callbacks):
    model = active_model(mql_threshold=500, sql_threshold=900, surge_points=20)
    page_rule(model, 25, "/pricing")
    lead = LeadFactory()

    with django_capture_on_commit_callbacks(execute=True):
        activities_record(
            lead=lead, activities=[Activity(type=ActivityType.PAGE_VIEW, url=PRICING)]
        )

    assert not Notification.objects.exists()


def test_rep_rates_a_lead_and_can_change_the_verdict(rep):
    lead = LeadFactory(owner=rep)

    lead_rate_quality(lead=lead, by=rep, rating="good")
    rating = lead_rate_quality(lead=lead, by=rep, rating="not_fit", reason="  Competitor  ")

    assert LeadRating.objects.get() == rating
    assert (rating.rating, rating.reason, rating.by) == ("not_fit", "Competitor", rep)


@pytest.mark.parametrize(
    ("rating", "reason", "field"),
    [
        ("not_fit", "", "reason"),
        ("not_fit", "  ", "reason"),
        ("great", "", "rating"),
        ("good", "x" * 501, "reason"),
    ],
)
def test_bad_rating_is_refused(rep, rating, reason, field):
    lead = LeadFactory(owner=rep)

    with pytest.raises(ValidationError) as refused:
        lead_rate_quality(lead=lead, by=rep, rating=rating, reason=reason)

    assert field in refused.value.message_dict
    assert not LeadRating.objects.exists()


def test_rep_cannot_rate_another_reps_lead(rep, other_rep, outsider):
    lead = LeadFactory(owner=rep)

    for person in (other_rep, outsider):
        with pytest.raises(PermissionDenied):
            lead_rate_quality(lead=lead, by=person, rating="good")

    assert not LeadRating.objects.exists()


# --- Admin and configuration ---------------------------------------------------------------


def test_admin_lists_hand_offs_read_only_with_a_status_filter(client, admin_user, pending):
    client.force_login(admin_user)

    listed = client.get("/admin/leads/handoff/", {"status__exact": "pending"})
    detail = client.get(f"/admin/leads/handoff/{pending.pk}/change/")

    assert listed.status_code == 200
    assert str(pending.lead) in listed.content.decode()
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    assert client.get("/admin/leads/handoff/add/").status_code == 403


def test_rep_sees_only_their_hand_offs_in_the_admin(client, pending, other_rep):
    other_rep.is_staff = True
    other_rep.save()
    client.force_login(other_rep)

    response = client.get("/admin/leads/handoff/")

    assert response.status_code == 200
    assert str(pending.lead) not in response.content.decode()


def test_bad_hand_off_settings_fail_the_system_check(settings):
    from leads.checks import check_handoff_settings

    assert check_handoff_settings() == []
    settings.HANDOFF_STAGE = "opportunity"
    settings.HANDOFF_SLA_HOURS = 0

    assert [e.id for e in check_handoff_settings()] == ["leads.E001", "leads.E002"]


def test_rejected_hand_off_needs_a_reason_in_the_database(pending):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        HandOff.objects.filter(pk=pending.pk).update(
            status=HandOffStatus.REJECTED, rejected_at=timezone.now()
        )


def test_hand_off_settings_come_from_the_environment(monkeypatch, tmp_path):
    from tests.test_settings import load_settings

    loaded = load_settings(monkeypatch, tmp_path, HANDOFF_STAGE="mql", HANDOFF_SLA_HOURS="8")

    assert (loaded.HANDOFF_STAGE, loaded.HANDOFF_SLA_HOURS) == ("mql", 8)
    beat = {entry["task"] for entry in loaded.CELERY_BEAT_SCHEDULE.values()}
    assert {"leads.tasks.handoff_escalate_overdue", "leads.tasks.handoff_resume_stalled"} <= beat

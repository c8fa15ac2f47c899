"""Who enters and leaves nurture sequences: criteria, track switching driven by real
scoring, every exit condition, the hourly sweep and the one-active-enrollment rule."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from leads.activities import activities_record
from leads.models import Activity, ActivityType, Band, EmailStatus, ProductLine, Source, Stage
from leads.stages import lead_move_to_stage
from nurturing import enrollment
from nurturing.due_steps import enrollments_process_due
from nurturing.enrollment import (
    EnrollmentError,
    enrollment_start,
    lead_sync,
    sequences_enroll_matching,
)
from nurturing.models import (
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    ExitReason,
    Sequence,
    Suppression,
)
from scoring.decay import scores_decay
from tests.factories import LeadFactory, active_model, fit_rule, page_rule
from tests.test_nurture_sending import MONDAY, email_sequence

pytestmark = pytest.mark.django_db

PRICING = "https://hotlist.example/pricing"


@pytest.fixture
def tracks() -> tuple[Sequence, Sequence]:
    """The cold track and the warm track, as the demo seeds them (simplified)."""
    cold = email_sequence("Cold: education", bands=[Band.COLD], priority=10)
    warm = email_sequence("Warm: case studies", bands=[Band.WARM], priority=20)
    return cold, warm


@pytest.fixture
def scoring():
    """Germany +10, a pricing view +25: one view makes a German lead warm (35 ≥ 30)."""
    model = active_model(warm_from=30, hot_from=80, mql_threshold=60, sql_threshold=90)
    fit_rule(model, 10, "country", "equals", "DE")
    page_rule(model, 25, "/pricing")
    return model


def active_sequences(lead) -> list[str]:
    return list(
        Enrollment.objects.active().filter(lead=lead).values_list("sequence__name", flat=True)
    )


def test_the_score_moving_switches_the_track(tracks, scoring, django_capture_on_commit_callbacks):
    cold, warm = tracks
    # Given a new German lead, scored cold and put on the cold track by the hourly sweep
    lead = LeadFactory(country="DE")
    with django_capture_on_commit_callbacks(execute=True):
        activities_record(
            lead=lead, activities=[Activity(type=ActivityType.PAGE_VIEW, url="https://x.example")]
        )
    lead.refresh_from_db()
    assert (lead.score, lead.band) == (10, Band.COLD)
    assert sequences_enroll_matching() == 1
    assert active_sequences(lead) == [cold.name]

    # When a pricing view makes it warm (scored by the engine, band_changed announced)
    with django_capture_on_commit_callbacks(execute=True):
        activities_record(
            lead=lead, activities=[Activity(type=ActivityType.PAGE_VIEW, url=PRICING)]
        )

    # Then it left the cold track for the warm one
    lead.refresh_from_db()
    assert (lead.score, lead.band) == (35, Band.WARM)
    assert active_sequences(lead) == [warm.name]
    left = Enrollment.objects.get(lead=lead, sequence=cold)
    assert (left.status, left.exit_reason) == (EnrollmentStatus.EXITED, ExitReason.TRACK)
    assert Enrollment.objects.get(lead=lead, sequence=warm).source == EnrollmentSource.AUTO


def test_the_nightly_decay_switches_many_leads_tracks_with_one_task(
    tracks, scoring, monkeypatch, django_capture_on_commit_callbacks
):
    cold, warm = tracks
    scoring.decay_half_life_days = 7
    scoring.save()
    # Given three German leads a pricing view made warm, each put on the warm track
    people = [LeadFactory(country="DE") for _ in range(3)]
    for lead in people:
        with django_capture_on_commit_callbacks(execute=True):
            activities_record(
                lead=lead, activities=[Activity(type=ActivityType.PAGE_VIEW, url=PRICING)]
            )
    assert [active_sequences(lead) for lead in people] == [[warm.name]] * 3
    queued: list[tuple[str, tuple]] = []
    real_enqueue = enrollment.task_enqueue

    def enqueue(task, *args, **kwargs):
        queued.append((task, args))
        return real_enqueue(task, *args, **kwargs)

    monkeypatch.setattr(enrollment, "task_enqueue", enqueue)

    # When the nightly decay runs four weeks later (25 -> 1.6 engagement: 12, cold)
    with django_capture_on_commit_callbacks(execute=True):
        scores_decay(now=timezone.now() + dt.timedelta(days=28))

    # Then one task synced the three leads, and each left the warm track for the cold one
    assert queued == [("nurturing.tasks.sync_leads", ([lead.pk for lead in people],))]
    assert [active_sequences(lead) for lead in people] == [[cold.name]] * 3
    for lead in people:
        left = Enrollment.objects.get(lead=lead, sequence=warm)
        assert (left.status, left.exit_reason) == (EnrollmentStatus.EXITED, ExitReason.TRACK)


def test_entry_criteria_pick_the_matching_sequence_by_priority():
    line = ProductLine.objects.create(name="Fleet", slug="fleet")
    broad = email_sequence("Anyone cold", bands=[Band.COLD], priority=10)
    narrow = email_sequence(
        "Fleet webinar leads",
        bands=[Band.COLD],
        sources=[Source.EVENT],
        min_score=5,
        max_score=20,
        priority=50,
    )
    narrow.product_lines.add(line)
    fits = LeadFactory(source=Source.EVENT, score=10)
    fits.product_interests.add(line)
    other_source = LeadFactory(source=Source.WEBSITE, score=10)
    other_source.product_interests.add(line)
    too_high = LeadFactory(source=Source.EVENT, score=25)
    too_high.product_interests.add(line)
    no_interest = LeadFactory(source=Source.EVENT, score=10)
    customer = LeadFactory(stage=Stage.CUSTOMER)

    for lead in (fits, other_source, too_high, no_interest, customer):
        lead_sync(lead_id=lead.pk)

    assert active_sequences(fits) == [narrow.name]
    assert active_sequences(other_source) == [broad.name]
    assert active_sequences(too_high) == [broad.name]
    assert active_sequences(no_interest) == [broad.name]
    assert active_sequences(customer) == []


def test_reengagement_takes_past_customers_gone_quiet():
    sequence = email_sequence(
        "We miss you", stages=[Stage.CUSTOMER], silent_days=90, exit_stages=[]
    )
    now = timezone.now()
    quiet = LeadFactory(stage=Stage.CUSTOMER, last_activity_at=now - dt.timedelta(days=120))
    busy = LeadFactory(stage=Stage.CUSTOMER, last_activity_at=now - dt.timedelta(days=10))
    prospect = LeadFactory(stage=Stage.NEW, last_activity_at=now - dt.timedelta(days=120))

    assert sequences_enroll_matching(now=now) == 1

    assert active_sequences(quiet) == [sequence.name]
    assert active_sequences(busy) == active_sequences(prospect) == []
    # The sweep is idempotent
    assert sequences_enroll_matching(now=now) == 0


def test_reaching_an_exit_stage_ends_the_enrollment(tracks, django_capture_on_commit_callbacks):
    cold, _ = tracks
    lead = LeadFactory()
    enrollment, _ = enrollment_start(lead=lead, sequence=cold, now=MONDAY)

    with django_capture_on_commit_callbacks(execute=True):
        lead_move_to_stage(lead_id=lead.pk, stage=Stage.SQL, reason="Qualified on a call")

    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == (
        EnrollmentStatus.EXITED,
        ExitReason.STAGE,
    )


def test_an_exit_stage_reached_while_a_step_waits_stops_it_at_processing():
    # The sync may be late (a lost message): the due step checks the criteria itself
    sequence = email_sequence("Nurture", steps=1)
    lead = LeadFactory()
    enrollment, _ = enrollment_start(lead=lead, sequence=sequence, now=MONDAY)
    type(lead).objects.filter(pk=lead.pk).update(stage=Stage.OPPORTUNITY)

    enrollments_process_due(now=MONDAY)

    enrollment.refresh_from_db()
    assert enrollment.exit_reason == ExitReason.STAGE
    assert mail.outbox == []


def test_the_maximum_duration_ends_the_enrollment():
    sequence = email_sequence("Short B2C cycle", steps=3, max_duration_days=5)
    lead = LeadFactory()
    enrollment, _ = enrollment_start(lead=lead, sequence=sequence, now=MONDAY)
    enrollments_process_due(now=MONDAY)
    enrollments_process_due(now=MONDAY + dt.timedelta(days=3))
    enrollment.refresh_from_db()
    # Step 3 would be due on day 6: the deadline on day 5 comes first
    assert enrollment.next_due_at == MONDAY + dt.timedelta(days=5)

    enrollments_process_due(now=MONDAY + dt.timedelta(days=5))

    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == (
        EnrollmentStatus.EXITED,
        ExitReason.EXPIRED,
    )
    assert enrollment.messages.count() == 2


def test_a_reply_logged_on_the_lead_ends_enrollments_that_stop_on_replies():
    stops = email_sequence("Stops on reply")
    goes_on = email_sequence("Newsletter", exit_on_reply=False)
    lead = LeadFactory()
    enrollment_start(lead=lead, sequence=stops, now=MONDAY)
    enrollment_start(lead=lead, sequence=goes_on, now=MONDAY)

    activities_record(lead=lead, activities=[Activity(type=ActivityType.EMAIL_REPLY)])

    assert active_sequences(lead) == [goes_on.name]
    assert Enrollment.objects.get(sequence=stops).exit_reason == ExitReason.REPLIED


def test_other_activities_end_nothing():
    sequence = email_sequence("Stops on reply")
    lead = LeadFactory()
    enrollment_start(lead=lead, sequence=sequence, now=MONDAY)

    activities_record(lead=lead, activities=[Activity(type=ActivityType.PAGE_VIEW, url=PRICING)])

    assert active_sequences(lead) == [sequence.name]


def test_one_active_enrollment_per_lead_and_sequence_is_a_database_rule():
    sequence = email_sequence()
    lead = LeadFactory()
    first, created = enrollment_start(lead=lead, sequence=sequence)
    again, created_again = enrollment_start(lead=lead, sequence=sequence)
    assert created
    assert not created_again
    assert again.pk == first.pk

    with pytest.raises(IntegrityError), transaction.atomic():
        Enrollment.objects.create(lead=lead, sequence=sequence)

    # Once it ended, the lead may be enrolled again
    Enrollment.objects.filter(pk=first.pk).update(
        status=EnrollmentStatus.EXITED, exit_reason=ExitReason.MANUAL, ended_at=timezone.now()
    )
    _, created = enrollment_start(lead=lead, sequence=sequence)
    assert created


def test_unsubscribed_bounced_and_suppressed_leads_are_never_enrolled():
    sequence = email_sequence(bands=[Band.COLD])
    unsubscribed = LeadFactory(email_status=EmailStatus.UNSUBSCRIBED)
    bounced = LeadFactory(email_status=EmailStatus.BOUNCED)
    suppressed = LeadFactory()
    Suppression.objects.create(email=suppressed.email.upper(), reason="manual")

    for lead in (unsubscribed, bounced, suppressed):
        with pytest.raises(EnrollmentError):
            enrollment_start(lead=lead, sequence=sequence)
        assert lead_sync(lead_id=lead.pk) is None
    assert sequences_enroll_matching() == 0
    assert not Enrollment.objects.exists()


def test_a_paused_sequence_takes_no_one():
    sequence = email_sequence(status="paused")
    lead = LeadFactory()
    with pytest.raises(EnrollmentError):
        enrollment_start(lead=lead, sequence=sequence)
    assert sequences_enroll_matching() == 0


def test_a_completed_sequence_is_not_entered_again_automatically():
    sequence = email_sequence("Once", steps=1, bands=[Band.COLD])
    lead = LeadFactory()
    sequences_enroll_matching(now=MONDAY)
    enrollments_process_due(now=MONDAY)
    enrollments_process_due(now=MONDAY)
    assert Enrollment.objects.get().status == EnrollmentStatus.COMPLETED

    assert sequences_enroll_matching(now=MONDAY) == 0
    assert lead_sync(lead_id=lead.pk, now=MONDAY) is None
    assert active_sequences(lead) == []
    assert sequence.enrollments.count() == 1


def test_manual_enrollments_stay_when_the_track_changes(tracks):
    cold, warm = tracks
    lead = LeadFactory(band=Band.COLD)
    manual, _ = enrollment_start(lead=lead, sequence=cold)
    type(lead).objects.filter(pk=lead.pk).update(band=Band.WARM)

    lead_sync(lead_id=lead.pk)

    manual.refresh_from_db()
    assert manual.is_active
    assert sorted(active_sequences(lead)) == sorted([cold.name, warm.name])

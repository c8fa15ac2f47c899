"""Nurture steps over controlled time: delays, send windows, the frequency cap, rendering,
the sender, headers, task steps and what a failed send does."""

from __future__ import annotations

import datetime as dt
import smtplib

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from crm.celery import app as celery_app
from leads.models import Lead, Task
from nurturing import sending
from nurturing.due_steps import enrollments_process_due
from nurturing.enrollment import enrollment_start
from nurturing.models import (
    Enrollment,
    EnrollmentStatus,
    ExitReason,
    Message,
    MessageStatus,
    Sequence,
    Step,
    StepKind,
    WindowZone,
)
from nurturing.personalize import template_errors
from nurturing.tasks import send_message
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

# A Monday, 09:00 UTC.
MONDAY = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC)


def email_sequence(name: str = "Cold education", steps: int = 2, **fields) -> Sequence:
    """An active sequence of ``steps`` emails, the first at once, then every 3 days."""
    sequence = Sequence.objects.create(name=name, **fields)
    for position in range(1, steps + 1):
        Step.objects.create(
            sequence=sequence,
            position=position,
            delay_days=0 if position == 1 else 3,
            subject=f"Step {position} for {{{{ first_name }}}}",
            body_text=f"Hello {{{{ first_name }}}}, read https://hotlist.example/guide/{position}",
            body_html=(
                f"<p>Hello {{{{ first_name }}}} from {{{{ company_name }}}}</p>"
                f'<a href="https://hotlist.example/guide/{position}?a=1&b=2">Guide</a>'
            ),
        )
    return sequence


def run_due(now: dt.datetime, capture) -> int:
    """Process due steps at ``now`` and send what they queued (eager tasks, after commit)."""
    with capture(execute=True):
        return enrollments_process_due(now=now)


def test_first_step_goes_out_at_once_and_the_next_after_its_delay(
    django_capture_on_commit_callbacks,
):
    lead = LeadFactory(first_name="Ada")
    sequence = email_sequence()
    enrollment, created = enrollment_start(lead=lead, sequence=sequence, now=MONDAY)
    assert created

    run_due(MONDAY, django_capture_on_commit_callbacks)

    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Step 1 for Ada"
    enrollment.refresh_from_db()
    assert enrollment.next_position == 2
    assert enrollment.next_due_at == MONDAY + dt.timedelta(days=3)

    # Two days later nothing is due; three days later step 2 goes out and the sequence ends.
    assert run_due(MONDAY + dt.timedelta(days=2), django_capture_on_commit_callbacks) == 0
    assert len(mail.outbox) == 1
    run_due(MONDAY + dt.timedelta(days=3), django_capture_on_commit_callbacks)
    assert [m.subject for m in mail.outbox] == ["Step 1 for Ada", "Step 2 for Ada"]
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.COMPLETED
    assert enrollment.ended_at == MONDAY + dt.timedelta(days=3)
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 2


def test_a_step_outside_its_send_window_waits_for_the_window_in_the_leads_zone(
    django_capture_on_commit_callbacks,
):
    # Given a step sent only on weekdays between 9 and 11 in the lead's time zone
    lead = LeadFactory(country="US")  # America/New_York, UTC-4 in June
    sequence = email_sequence(steps=1)
    Step.objects.filter(sequence=sequence).update(
        window_weekdays=[0, 1, 2, 3, 4], window_start_hour=9, window_end_hour=11
    )
    enrollment, _ = enrollment_start(lead=lead, sequence=sequence, now=MONDAY)

    # When beat runs at 09:00 UTC (05:00 in New York)
    run_due(MONDAY, django_capture_on_commit_callbacks)

    # Then nothing is sent and the step waits for 09:00 New York time (13:00 UTC)
    assert mail.outbox == []
    enrollment.refresh_from_db()
    assert enrollment.next_due_at == dt.datetime(2025, 6, 2, 13, 0, tzinfo=dt.UTC)
    assert enrollment.next_position == 1

    run_due(enrollment.next_due_at, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1


def test_a_window_in_the_accounts_zone_skips_the_weekend(
    settings, django_capture_on_commit_callbacks
):
    settings.TIME_ZONE = "Europe/Berlin"
    lead = LeadFactory(country="US")
    sequence = email_sequence(steps=1)
    Step.objects.filter(sequence=sequence).update(
        window_weekdays=[0, 1, 2, 3, 4],
        window_start_hour=8,
        window_end_hour=17,
        window_zone=WindowZone.ACCOUNT,
    )
    saturday = dt.datetime(2025, 6, 7, 12, 0, tzinfo=dt.UTC)
    enrollment, _ = enrollment_start(lead=lead, sequence=sequence, now=saturday)

    run_due(saturday, django_capture_on_commit_callbacks)

    enrollment.refresh_from_db()
    # Monday 08:00 in Berlin (UTC+2 in summer)
    assert enrollment.next_due_at == dt.datetime(2025, 6, 9, 6, 0, tzinfo=dt.UTC)
    assert mail.outbox == []


def test_the_frequency_cap_holds_a_second_sequence_back(
    settings, django_capture_on_commit_callbacks
):
    # Given one lead in two sequences whose first steps are due at the same moment
    settings.NURTURE_FREQUENCY_CAP_HOURS = 48
    lead = LeadFactory()
    first = email_sequence("Education", steps=1)
    second = email_sequence("Webinars", steps=1)
    enrollment_start(lead=lead, sequence=first, now=MONDAY)
    held, _ = enrollment_start(lead=lead, sequence=second, now=MONDAY)

    # When beat runs
    run_due(MONDAY, django_capture_on_commit_callbacks)

    # Then one email went out and the other waits until the cap has passed
    assert len(mail.outbox) == 1
    held.refresh_from_db()
    assert held.status == EnrollmentStatus.ACTIVE
    assert held.next_due_at == MONDAY + dt.timedelta(hours=48)
    assert run_due(MONDAY + dt.timedelta(hours=47), django_capture_on_commit_callbacks) == 0
    run_due(MONDAY + dt.timedelta(hours=48), django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 2


def test_without_a_cap_both_sequences_send(settings, django_capture_on_commit_callbacks):
    settings.NURTURE_FREQUENCY_CAP_HOURS = 0
    lead = LeadFactory()
    enrollment_start(lead=lead, sequence=email_sequence("A", steps=1), now=MONDAY)
    enrollment_start(lead=lead, sequence=email_sequence("B", steps=1), now=MONDAY)

    run_due(MONDAY, django_capture_on_commit_callbacks)

    assert len(mail.outbox) == 2


def test_personalization_escapes_html_and_reads_only_the_small_context(
    django_capture_on_commit_callbacks,
):
    lead = LeadFactory(first_name="<script>alert(1)</script>", company__name="Fish & Chips")
    sequence = Sequence.objects.create(name="Escaping")
    Step.objects.create(
        sequence=sequence,
        subject="Hi {{ first_name }}",
        body_text="Hi {{ first_name }} {{ email }}{{ lead.email }}",
        body_html="<p>Hi {{ first_name }} of {{ company_name }}</p>",
    )
    enrollment_start(lead=lead, sequence=sequence, now=MONDAY)

    run_due(MONDAY, django_capture_on_commit_callbacks)

    sent = mail.outbox[0]
    html = sent.alternatives[0][0]
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Fish &amp; Chips" in html
    # The text body is not HTML: it keeps the name as typed, but nothing outside the context
    assert sent.body.split("\n")[0] == "Hi <script>alert(1)</script>"
    assert lead.email not in sent.body
    assert sent.subject == "Hi <script>alert(1)</script>"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hi {{ first_name }}{% endif %}", "Template error"),
        ("{% if first_name %}no end", "Template error"),
        ("{% load static %}", "not available"),
        ("{% include 'base.html' %}", "not available"),
        ("{% debug %}", "not available"),
        ("{{ first_name|nosuchfilter }}", "Template error"),
    ],
)
def test_templates_that_cannot_be_used_are_refused(source, expected):
    errors = template_errors(source)
    assert errors
    assert expected in errors[0]
    step = Step(sequence=Sequence(name="x"), subject=source, body_text="Hello")
    with pytest.raises(ValidationError) as raised:
        step.clean()
    assert "subject" in raised.value.message_dict


def test_links_are_tracked_and_only_those_are_stored(django_capture_on_commit_callbacks):
    lead = LeadFactory()
    enrollment_start(lead=lead, sequence=email_sequence(steps=1), now=MONDAY)

    run_due(MONDAY, django_capture_on_commit_callbacks)

    message = Message.objects.get()
    assert message.links == [
        "https://hotlist.example/guide/1?a=1&b=2",
        "https://hotlist.example/guide/1",
    ]
    sent = mail.outbox[0]
    html = sent.alternatives[0][0]
    assert "https://hotlist.example/guide/1" not in html
    assert "/n/c/" in html
    assert "/n/o/" in html  # the open pixel
    assert "/n/c/" in sent.body
    assert "/n/u/" in sent.body  # an unsubscribe link is always there


def test_sender_is_the_owner_when_assigned_else_the_default(
    settings, rep, django_capture_on_commit_callbacks
):
    settings.NURTURE_DEFAULT_FROM = "Fleet team <hello@fleet.example>"
    rep.first_name, rep.last_name = "Rita", "Rep"
    rep.save()
    owned, pooled = LeadFactory(owner=rep), LeadFactory()
    sequence = email_sequence(steps=1)
    enrollment_start(lead=owned, sequence=sequence, now=MONDAY)
    enrollment_start(lead=pooled, sequence=sequence, now=MONDAY)

    run_due(MONDAY, django_capture_on_commit_callbacks)

    senders = {m.to[0]: m.from_email for m in mail.outbox}
    assert senders == {
        owned.email: f"Rita Rep <{rep.email}>",
        pooled.email: "Fleet team <hello@fleet.example>",
    }


def test_emails_carry_one_click_unsubscribe_headers(django_capture_on_commit_callbacks):
    lead = LeadFactory()
    enrollment_start(lead=lead, sequence=email_sequence(steps=1), now=MONDAY)

    run_due(MONDAY, django_capture_on_commit_callbacks)

    message = mail.outbox[0].message()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<http://localhost:8000/n/u/")
    stored = Message.objects.get()
    assert message["Message-ID"] == stored.provider_message_id


def test_a_task_step_gives_the_owner_a_task_and_sends_nothing(
    rep, django_capture_on_commit_callbacks
):
    lead = LeadFactory(owner=rep, first_name="Ada")
    sequence = Sequence.objects.create(name="Call after webinar")
    Step.objects.create(sequence=sequence, kind=StepKind.TASK, subject="Call {{ first_name }}")
    enrollment, _ = enrollment_start(lead=lead, sequence=sequence, now=MONDAY)

    run_due(MONDAY, django_capture_on_commit_callbacks)
    run_due(MONDAY, django_capture_on_commit_callbacks)

    assert mail.outbox == []
    assert list(Task.objects.values_list("assignee", "title", "lead")) == [
        (rep.pk, "Call Ada", lead.pk)
    ]
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.COMPLETED


def test_a_repeated_send_task_sends_once(django_capture_on_commit_callbacks):
    lead = LeadFactory()
    enrollment_start(lead=lead, sequence=email_sequence(steps=1), now=MONDAY)
    run_due(MONDAY, django_capture_on_commit_callbacks)
    message = Message.objects.get()

    send_message.delay(message.pk)
    send_message.delay(message.pk)

    assert len(mail.outbox) == 1
    message.refresh_from_db()
    assert (message.status, message.attempts) == (MessageStatus.SENT, 1)


class RefusingBackend:
    """An email backend that fails as a mail server would; set ``error`` per test."""

    error: Exception = smtplib.SMTPServerDisconnected("gone")
    calls = 0

    def __init__(self, *args, **kwargs) -> None:
        pass

    def send_messages(self, messages) -> int:
        RefusingBackend.calls += 1
        raise RefusingBackend.error


@pytest.fixture
def refusing(settings):
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"
    RefusingBackend.calls = 0
    return RefusingBackend


def test_a_permanent_refusal_fails_the_message_and_ends_the_enrollment(
    refusing, django_capture_on_commit_callbacks
):
    refusing.error = smtplib.SMTPRecipientsRefused({"x@y": (550, b"No such user")})
    lead = LeadFactory()
    enrollment, _ = enrollment_start(lead=lead, sequence=email_sequence(), now=MONDAY)

    run_due(MONDAY, django_capture_on_commit_callbacks)

    message = Message.objects.get()
    assert message.status == MessageStatus.FAILED
    assert "No such user" in message.error
    assert refusing.calls == 1  # not retried
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == (
        EnrollmentStatus.EXITED,
        ExitReason.FAILED,
    )


def test_transient_errors_retry_with_backoff_then_record_the_failure(
    refusing, monkeypatch, django_capture_on_commit_callbacks
):
    refusing.error = smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
    countdowns = []
    original_retry = send_message.retry

    def recording_retry(*args, **kwargs):
        countdowns.append(kwargs.get("countdown"))
        return original_retry(*args, **kwargs)

    monkeypatch.setattr(send_message, "retry", recording_retry)
    # Eager retries only chain when eager errors do not propagate, as on a worker.
    monkeypatch.setitem(celery_app.conf, "task_eager_propagates", False)
    lead = LeadFactory()
    enrollment_start(lead=lead, sequence=email_sequence(steps=1), now=MONDAY)

    run_due(MONDAY, django_capture_on_commit_callbacks)

    message = Message.objects.get()
    assert refusing.calls == send_message.max_retries + 1
    assert countdowns == [min(30 * 2**n, 3600) for n in range(send_message.max_retries)]
    assert message.status == MessageStatus.FAILED
    assert message.attempts == send_message.max_retries + 1


def test_a_transient_error_then_success_sends_once(settings, django_capture_on_commit_callbacks):
    lead = LeadFactory()
    enrollment_start(lead=lead, sequence=email_sequence(steps=1), now=MONDAY)
    with django_capture_on_commit_callbacks(execute=False):
        enrollments_process_due(now=MONDAY)
    message = Message.objects.get()
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"
    RefusingBackend.error = smtplib.SMTPConnectError(421, b"Try later")
    with pytest.raises(sending.TransientSendError):
        sending.message_send(message_id=message.pk)
    message.refresh_from_db()
    assert (message.status, message.claimed_at, message.attempts) == (MessageStatus.QUEUED, None, 1)

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert sending.message_send(message_id=message.pk) == MessageStatus.SENT
    assert len(mail.outbox) == 1


def test_a_paused_sequence_waits_and_resumes(django_capture_on_commit_callbacks):
    lead = LeadFactory()
    sequence = email_sequence(steps=1)
    enrollment_start(lead=lead, sequence=sequence, now=MONDAY)
    Sequence.objects.filter(pk=sequence.pk).update(status="paused")

    assert run_due(MONDAY, django_capture_on_commit_callbacks) == 0
    Sequence.objects.filter(pk=sequence.pk).update(status="active")
    assert run_due(MONDAY, django_capture_on_commit_callbacks) == 1
    assert len(mail.outbox) == 1


def test_a_message_queued_but_lost_is_queued_again_by_beat(django_capture_on_commit_callbacks):
    lead = LeadFactory()
    enrollment_start(lead=lead, sequence=email_sequence(steps=1), now=MONDAY)
    with django_capture_on_commit_callbacks(execute=False):  # the broker lost the message
        enrollments_process_due(now=MONDAY)
    assert mail.outbox == []

    assert sending.messages_resume_stalled(now=MONDAY + dt.timedelta(minutes=1)) == 0
    assert sending.messages_resume_stalled(now=MONDAY + dt.timedelta(minutes=6)) == 1
    assert len(mail.outbox) == 1
    assert Lead.objects.count() == 1
    assert Enrollment.objects.get().status == EnrollmentStatus.COMPLETED

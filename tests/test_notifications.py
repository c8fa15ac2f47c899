"""In-app notifications, each emailed once after commit, and read by their owner only."""

from __future__ import annotations

import datetime as dt
import smtplib

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from leads import tasks
from leads.handoff_models import HandOff, HandOffStatus, Notification, NotificationKind
from leads.models import Stage
from leads.notifications import (
    notification_email_send,
    notifications_email_resume,
    notifications_mark_read,
    notify,
)
from leads.stages import stage_change_record
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


class RefusingBackend(BaseEmailBackend):
    """An SMTP server that is down."""

    def send_messages(self, messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


def note(user, **fields) -> Notification:
    defaults = {
        "kind": NotificationKind.TASK,
        "title": "Call back",
        "body": "Ada asked to call.",
    }
    return notify(user=user, **{**defaults, **fields})


def test_notification_is_emailed_once_after_commit(rep, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        notification = note(rep, url="/leads/1/")
        assert mail.outbox == []

    assert len(callbacks) == 1
    assert [m.to for m in mail.outbox] == [[rep.email]]
    message = mail.outbox[0]
    assert message.subject == "Call back"
    assert "Ada asked to call." in message.body
    notification.refresh_from_db()
    assert notification.emailed_at is not None
    assert notification.read_at is None


def test_rolled_back_notification_is_neither_kept_nor_emailed(
    rep, django_capture_on_commit_callbacks
):
    def fail_after_notifying() -> None:
        with transaction.atomic():
            note(rep)
            raise RuntimeError("the hand-off failed")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        fail_after_notifying()

    assert not Notification.objects.exists()
    assert mail.outbox == []


def test_email_can_be_left_out(rep, django_capture_on_commit_callbacks):
    rep.email = ""
    rep.save()

    with django_capture_on_commit_callbacks(execute=True):
        note(rep)
        note(rep, email=False)

    assert Notification.objects.filter(user=rep).count() == 2
    assert mail.outbox == []


def test_a_repeated_send_mails_once(rep):
    notification = note(rep)

    assert notification_email_send(notification_id=notification.pk) is True
    assert notification_email_send(notification_id=notification.pk) is False
    assert len(mail.outbox) == 1


def test_failed_send_releases_the_claim_for_the_retry(rep, settings):
    notification = note(rep)
    settings.EMAIL_BACKEND = "tests.test_notifications.RefusingBackend"

    with pytest.raises(smtplib.SMTPException):
        notification_email_send(notification_id=notification.pk)
    notification.refresh_from_db()
    assert notification.emailed_at is None

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert notification_email_send(notification_id=notification.pk) is True
    assert len(mail.outbox) == 1


def test_email_task_retries_smtp_errors():
    assert smtplib.SMTPException in tasks.send_notification_email.autoretry_for
    from crm.celery import app

    route = app.amqp.router.route({}, tasks.send_notification_email.name)
    assert route["queue"].name == "email"


def test_broker_outage_keeps_the_notification(rep, monkeypatch, django_capture_on_commit_callbacks):
    def broker_down(*args, **kwargs):
        raise KombuOperationalError("connection refused")

    monkeypatch.setattr(tasks.send_notification_email, "delay", broker_down)

    with django_capture_on_commit_callbacks(execute=True):
        notification = note(rep)

    assert Notification.objects.get() == notification
    assert mail.outbox == []


def test_email_not_queued_while_the_broker_was_down_is_sent_once_by_the_sweeper(
    rep, monkeypatch, django_capture_on_commit_callbacks
):
    # Given a notification whose email could not be queued
    def broker_down(*args, **kwargs):
        raise KombuOperationalError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(tasks.send_notification_email, "delay", broker_down)
        with django_capture_on_commit_callbacks(execute=True):
            notification = note(rep)
    assert mail.outbox == []

    # When the broker is back and beat's sweeper runs, at once and a few minutes later
    soon = timezone.now() + dt.timedelta(seconds=30)
    later = timezone.now() + dt.timedelta(minutes=5)
    assert notifications_email_resume(now=soon) == 0
    assert notifications_email_resume(now=later) == 1

    # Then the email went out once, and nothing is left for the sweeper
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [rep.email]
    assert notifications_email_resume(now=later) == 0
    notification.refresh_from_db()
    assert notification.emailed_at is not None


def test_sweeper_leaves_sent_emails_and_notifications_without_email_alone(
    rep, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        note(rep)
        note(rep, email=False)
    assert len(mail.outbox) == 1

    assert notifications_email_resume(now=timezone.now() + dt.timedelta(hours=1)) == 0
    assert len(mail.outbox) == 1


def test_user_text_is_escaped_in_the_html_email(rep, django_capture_on_commit_callbacks):
    lead = LeadFactory(first_name="<script>alert(1)</script>", owner=rep)

    with django_capture_on_commit_callbacks(execute=True):
        notify(
            user=rep,
            kind=NotificationKind.SURGE,
            title=f"{lead} is surging",
            body=f"{lead} <b>jumped</b>",
            lead=lead,
            url=lead.get_absolute_url(),
        )

    html = mail.outbox[0].alternatives[0][0]
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;jumped&lt;/b&gt;" in html
    # The plain-text part is not HTML: it carries the text as typed
    assert "<script>alert(1)</script>" in mail.outbox[0].body


def test_email_link_is_absolute(rep, settings, django_capture_on_commit_callbacks):
    settings.SITE_URL = "https://crm.example.com"

    with django_capture_on_commit_callbacks(execute=True):
        note(rep, url="/leads/7/")

    assert "https://crm.example.com/leads/7/" in mail.outbox[0].body


def test_mark_read_touches_only_the_users_own_unread(rep, other_rep):
    mine = [note(rep, email=False) for _ in range(3)]
    theirs = note(other_rep, email=False)

    assert notifications_mark_read(user=rep, ids=[mine[0].pk, theirs.pk]) == 1
    assert list(Notification.objects.filter(user=rep).unread().order_by("pk")) == mine[1:]
    assert Notification.objects.filter(user=other_rep).unread().get() == theirs

    assert notifications_mark_read(user=rep) == 2
    assert notifications_mark_read(user=rep) == 0
    assert not Notification.objects.filter(user=rep).unread().exists()
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_awaiting_lists_the_users_pending_hand_offs_by_deadline(rep, other_rep):
    now = timezone.now()

    def handoff(owner, hours: int, status=HandOffStatus.PENDING) -> HandOff:
        lead = LeadFactory(owner=owner, stage=Stage.SQL)
        change = stage_change_record(lead=lead, from_stage=Stage.MQL, to_stage=Stage.SQL)
        return HandOff.objects.create(
            lead=lead,
            stage_change=change,
            stage=Stage.SQL,
            owner=owner,
            status=status,
            accepted_at=now if status == HandOffStatus.ACCEPTED else None,
            sla_due_at=now + dt.timedelta(hours=hours),
        )

    later, sooner = handoff(rep, 20), handoff(rep, 2)
    handoff(rep, 1, status=HandOffStatus.ACCEPTED)
    handoff(other_rep, 1)

    assert list(HandOff.objects.awaiting(rep)) == [sooner, later]

"""Nurturing end to end on PostgreSQL: celery beat and a real worker on Redis sending
through a real SMTP server, and workers racing on the same due steps."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core import mail
from django.utils import timezone

from leads.models import Activity, ActivityType
from nurturing.due_steps import enrollments_process_due
from nurturing.enrollment import enrollment_start
from nurturing.models import Enrollment, EnrollmentStatus, Message, MessageStatus
from nurturing.sending import message_send
from tests.conftest import REDIS_URL
from tests.factories import LeadFactory, active_model, fit_rule
from tests.test_concurrency_pg import race
from tests.test_nurture_sending import email_sequence

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
WAIT_SECONDS = 60


@pytest.fixture
def beat(tmp_path) -> Iterator[subprocess.Popen]:
    """``celery beat`` as production runs it, on the test's Redis, ticking every second."""
    environment = {
        **os.environ,
        "CELERY_BROKER_URL": REDIS_URL,
        "NURTURE_SEND_SECONDS": "1",
        "HOTLIST_VAR_DIR": str(tmp_path),
    }
    command = [sys.executable, "-m", "celery", "-A", "crm", "beat", "--loglevel", "WARNING"]
    command += ["--schedule", str(tmp_path / "celerybeat-schedule")]
    process = subprocess.Popen(command, cwd=ROOT, env=environment)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"not within {WAIT_SECONDS} s: {what}")


@pytest.mark.worker
def test_beat_and_a_worker_send_the_step_over_smtp_and_the_open_is_scored(
    celery_worker_live, beat, smtp_inbox, rep, client
):
    # Given an owned lead enrolled in a sequence, and an open worth points
    model = active_model()
    fit_rule(model, 5, "country", "equals", "DE")
    from scoring.models import Rule

    Rule.objects.create(
        model=model, name="Opened", kind="engagement", points=7, activity_type="email_open"
    )
    rep.first_name, rep.last_name = "Rita", "Rep"
    rep.save()
    lead = LeadFactory(owner=rep, first_name="Ada", company__name="Fleet & Co", country="DE")
    enrollment_start(lead=lead, sequence=email_sequence(), now=timezone.now())

    # When beat ticks and the worker runs the due step, then the sending task
    wait_for(lambda: len(smtp_inbox.messages) >= 1, "the nurture email")

    # Then the mail server received one email from the owner, with one-click unsubscribe
    received = smtp_inbox.messages[0]
    assert received["Subject"] == "Step 1 for Ada"
    assert received["From"] == f"Rita Rep <{rep.email}>"
    assert received["To"] == lead.email
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = received.get_body(preferencelist=("html",)).get_content()
    assert "Fleet &amp; Co" in html
    message = Message.objects.get()
    wait_for(lambda: Message.objects.get().status == MessageStatus.SENT, "the message marked sent")
    message.refresh_from_db()
    assert received["Message-ID"] == message.provider_message_id
    time.sleep(2)  # more ticks of beat send nothing more
    assert len(smtp_inbox.messages) == 1
    assert Message.objects.count() == 1

    # When the reader opens it (well after sending, from a mail client)
    Message.objects.filter(pk=message.pk).update(sent_at=timezone.now() - dt.timedelta(hours=1))
    pixel = re.search(r'src="https?://[^/]+(/n/o/[^"]+)"', html).group(1)
    assert client.get(pixel, HTTP_USER_AGENT="Mozilla/5.0 Thunderbird").status_code == 200

    # Then the open is an activity the worker scores like any other
    open_ = Activity.objects.get(type=ActivityType.EMAIL_OPEN)
    wait_for(lambda: Activity.objects.get(pk=open_.pk).scored_at is not None, "the open scored")
    lead.refresh_from_db()
    assert lead.score == 12


def due_enrollments(count: int):
    sequence = email_sequence(steps=2)
    now = timezone.now()
    leads = [LeadFactory() for _ in range(count)]
    return [enrollment_start(lead=lead, sequence=sequence, now=now)[0] for lead in leads], now


def test_two_workers_racing_on_the_same_due_steps_send_each_message_once():
    # Given 120 enrollments whose first step is due
    enrollments, now = due_enrollments(120)

    # When two workers process the due steps at the same moment, in small batches
    outcomes = race(
        lambda: enrollments_process_due(now=now, batch=10),
        lambda: enrollments_process_due(now=now, batch=10),
    )

    # Then every step was handled once between them and each email went out once
    assert all(isinstance(o, int) for o in outcomes), outcomes
    assert sum(outcomes) == 120
    assert Message.objects.count() == 120
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 120
    recipients = sorted(m.to[0] for m in mail.outbox)
    assert recipients == sorted({e.lead.email for e in enrollments})
    assert set(Enrollment.objects.values_list("next_position", "status")) == {
        (2, EnrollmentStatus.ACTIVE)
    }


def test_duplicate_sending_tasks_racing_send_one_email():
    _enrollments, now = due_enrollments(1)
    with pytest.MonkeyPatch.context() as patch:
        # The batch commits without queueing: the race below is the sending itself
        patch.setattr("nurturing.due_steps.messages_send_request", lambda **kwargs: 0)
        enrollments_process_due(now=now)
    message = Message.objects.get()

    outcomes = race(*[lambda: message_send(message_id=message.pk) for _ in range(4)])

    assert sorted(outcomes) == ["", "", "", MessageStatus.SENT]
    assert len(mail.outbox) == 1

"""The public side of nurture emails, through HTTP: open pixel, click redirect,
unsubscribe (page and RFC 8058 one-click) and the bounce webhook."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.core import mail, signing
from django.utils import timezone

from leads.models import Activity, ActivityType, EmailStatus, Lead
from nurturing.due_steps import enrollments_process_due
from nurturing.enrollment import enrollment_start
from nurturing.models import (
    Enrollment,
    EnrollmentStatus,
    ExitReason,
    Message,
    MessageStatus,
    Suppression,
)
from nurturing.personalize import CLICK_SALT, OPEN_SALT, UNSUBSCRIBE_SALT, make_token
from tests.factories import LeadFactory
from tests.test_nurture_sending import email_sequence

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Mail"
SECRET = "bounce-secret-for-tests"


@pytest.fixture
def sent(django_capture_on_commit_callbacks) -> Message:
    """Step 1 of a two-step sequence, sent a minute ago; step 2 waits three days."""
    lead = LeadFactory()
    sent_at = timezone.now() - dt.timedelta(minutes=1)
    enrollment_start(lead=lead, sequence=email_sequence(), now=sent_at)
    with django_capture_on_commit_callbacks(execute=True):
        enrollments_process_due(now=sent_at)
    message = Message.objects.get()
    Message.objects.filter(pk=message.pk).update(sent_at=sent_at)
    message.refresh_from_db()
    return message


def path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def tracked_urls(kind: str) -> list[str]:
    html = mail.outbox[0].alternatives[0][0]
    return [path_of(u) for u in re.findall(rf'"(https?://[^"]+/n/{kind}/[^"]+)"', html)]


def activities(lead: Lead, type_: str) -> list[Activity]:
    return list(Activity.objects.filter(lead=lead, type=type_))


def test_the_open_pixel_records_the_readers_open_once(client, sent):
    [pixel] = tracked_urls("o")

    first = client.get(pixel, HTTP_USER_AGENT=BROWSER)
    again = client.get(pixel, HTTP_USER_AGENT=BROWSER)

    assert first.status_code == again.status_code == 200
    assert first["Content-Type"] == "image/gif"
    assert first.content.startswith(b"GIF89a")
    sent.refresh_from_db()
    assert sent.opened_at is not None
    [open_] = activities(sent.lead, ActivityType.EMAIL_OPEN)
    assert open_.properties["scored"] is True
    assert open_.properties["message_id"] == sent.pk
    assert open_.source == "nurture"


@pytest.mark.parametrize(
    ("agent", "seconds_after"),
    [
        ("Mozilla/5.0 (compatible; Barracuda Sentinel)", 600),
        ("python-requests/2.32", 600),
        ("", 600),
        (BROWSER, 2),  # faster than anyone reads
    ],
)
def test_machine_opens_are_stored_but_not_scored_or_counted(client, sent, agent, seconds_after):
    Message.objects.filter(pk=sent.pk).update(
        sent_at=timezone.now() - dt.timedelta(seconds=seconds_after)
    )
    [pixel] = tracked_urls("o")

    assert client.get(pixel, HTTP_USER_AGENT=agent).status_code == 200

    sent.refresh_from_db()
    assert sent.opened_at is None
    [open_] = activities(sent.lead, ActivityType.EMAIL_OPEN)
    assert open_.properties["scored"] is False


def test_the_click_redirect_goes_to_the_messages_link_and_records_the_click(client, sent):
    first_link = tracked_urls("c")[0]

    response = client.get(first_link, HTTP_USER_AGENT=BROWSER)

    assert response.status_code == 302
    assert response["Location"] == "https://hotlist.example/guide/1?a=1&b=2"
    sent.refresh_from_db()
    assert sent.clicked_at is not None
    assert sent.opened_at is not None
    [click] = activities(sent.lead, ActivityType.EMAIL_CLICK)
    assert click.url == "https://hotlist.example/guide/1?a=1&b=2"
    assert click.properties["scored"] is True


def test_the_click_redirect_refuses_foreign_and_tampered_links(client, sent):
    # A token naming a link the message does not have
    beyond = make_token(CLICK_SALT, m=sent.pk, i=len(sent.links))
    # A URL smuggled in the token: the redirect only reads an index
    smuggled = signing.dumps({"m": sent.pk, "i": 0, "url": "https://evil.example"}, salt="x")
    # A valid token with one character changed
    tampered = tracked_urls("c")[0]
    tampered = tampered[:-3] + ("A" if tampered[-3] != "A" else "B") + tampered[-2:]
    # A token made for the open pixel
    other_purpose = make_token(OPEN_SALT, m=sent.pk)

    for token in (beyond, smuggled, other_purpose):
        assert client.get(f"/n/c/{token}").status_code == 404
    assert client.get(tampered).status_code == 404
    assert client.get("/n/c/https://evil.example").status_code == 404
    assert not activities(sent.lead, ActivityType.EMAIL_CLICK)


def test_tampered_open_and_unsubscribe_tokens_change_nothing(client, sent):
    other = LeadFactory()
    forged = signing.dumps({"m": sent.pk}, salt=UNSUBSCRIBE_SALT, key="not-the-secret-key")
    assert client.get(f"/n/u/{forged}").status_code == 404
    assert client.post(f"/n/u/{forged}").status_code == 404
    click_token = make_token(CLICK_SALT, m=sent.pk, i=0)
    assert client.post(f"/n/u/{click_token}").status_code == 404
    assert client.get(f"/n/o/{make_token(UNSUBSCRIBE_SALT, m=sent.pk)}.gif").status_code == 404
    assert Lead.objects.filter(email_status=EmailStatus.VALID).count() == 2
    assert other.email_status == EmailStatus.VALID
    assert not Suppression.objects.exists()


def test_unsubscribe_asks_first_then_stops_everything(client, sent):
    unsubscribe = path_of(mail.outbox[0].extra_headers["List-Unsubscribe"].strip("<>"))

    page = client.get(unsubscribe, HTTP_USER_AGENT="Mimecast link checker")
    assert page.status_code == 200
    assert b'<form method="post">' in page.content
    assert Lead.objects.get().email_status == EmailStatus.VALID  # a GET changes nothing

    done = client.post(unsubscribe)

    assert done.status_code == 200
    assert b"You are unsubscribed" in done.content
    lead = Lead.objects.get()
    assert lead.email_status == EmailStatus.UNSUBSCRIBED
    assert Suppression.objects.filter(email=lead.email, reason="unsubscribed").exists()
    enrollment = Enrollment.objects.get()
    assert (enrollment.status, enrollment.exit_reason) == (
        EnrollmentStatus.EXITED,
        ExitReason.UNSUBSCRIBED,
    )
    assert len(activities(lead, ActivityType.UNSUBSCRIBE)) == 1
    sent.refresh_from_db()
    assert sent.unsubscribed_at is not None
    # Repeating it changes nothing
    assert client.post(unsubscribe).status_code == 200
    assert len(activities(lead, ActivityType.UNSUBSCRIBE)) == 1


def test_one_click_unsubscribe_from_a_mail_client(client, sent):
    unsubscribe = path_of(mail.outbox[0].extra_headers["List-Unsubscribe"].strip("<>"))

    response = client.post(unsubscribe, {"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    assert Lead.objects.get().email_status == EmailStatus.UNSUBSCRIBED
    assert activities(sent.lead, ActivityType.UNSUBSCRIBE)[0].properties["how"] == "one-click"


def test_unsubscribe_stops_a_step_that_is_already_due_and_queued(
    client, sent, django_capture_on_commit_callbacks
):
    # Given step 2 due and claimed by beat, its message queued but not yet sent
    due = sent.sent_at + dt.timedelta(days=3)
    with django_capture_on_commit_callbacks(execute=False):
        enrollments_process_due(now=due)
    queued = Message.objects.get(status=MessageStatus.QUEUED)
    unsubscribe = path_of(mail.outbox[0].extra_headers["List-Unsubscribe"].strip("<>"))

    # When the reader unsubscribes before the sending task runs
    client.post(unsubscribe)
    from nurturing.tasks import send_message

    send_message.delay(queued.pk)

    # Then the queued message is not sent
    queued.refresh_from_db()
    assert queued.status == MessageStatus.CANCELLED
    assert len(mail.outbox) == 1


def test_unsubscribe_wins_over_a_send_task_already_in_the_queue(
    sent, django_capture_on_commit_callbacks
):
    # The task message was taken before the unsubscribe cancelled the row: the send
    # itself checks the address again.
    due = sent.sent_at + dt.timedelta(days=3)
    with django_capture_on_commit_callbacks(execute=False):
        enrollments_process_due(now=due)
    queued = Message.objects.get(status=MessageStatus.QUEUED)
    Lead.objects.filter(pk=sent.lead_id).update(email_status=EmailStatus.UNSUBSCRIBED)
    from nurturing.sending import message_send

    assert message_send(message_id=queued.pk) == MessageStatus.CANCELLED
    assert len(mail.outbox) == 1


def post_bounce(client, payload, secret: str | None = SECRET):
    headers = {"HTTP_X_HOTLIST_SECRET": secret} if secret is not None else {}
    return client.post(
        "/n/bounce/", data=json.dumps(payload), content_type="application/json", **headers
    )


def test_the_bounce_webhook_needs_its_secret(client, settings, sent):
    payload = {"type": "bounce", "email": sent.to_email}
    settings.NURTURE_BOUNCE_SECRET = ""
    assert post_bounce(client, payload).status_code == 404
    settings.NURTURE_BOUNCE_SECRET = SECRET
    assert post_bounce(client, payload, secret=None).status_code == 403
    assert post_bounce(client, payload, secret="wrong").status_code == 403
    assert client.get("/n/bounce/").status_code == 405
    assert Lead.objects.get().email_status == EmailStatus.VALID
    assert not Suppression.objects.exists()


def test_a_hard_bounce_marks_the_address_and_ends_enrollments(client, settings, sent):
    settings.NURTURE_BOUNCE_SECRET = SECRET
    payload = {
        "type": "bounce",
        "email": sent.to_email.upper(),
        "message_id": sent.provider_message_id.strip("<>"),
        "detail": "550 5.1.1 mailbox unknown",
    }

    response = post_bounce(client, payload)

    assert response.status_code == 200
    assert response.json() == {"processed": 1, "matched_messages": 1}
    sent.refresh_from_db()
    assert (sent.status, sent.error) == (MessageStatus.BOUNCED, "550 5.1.1 mailbox unknown")
    lead = sent.lead
    lead.refresh_from_db()
    assert lead.email_status == EmailStatus.BOUNCED
    assert Suppression.objects.get().reason == "bounced"
    assert Enrollment.objects.get().exit_reason == ExitReason.BOUNCED
    assert len(activities(lead, ActivityType.EMAIL_BOUNCE)) == 1


def test_a_complaint_unsubscribes_and_a_soft_bounce_only_notes(client, settings, sent):
    settings.NURTURE_BOUNCE_SECRET = SECRET
    soft = {"type": "bounce", "email": sent.to_email, "permanent": False, "detail": "421 later"}
    assert post_bounce(client, soft).status_code == 200
    assert Lead.objects.get().email_status == EmailStatus.VALID
    assert Enrollment.objects.get().is_active

    assert post_bounce(client, {"type": "complaint", "email": sent.to_email}).status_code == 200

    assert Lead.objects.get().email_status == EmailStatus.UNSUBSCRIBED
    assert Suppression.objects.get().reason == "complained"
    assert Enrollment.objects.get().exit_reason == ExitReason.UNSUBSCRIBED


def test_a_reply_reported_by_the_provider_ends_the_enrollment(client, settings, sent):
    settings.NURTURE_BOUNCE_SECRET = SECRET
    payload = [{"type": "reply", "email": sent.to_email, "message_id": sent.provider_message_id}]

    assert post_bounce(client, payload).status_code == 200

    sent.refresh_from_db()
    assert sent.replied_at is not None
    assert Enrollment.objects.get().exit_reason == ExitReason.REPLIED
    assert len(activities(sent.lead, ActivityType.EMAIL_REPLY)) == 1


def test_bad_webhook_input_is_a_400_with_the_field_and_stores_nothing(client, settings, sent):
    settings.NURTURE_BOUNCE_SECRET = SECRET
    response = post_bounce(
        client,
        [{"type": "bounce", "email": sent.to_email}, {"type": "explosion", "email": "nope"}],
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"1.type", "1.email"}
    bad_json = client.post(
        "/n/bounce/", data="{", content_type="application/json", HTTP_X_HOTLIST_SECRET=SECRET
    )
    assert bad_json.status_code == 400
    assert Lead.objects.get().email_status == EmailStatus.VALID
    assert not Suppression.objects.exists()


def test_a_bounce_for_an_unknown_address_still_suppresses_it(client, settings, sent):
    settings.NURTURE_BOUNCE_SECRET = SECRET
    response = post_bounce(client, {"type": "bounce", "email": "Gone@Nowhere.example"})
    assert response.json() == {"processed": 1, "matched_messages": 0}
    assert Suppression.objects.get().email == "gone@nowhere.example"
    assert Lead.objects.get().email_status == EmailStatus.VALID

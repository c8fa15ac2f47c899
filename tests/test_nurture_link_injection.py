"""Only links the marketer wrote become tracked links: what the lead typed into their
name or company is text in both bodies, and the click redirect never goes there, not
even for emails sent before this was so."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core import mail
from django.utils import timezone

from leads.models import Activity, ActivityType
from nurturing.due_steps import enrollments_process_due
from nurturing.enrollment import enrollment_start
from nurturing.models import Message, Sequence, Step
from nurturing.personalize import CLICK_SALT, make_token
from tests.factories import CompanyFactory, LeadFactory
from tests.test_nurture_sending import MONDAY, run_due
from tests.test_nurture_worker_pg import wait_for

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Mail"
GUIDE = "https://hotlist.example/guide?a=1&b=2"
EVIL = "https://evil.example/login"


def one_step(body_text: str, body_html: str) -> Sequence:
    sequence = Sequence.objects.create(name="Links")
    Step.objects.create(
        sequence=sequence,
        position=1,
        subject="Hi {{ first_name }}",
        body_text=body_text,
        body_html=body_html,
    )
    return sequence


@pytest.fixture
def send_to(django_capture_on_commit_callbacks):
    """Enroll the lead and send the sequence's first email through the send task."""

    def send(lead, sequence) -> Message:
        enrollment_start(lead=lead, sequence=sequence, now=MONDAY)
        run_due(MONDAY, django_capture_on_commit_callbacks)
        return Message.objects.get(lead=lead)

    return send


def click_paths(text: str) -> list[str]:
    return [
        m.replace("&amp;", "&") for m in re.findall(r"https?://[^/\s\"]+(/n/c/[^\s\"<]+)", text)
    ]


def redirects(client, paths: list[str]) -> set[str]:
    targets = set()
    for path in paths:
        response = client.get(path, HTTP_USER_AGENT=BROWSER)
        assert response.status_code == 302, path
        targets.add(response["Location"])
    return targets


@pytest.fixture
def hostile_lead():
    return LeadFactory(
        first_name=EVIL,
        last_name='<a href="https://evil.example/a">x</a>',
        company=CompanyFactory(name="www.evil.example"),
    )


def test_a_url_typed_by_the_lead_is_text_and_never_a_tracked_link(client, hostile_lead, send_to):
    sequence = one_step(
        body_text="Hello {{ first_name }} {{ last_name }} of {{ company_name }}: " + GUIDE,
        body_html=(
            "<p>Hello {{ first_name }} {{ last_name }} of {{ company_name }}</p>"
            f'<a href="{GUIDE.replace("&", "&amp;")}">Guide</a>'
        ),
    )

    message = send_to(hostile_lead, sequence)

    sent = mail.outbox[0]
    html = sent.alternatives[0][0]
    assert message.links == [GUIDE]
    # The lead's values are escaped text: no anchor or href of theirs in the HTML
    assert "evil.example" not in " ".join(re.findall(r'href="([^"]*)"', html))
    assert "&lt;a href=" in html
    # and mail clients find no link to make of them in either body
    for body in (sent.body, html, sent.subject):
        assert EVIL not in body
        assert "www.evil.example" not in body
    assert "evil.example/login" in sent.body  # still there to read
    # Every tracked link of both bodies goes to the template's link
    paths = click_paths(sent.body) + click_paths(html)
    assert len(paths) == 2
    assert redirects(client, paths) == {GUIDE}


def test_a_personalised_link_is_sent_as_written_and_not_tracked(send_to):
    lead = LeadFactory(company=CompanyFactory(name="Acme"))
    sequence = one_step(
        body_text="See https://hotlist.example/offer?c={{ company_name|urlencode }} or " + GUIDE,
        body_html="",
    )

    message = send_to(lead, sequence)

    assert message.links == [GUIDE]
    assert "https://hotlist.example/offer?c=Acme" in mail.outbox[0].body


def test_emails_sent_before_keep_their_template_links_and_lose_the_leads(client, hostile_lead):
    # Given a message sent the old way: the lead's URL was tracked beside the template's
    sequence = one_step(body_text=f"Hello {{{{ first_name }}}}, read {GUIDE}", body_html="")
    step = sequence.steps.get()
    enrollment, _ = enrollment_start(lead=hostile_lead, sequence=sequence, now=MONDAY)
    message = Message.objects.create(
        enrollment=enrollment,
        step=step,
        lead=hostile_lead,
        status="sent",
        sent_at=timezone.now() - dt.timedelta(hours=1),
        links=[EVIL, GUIDE],
    )
    # with the tokens of the time, which carried the message and the index only
    injected = f"/n/c/{make_token(CLICK_SALT, m=message.pk, i=0)}"
    template = f"/n/c/{make_token(CLICK_SALT, m=message.pk, i=1)}"

    refused = client.get(injected, HTTP_USER_AGENT=BROWSER)
    followed = client.get(template, HTTP_USER_AGENT=BROWSER)

    assert refused.status_code == 404
    assert (followed.status_code, followed["Location"]) == (302, GUIDE)
    clicks = Activity.objects.filter(lead=hostile_lead, type=ActivityType.EMAIL_CLICK)
    assert list(clicks.values_list("url", flat=True)) == [GUIDE]
    message.refresh_from_db()
    assert message.links == [EVIL, GUIDE]  # nothing stored is rewritten


@pytest.mark.postgres
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_on_redis_sends_the_leads_url_as_text_and_tracks_the_template_link(
    celery_worker_live, smtp_inbox, client
):
    # Given a lead whose first name is a URL, enrolled in a sequence with one link
    lead = LeadFactory(first_name=EVIL, company=CompanyFactory(name="www.evil.example"))
    html = f'<p>Hi {{{{ first_name }}}}</p><a href="{GUIDE.replace("&", "&amp;")}">Guide</a>'
    sequence = one_step(body_text=f"Hi {{{{ first_name }}}}: {GUIDE}", body_html=html)
    now = timezone.now()
    enrollment_start(lead=lead, sequence=sequence, now=now)

    # When the due step is queued and a real worker sends it through SMTP
    enrollments_process_due(now=now)
    wait_for(lambda: len(smtp_inbox.messages) >= 1, "the nurture email")

    # Then the lead's URL is text in both bodies and every tracked link is the template's
    received = smtp_inbox.messages[0]
    text = received.get_body(preferencelist=("plain",)).get_content()
    html_body = received.get_body(preferencelist=("html",)).get_content()
    assert EVIL not in text
    assert EVIL not in html_body
    paths = click_paths(text) + click_paths(html_body)
    assert len(paths) == 2
    Message.objects.filter(lead=lead).update(sent_at=now - dt.timedelta(hours=1))
    assert redirects(client, paths) == {GUIDE}
    assert Message.objects.get(lead=lead).links == [GUIDE]

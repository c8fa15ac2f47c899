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
from nurturing.models import Message, Sequence, Step
from nurturing.personalize import CLICK_SALT, make_token
from nurturing.services import enrollment_start
from tests.factories import CompanyFactory, LeadFactory
from tests.test_nurture_sending import MONDAY, run_due

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

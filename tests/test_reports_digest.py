"""The weekly digest (beat task, opt-out, once a week), its settings page, and the
reports' admin pages (campaign costs, digest preferences)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.urls import reverse

from crm.celery import app as celery_app
from reports.models import Campaign, DigestPreference
from reports.services import digest_send_weekly
from reports.tasks import send_weekly_digest
from tests.test_reports_queries import build_world

# A Wednesday: the digest covers Monday 3 to Sunday 9 March 2025, when the world's
# leads were created.
WEDNESDAY = dt.datetime(2025, 3, 12, 7, 0, tzinfo=dt.UTC)


@pytest.fixture
def world(rep, other_rep, manager, marketer):
    return build_world(rep, other_rep)


def test_digest_goes_to_each_manager_and_marketer_with_their_figures(world, manager, marketer):
    sent = digest_send_weekly(now=WEDNESDAY)

    assert sent == 2
    by_person = {message.to[0]: message for message in mail.outbox}
    assert set(by_person) == {manager.email, marketer.email}
    to_manager = by_person[manager.email]
    assert to_manager.subject == "Hotlist weekly digest: 3 Mar to 9 Mar 2025"
    assert "- Leads: 9\n" in to_manager.body
    assert "- Win rate (won / closed): 37.5 %\n" in to_manager.body
    assert "- Leads: 10\n" in by_person[marketer.email].body
    link = f"{settings.SITE_URL}/reports/funnel/?date_from=2025-03-03&date_to=2025-03-09"
    assert link in to_manager.body
    html, kind = to_manager.alternatives[0]
    assert kind == "text/html"
    assert link.replace("&", "&amp;") in html
    assert f"{settings.SITE_URL}/reports/digest/" in to_manager.body


def test_digest_is_sent_once_a_week(world, manager, marketer):
    digest_send_weekly(now=WEDNESDAY)
    assert digest_send_weekly(now=WEDNESDAY + dt.timedelta(days=2)) == 0
    assert len(mail.outbox) == 2

    assert digest_send_weekly(now=WEDNESDAY + dt.timedelta(days=7)) == 2
    assert len(mail.outbox) == 4


def test_a_failed_send_is_retried_next_run(world, manager, marketer, monkeypatch):
    from django.core.mail.backends.locmem import EmailBackend

    def refuse(self, messages):
        raise OSError("SMTP down")

    monkeypatch.setattr(EmailBackend, "send_messages", refuse)
    assert digest_send_weekly(now=WEDNESDAY) == 0
    monkeypatch.undo()

    assert digest_send_weekly(now=WEDNESDAY) == 2


def test_opt_out_on_the_settings_page_is_honoured(client, world, manager, marketer):
    client.force_login(manager)
    page = client.get(reverse("reports-digest"))
    assert 'name="weekly_digest"' in page.content.decode()
    assert "checked" in page.content.decode()

    response = client.post(reverse("reports-digest"), {})

    assert response.status_code == 302
    assert DigestPreference.objects.get(user=manager).weekly_digest is False
    assert send_weekly_digest.delay().get() == 1
    assert [message.to for message in mail.outbox] == [[marketer.email]]
    client.post(reverse("reports-digest"), {"weekly_digest": "on"})
    assert DigestPreference.objects.get(user=manager).weekly_digest is True


def test_reps_get_no_digest(world, rep):
    digest_send_weekly(now=WEDNESDAY)

    assert rep.email not in [message.to[0] for message in mail.outbox]


def test_settings_page_needs_csrf_and_a_role(world, manager, outsider):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(manager)
    assert strict.post(reverse("reports-digest"), {}).status_code == 403
    assert not DigestPreference.objects.filter(user=manager).exists()

    anonymous = Client().get(reverse("reports-digest"))
    assert anonymous.status_code == 302
    refused = Client()
    refused.force_login(outsider)
    assert refused.get(reverse("reports-digest")).status_code == 403
    assert refused.post(reverse("reports-digest"), {}).status_code == 403
    assert not DigestPreference.objects.exists()


def test_the_digest_is_on_the_beat_schedule_monday_morning():
    entry = settings.CELERY_BEAT_SCHEDULE["reports-weekly-digest"]

    assert entry["task"] == "reports.tasks.send_weekly_digest"
    assert entry["schedule"].day_of_week == {1}
    assert "reports.tasks.send_weekly_digest" in celery_app.tasks


def test_admin_edits_campaign_costs(client, admin_user):
    client.force_login(admin_user)
    add = reverse("admin:reports_campaign_add")

    refused = client.post(add, {"name": "Spring webinar", "spend": "-5", "currency": "EUR"})
    created = client.post(add, {"name": " Spring webinar ", "spend": "600", "currency": "EUR"})

    assert refused.status_code == 200
    assert "Ensure this value is greater than or equal to 0." in refused.content.decode()
    assert created.status_code == 302
    campaign = Campaign.objects.get()
    assert (campaign.name, campaign.spend) == ("Spring webinar", 600)
    duplicate = client.post(add, {"name": "SPRING WEBINAR", "spend": "1", "currency": "EUR"})
    assert duplicate.status_code == 200
    assert Campaign.objects.count() == 1
    change = client.get(reverse("admin:reports_campaign_change", args=[campaign.pk]))
    assert change.status_code == 200


def test_admin_shows_digest_preferences(client, admin_user, manager):
    preference = DigestPreference.objects.create(user=manager, weekly_digest=False)
    client.force_login(admin_user)

    listing = client.get(reverse("admin:reports_digestpreference_changelist"))
    change = client.get(reverse("admin:reports_digestpreference_change", args=[preference.pk]))

    assert listing.status_code == 200
    assert "manager" in listing.content.decode()
    assert change.status_code == 200

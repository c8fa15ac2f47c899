"""The layout around every page: navigation, the notification bell, log out; and the
notification list behind the bell."""

from __future__ import annotations

import pytest
from django.test import Client

from leads.handoff_models import Notification
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

PAGES = ["/leads/", "/pipeline/", "/tasks/", "/notifications/", "/reports/"]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def notify(user, title: str = "Ada was handed to you", **fields) -> Notification:
    return Notification.objects.create(user=user, kind="handoff", title=title, **fields)


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_visitors_are_sent_to_log_in(url):
    response = Client().get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


@pytest.mark.parametrize("url", PAGES)
@pytest.mark.parametrize(
    "persona", ["rep", "other_rep", "manager", "marketer", "admin_user", "outsider"]
)
def test_every_page_opens_for_every_signed_in_person(request, url, persona):
    response = client_for(request.getfixturevalue(persona)).get(url)

    body = response.content.decode()
    # An outsider holds no role: the reports, which show figures, refuse them.
    expected = 403 if persona == "outsider" and url == "/reports/" else 200
    assert response.status_code == expected
    if expected == 403:
        return
    for target in ['href="/"', 'href="/leads/"', 'href="/pipeline/"', 'href="/tasks/"']:
        assert target in body
    assert 'href="/reports/"' in body
    assert 'action="/accounts/logout/"' in body


@pytest.mark.parametrize(
    ("persona", "sees_admin"),
    [
        ("rep", False),
        ("manager", False),
        ("marketer", True),
        ("admin_user", True),
        ("outsider", False),
    ],
)
def test_admin_link_follows_the_role_not_the_staff_flag(request, persona, sees_admin):
    user = request.getfixturevalue(persona)
    user.is_staff = True
    user.save()

    body = client_for(user).get("/leads/").content.decode()

    assert ('href="/admin/"' in body) is sees_admin


def test_the_current_page_is_marked_in_the_navigation(rep):
    body = client_for(rep).get("/pipeline/").content.decode()

    assert 'href="/pipeline/" aria-current="page"' in body
    assert 'href="/leads/" aria-current' not in body


def test_bell_counts_only_my_unread_notifications(rep, other_rep, django_assert_max_num_queries):
    notify(rep)
    notify(rep)
    notify(rep, read_at="2026-01-01T00:00Z")
    notify(other_rep)
    client = client_for(rep)

    body = client.get("/tasks/").content.decode()

    assert "Notifications: 2 unread" in body
    assert '<span class="bell-count" aria-hidden="true">2</span>' in body


def test_bell_costs_one_query(rep, django_assert_num_queries):
    for _ in range(5):
        notify(rep)
    client = client_for(rep)
    client.get("/reports/digest/")

    # session, user, role groups, the digest preference, and the one count of the bell
    with django_assert_num_queries(5):
        client.get("/reports/digest/")


def test_page_has_the_htmx_script_and_a_head_block(rep):
    body = client_for(rep).get("/leads/").content.decode()

    assert "django_htmx/htmx-2.min.js" in body or "htmx" in body
    assert '<a class="skip-link" href="#main">' in body


def test_notification_list_shows_mine_newest_first_escaped(rep, other_rep):
    old = notify(rep, title="Older")
    new = notify(rep, title="<script>alert(1)</script>", body="<b>x</b>")
    notify(other_rep, title="Not for rep")

    body = client_for(rep).get("/notifications/").content.decode()

    assert body.index(f'id="notification-{new.pk}"') < body.index(f'id="notification-{old.pk}"')
    assert "Not for rep" not in body
    assert "<script>alert(1)</script>" not in body
    assert "&lt;b&gt;x&lt;/b&gt;" in body


def test_marking_one_notification_read(rep):
    first = notify(rep)
    second = notify(rep)

    response = client_for(rep).post(f"/notifications/{first.pk}/read/")

    assert response.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.read_at is not None
    assert second.read_at is None


def test_opening_a_notification_marks_it_read_and_follows_its_link(rep):
    lead = LeadFactory(owner=rep)
    note = notify(rep, url=f"/leads/{lead.pk}/", lead=lead)

    response = client_for(rep).post(f"/notifications/{note.pk}/read/", {"follow": "1"})

    assert response["Location"] == f"/leads/{lead.pk}/"
    note.refresh_from_db()
    assert note.is_read


def test_a_notification_never_redirects_off_site(rep):
    note = notify(rep, url="https://evil.example/")

    response = client_for(rep).post(f"/notifications/{note.pk}/read/", {"follow": "1"})

    assert response["Location"] == "/notifications/"


def test_marking_all_read_via_htmx(rep, other_rep):
    notify(rep)
    notify(rep)
    theirs = notify(other_rep)

    response = client_for(rep).post("/notifications/read/", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert not Notification.objects.filter(user=rep, read_at__isnull=True).exists()
    theirs.refresh_from_db()
    assert theirs.read_at is None


@pytest.mark.parametrize("persona", ["other_rep", "outsider", "admin_user"])
def test_nobody_marks_someone_elses_notification(request, rep, persona):
    note = notify(rep)

    response = client_for(request.getfixturevalue(persona)).post(f"/notifications/{note.pk}/read/")

    assert response.status_code == 404
    note.refresh_from_db()
    assert note.read_at is None


def test_notification_actions_need_the_csrf_token(rep):
    note = notify(rep)
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)

    assert client.post("/notifications/read/").status_code == 403
    note.refresh_from_db()
    assert note.read_at is None


@pytest.mark.parametrize("debug", [False, True])
def test_pages_load_htmx_without_the_script_that_replaces_the_page_on_a_form_error(
    client, rep, settings, debug
):
    settings.DEBUG = debug
    client.force_login(rep)

    page = client.get("/").content.decode()

    assert "django_htmx/htmx-2.min.js" in page
    assert "django-htmx.js" not in page
    assert ("js/debug-errors.js" in page) is debug


def test_the_icon_is_named_by_every_page_and_served_for_favicon_ico(client, rep):
    client.force_login(rep)

    assert 'rel="icon"' in client.get("/").content.decode()
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"].endswith(".svg")


def test_dates_and_moments_read_one_way_everywhere(settings):
    import datetime as dt

    from django.template import Context, Template

    from reports.tables import show

    settings.HOTLIST_CURRENCY = "CHF"
    moment = dt.datetime(2026, 12, 6, 14, 30, tzinfo=dt.UTC)
    text = Template('{{ d|date }} · {{ d|date:"DATETIME_FORMAT" }}').render(Context({"d": moment}))

    assert text == "6 Dec 2026 · 6 Dec 2026, 14:30"
    assert show(1234.5, "money") == "1,234.50 CHF"

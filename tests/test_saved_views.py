"""Saved views of the leads list: saving, opening, renaming, deleting, sharing, and the
leads a shared view shows each person."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from crm.models import Role, Team
from tests.conftest import make_user
from tests.factories import LeadFactory
from workspace.models import SavedView

pytestmark = pytest.mark.django_db

ROW = re.compile(r'<th scope="row" data-label="Name"><a href="/leads/(\d+)/">')


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def ids_in(response) -> set[int]:
    return {int(pk) for pk in ROW.findall(response.content.decode())}


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


# --- Saving and opening ---------------------------------------------------------------------


def test_rep_saves_the_list_with_its_filters_sort_and_columns(rep):
    client = client_for(rep)

    response = client.post(
        "/leads/views/?band=hot&sort=name&cols=phone&cols=next_task&cursor=x",
        {"name": "  Hot callers  "},
    )

    view = SavedView.objects.get()
    assert (view.owner, view.name, view.shared) == (rep, "Hot callers", False)
    assert view.query == "band=hot&sort=name"  # no page cursor, columns kept apart
    assert view.columns == ["phone", "next_task"]
    assert response.status_code == 302
    assert query_of(response["Location"]) == {
        "band": ["hot"],
        "sort": ["name"],
        "cols": ["phone", "next_task"],
        "view": [str(view.pk)],
    }
    page = client.get(response["Location"]).content.decode()
    assert "Saved the view “Hot callers”." in page
    assert 'Views: <span class="view-name">Hot callers</span>' in page
    assert '<th scope="col">Phone</th>' in page
    assert '<th scope="col">Next task</th>' in page


def test_a_view_without_chosen_columns_keeps_the_defaults(rep):
    client_for(rep).post("/leads/views/?owner=me", {"name": "Mine"})

    assert SavedView.objects.get().columns is None


def test_opening_a_view_goes_to_the_list_with_its_query(rep):
    view = SavedView.objects.create(owner=rep, name="Cold", query="band=cold", columns=[])

    response = client_for(rep).get(f"/leads/views/{view.pk}/")

    assert response.status_code == 302
    assert query_of(response["Location"]) == {
        "band": ["cold"],
        "cols": [""],
        "view": [str(view.pk)],
    }


def test_the_menu_lists_own_views(rep):
    SavedView.objects.create(owner=rep, name="Alpha view", query="band=hot")

    page = client_for(rep).get("/leads/").content.decode()

    assert "Saved views (1)" in page
    assert "Alpha view</a>" in page


@pytest.mark.parametrize(("name", "error"), [("   ", "Give the view a name."), ("Taken", "")])
def test_a_missing_or_taken_name_is_refused_beside_the_field(rep, name, error):
    SavedView.objects.create(owner=rep, name="Taken")

    response = client_for(rep).post("/leads/views/?band=hot", {"name": name})

    assert response.status_code == 400
    body = response.content.decode()
    assert error in body
    if name == "Taken":
        assert "You already have a view of this name." in body
    assert SavedView.objects.count() == 1


def test_a_list_too_long_to_keep_is_refused_beside_the_name(rep):
    response = client_for(rep).post(f"/leads/views/?q={'x' * 90}&{'a=b&' * 600}", {"name": "Long"})

    assert response.status_code == 400
    assert "This list&#x27;s filters are too long to save as a view." in response.content.decode()
    assert not SavedView.objects.exists()


def test_two_people_may_use_the_same_name(rep, other_rep):
    SavedView.objects.create(owner=other_rep, name="Hot")

    response = client_for(rep).post("/leads/views/", {"name": "Hot"})

    assert response.status_code == 302
    assert SavedView.objects.filter(name="Hot").count() == 2


def test_owner_renames_and_deletes_their_view(rep):
    view = SavedView.objects.create(owner=rep, name="Old", query="band=hot")
    client = client_for(rep)

    renamed = client.post(f"/leads/views/{view.pk}/rename/", {"name": "New"})
    view.refresh_from_db()
    assert renamed.status_code == 302
    assert view.name == "New"

    deleted = client.post(f"/leads/views/{view.pk}/delete/")
    assert deleted.status_code == 302
    assert not SavedView.objects.exists()


def test_rename_to_a_taken_name_changes_nothing(rep):
    SavedView.objects.create(owner=rep, name="Taken")
    view = SavedView.objects.create(owner=rep, name="Mine")

    # The rename form posts with the list's query string, which names the view.
    response = client_for(rep).post(
        f"/leads/views/{view.pk}/rename/?view={view.pk}", {"name": "Taken"}
    )

    assert response.status_code == 400
    assert "You already have a view of this name." in response.content.decode()
    view.refresh_from_db()
    assert view.name == "Mine"


def test_nobody_else_opens_renames_or_deletes_a_personal_view(rep, other_rep, manager, outsider):
    view = SavedView.objects.create(owner=rep, name="Private")

    for person in (other_rep, manager, outsider):
        client = client_for(person)
        assert client.get(f"/leads/views/{view.pk}/").status_code == 404
        assert client.post(f"/leads/views/{view.pk}/rename/", {"name": "X"}).status_code == 404
        assert client.post(f"/leads/views/{view.pk}/delete/").status_code == 404
        assert "Private" not in client.get("/leads/").content.decode()

    view.refresh_from_db()
    assert view.name == "Private"


def test_signed_out_people_are_sent_to_sign_in(rep):
    view = SavedView.objects.create(owner=rep, name="Private")

    response = Client().post("/leads/views/", {"name": "X"})
    opened = Client().get(f"/leads/views/{view.pk}/")

    assert response.status_code == 302
    assert "/login" in response["Location"] or "/accounts/" in response["Location"]
    assert opened.status_code == 302
    assert SavedView.objects.count() == 1


# --- Sharing ---------------------------------------------------------------------------------


def test_a_rep_cannot_share_a_view(rep):
    response = client_for(rep).post("/leads/views/", {"name": "Team", "shared": "on"})

    assert response.status_code == 400
    assert "Only managers and admins share views with their team." in response.content.decode()
    assert not SavedView.objects.exists()


def test_a_managers_shared_view_shows_each_rep_only_the_leads_they_see(manager, rep, other_rep):
    mine = LeadFactory(owner=rep, band="hot")
    theirs = LeadFactory(owner=other_rep, band="hot")
    pool = LeadFactory(owner=None, band="hot")
    LeadFactory(owner=rep, band="cold")
    response = client_for(manager).post("/leads/views/?band=hot", {"name": "Hot", "shared": "on"})
    view = SavedView.objects.get()
    assert view.shared
    url = response["Location"]

    assert ids_in(client_for(manager).get(url)) == {mine.pk, theirs.pk, pool.pk}
    assert ids_in(client_for(rep).get(url)) == {mine.pk, pool.pk}
    assert ids_in(client_for(other_rep).get(url)) == {theirs.pk, pool.pk}
    assert (
        f'href="/leads/?band=hot&amp;view={view.pk}"'
        in client_for(rep).get("/leads/").content.decode()
    )


def test_a_shared_view_stays_within_the_owners_team(manager, rep):
    south = Team.objects.create(name="South")
    stranger = make_user("south_rep", Role.REP, team=south)
    view = SavedView.objects.create(owner=manager, name="North hot", query="band=hot", shared=True)

    assert client_for(rep).get(f"/leads/views/{view.pk}/").status_code == 302
    assert client_for(stranger).get(f"/leads/views/{view.pk}/").status_code == 404
    assert "North hot" not in client_for(stranger).get("/leads/").content.decode()


def test_an_admins_shared_view_is_everyones(admin_user, rep):
    view = SavedView.objects.create(owner=admin_user, name="All hot", query="band=hot", shared=True)

    assert "All hot</a>" in client_for(rep).get("/leads/").content.decode()
    assert client_for(rep).get(f"/leads/views/{view.pk}/").status_code == 302


def test_only_the_owner_renames_a_shared_view_and_managers_delete_it(admin_user, manager, rep):
    view = SavedView.objects.create(owner=admin_user, name="All hot", shared=True)

    assert client_for(rep).post(f"/leads/views/{view.pk}/rename/", {"name": "X"}).status_code == 403
    assert client_for(rep).post(f"/leads/views/{view.pk}/delete/").status_code == 403
    assert (
        client_for(manager).post(f"/leads/views/{view.pk}/rename/", {"name": "X"}).status_code
        == 403
    )
    view.refresh_from_db()
    assert view.name == "All hot"

    assert client_for(manager).post(f"/leads/views/{view.pk}/delete/").status_code == 302
    assert not SavedView.objects.exists()


# --- Admin -------------------------------------------------------------------------------------


def test_admin_lists_the_views_a_person_sees_and_refuses_anothers(manager, rep):
    manager.is_staff = True
    manager.save(update_fields=["is_staff"])
    own = SavedView.objects.create(owner=manager, name="Manager's own")
    private = SavedView.objects.create(owner=rep, name="Rep private")
    client = client_for(manager)

    listing = client.get("/admin/workspace/savedview/").content.decode()

    assert "Manager&#x27;s own" in listing or "Manager's own" in listing
    assert "Rep private" not in listing
    assert client.get(f"/admin/workspace/savedview/{own.pk}/change/").status_code == 200
    hidden = client.get(f"/admin/workspace/savedview/{private.pk}/change/")
    assert hidden.status_code == 302
    assert client.post(f"/admin/workspace/savedview/{private.pk}/delete/", {"post": "yes"})
    assert SavedView.objects.filter(pk=private.pk).exists()

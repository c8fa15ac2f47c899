"""The leads list's count: exact with the page while it is small, and past
``COUNT_INLINE_MAX`` in a request of its own, which the page makes as it loads."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import LeadFactory
from workspace import filters

LIST = "/leads/"
COUNT = "/leads/count/"


@pytest.fixture
def small_limit(monkeypatch):
    monkeypatch.setattr(filters, "COUNT_INLINE_MAX", 2)


@pytest.fixture
def book(rep, other_rep):
    """Three leads of the rep's, two of another rep's (out of the rep's view)."""
    mine = [LeadFactory(owner=rep, score=score) for score in (10, 20, 30)]
    LeadFactory.create_batch(2, owner=other_rep)
    return mine


def test_a_small_list_is_counted_exactly_with_its_page(client, rep, book):
    client.force_login(rep)

    page = client.get(LIST).content.decode()

    assert '<span id="lead-count">3 leads</span>' in page
    assert 'hx-get="/leads/count/' not in page


def test_a_long_list_asks_for_its_count_as_it_loads(client, rep, book, small_limit):
    # Given more leads in view than the page counts with itself
    client.force_login(rep)

    # When the list is shown, filtered by score
    page = client.get(LIST, {"score_min": "5"}).content.decode()

    # Then it says "more than" and asks for the exact count with the same filters
    assert "More than 2 leads" in page
    assert 'hx-get="/leads/count/?score_min=5" hx-trigger="load"' in page
    assert 'href="/leads/?score_min=5&amp;count=exact"' in page
    assert 'Select all <span id="select-all-count">the leads</span>' in page

    # And the count holds exactly the leads the person sees, with the select-all label
    # and the count the bulk form checks against
    counted = client.get(COUNT, {"score_min": "5"}, HTTP_HX_REQUEST="true").content.decode()
    assert '<span id="lead-count">3 leads</span>' in counted
    assert '<span id="select-all-count" hx-swap-oob="true">3 leads</span>' in counted
    assert 'name="expected" value="3" id="bulk_expected" hx-swap-oob="true"' in counted

    # And without JavaScript, the link counts them on the list itself
    exact = client.get(LIST, {"score_min": "5", "count": "exact"}).content.decode()
    assert '<span id="lead-count">3 leads</span>' in exact


def test_the_count_counts_what_each_person_sees(client, rep, admin_user, book):
    client.force_login(rep)
    assert '<span id="lead-count">3 leads</span>' in client.get(COUNT).content.decode()
    client.force_login(admin_user)
    assert '<span id="lead-count">5 leads</span>' in client.get(COUNT).content.decode()


def test_a_count_with_a_bad_filter_is_refused(client, rep, book):
    client.force_login(rep)

    assert client.get(COUNT, {"score_min": "lots"}).status_code == 400
    assert client.get(reverse("lead-count")).status_code == 200


def count_queries(client, url: str, params: dict) -> tuple[str, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        page = client.get(url, params).content.decode()
    leads = [q["sql"] for q in queries.captured_queries if "leads_lead" in q["sql"]]
    return page, [sql for sql in leads if "COUNT(*)" in sql]


@pytest.mark.parametrize("url", [LIST, COUNT])
def test_with_only_filters_on_the_rank_the_count_reads_no_lead_row(client, rep, book, url):
    # Given a rep and leads of three bands and stages, some of another rep's
    LeadFactory(owner=rep, score=40, band="warm", stage="mql")
    LeadFactory(owner=None, score=45, band="warm", stage="mql")
    LeadFactory(owner=rep, score=50, band="warm", stage="sql")
    client.force_login(rep)
    exact = {"count": "exact"} if url == LIST else {}

    # When the list is filtered by band and stage, sorted by name
    page, counts = count_queries(
        client, url, {"band": "warm", "stage": "mql", "sort": "name", **exact}
    )

    # Then what the rep sees is counted from the ranks alone
    assert '<span id="lead-count">2 leads</span>' in page
    (count,) = counts
    assert '"leads_leadrank"' in count
    assert '"leads_lead"' not in count.replace('"leads_leadrank"', "")

    # And a filter on the lead itself (a search) counts the leads
    page, counts = count_queries(client, url, {"band": "warm", "q": "example", **exact})
    assert '<span id="lead-count">3 leads</span>' in page
    (count,) = counts
    assert 'FROM "leads_lead"' in count

"""The predictive score where reps work: the leads list's "Predictive" column and its
sort (leads without one last), the Next up queue, and the lead API's ordering."""

from __future__ import annotations

import itertools
import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from leads.models import Lead
from scoring.models import LeadScore, ScoringModel
from tests.factories import LeadFactory, active_model
from workspace.keyset import cursor_decode, leads_page

pytestmark = pytest.mark.django_db

ROW = re.compile(r'<th scope="row" data-label="Name"><a href="/leads/(\d+)/">')
HEADING = re.compile(r'<th scope="col"(?: aria-sort="[a-z]+")?>(?:<a [^>]+>)?([^<]+)<')
CELL = re.compile(r'<td data-label="Predictive">([^<]*)</td>')


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def ids_in(response) -> list[int]:
    return [int(pk) for pk in ROW.findall(response.content.decode())]


def predicted(lead: Lead, score: int | None, *, primary: bool = True) -> Lead:
    """Give the lead a score row in the default model holding ``score``."""
    model = ScoringModel.objects.filter(is_default=True).first() or active_model()
    LeadScore.objects.update_or_create(
        lead=lead, model=model, defaults={"is_primary": primary, "predictive_score": score}
    )
    return lead


@pytest.fixture
def leads(rep) -> dict[str, Lead]:
    """Four of the rep's leads: predictive 80, 35 and 35, and one without (rule score highest)."""
    return {
        "high": predicted(LeadFactory(owner=rep, first_name="High", score=10), 80),
        "low_a": predicted(LeadFactory(owner=rep, first_name="LowA", score=20), 35),
        "low_b": predicted(LeadFactory(owner=rep, first_name="LowB", score=30), 35),
        "none": predicted(LeadFactory(owner=rep, first_name="None", score=90), None),
    }


# --- The leads list ----------------------------------------------------------------------


def test_the_predictive_column_is_hidden_by_default_and_shown_when_chosen(rep, leads):
    client = client_for(rep)

    default = client.get("/leads/")
    chosen = client.get("/leads/?cols=predictive&sort=-score")

    assert "Predictive" not in HEADING.findall(default.content.decode())
    assert CELL.findall(default.content.decode()) == []
    assert HEADING.findall(chosen.content.decode()) == ["Name", "Predictive", "Score"]
    # Hottest rule score first: the lead without a predictive score shows a dash.
    assert CELL.findall(chosen.content.decode()) == ["—", "35", "35", "80"]


def test_a_secondary_models_predictive_score_is_not_shown(rep):
    lead = predicted(LeadFactory(owner=rep), 64, primary=False)

    body = client_for(rep).get("/leads/?cols=predictive").content.decode()

    assert ids_in_body(body) == [lead.pk]
    assert CELL.findall(body) == ["—"]


def ids_in_body(body: str) -> list[int]:
    return [int(pk) for pk in ROW.findall(body)]


def test_the_predictive_heading_sorts_highest_first_then_lowest_with_the_unscored_last(rep, leads):
    client = client_for(rep)

    listed = client.get("/leads/?cols=predictive")
    body = listed.content.decode()
    down = client.get("/leads/?cols=predictive&sort=-predictive")
    up = client.get("/leads/?cols=predictive&sort=predictive")

    assert 'href="/leads/?cols=predictive&amp;sort=-predictive"' in body
    assert "sorted by predictive score, highest first" in down.content.decode()
    assert ids_in(down) == [
        leads["high"].pk,
        *sorted([leads["low_b"].pk, leads["low_a"].pk], reverse=True),
        leads["none"].pk,
    ]
    assert ids_in(up) == [
        *sorted([leads["low_a"].pk, leads["low_b"].pk]),
        leads["high"].pk,
        leads["none"].pk,
    ]
    assert 'aria-sort="ascending"><a href="/leads/?cols=predictive&amp;sort=-predictive"' in (
        up.content.decode()
    )


def test_the_predictive_sort_works_without_the_column(rep, leads):
    response = client_for(rep).get("/leads/?sort=-predictive")

    assert response.status_code == 200
    assert ids_in(response)[0] == leads["high"].pk
    assert ids_in(response)[-1] == leads["none"].pk


@pytest.mark.parametrize("sort", ["-predictive", "predictive"])
def test_pages_of_the_predictive_sort_walk_every_lead_once_and_back(rep, sort):
    for n in range(7):
        predicted(LeadFactory(owner=rep), [50, 20, None, 50, 90, None, 20][n])
    rows = Lead.objects.visible_to(rep).values("id")
    everything = leads_page(rows, sort=sort, cursor=None, size=100).rows

    seen, pages, cursor = [], [], None
    while True:
        page = leads_page(rows, sort=sort, cursor=cursor, size=2)
        pages.append(page)
        seen += [row["id"] for row in page.rows]
        if page.next_cursor is None:
            break
        cursor = cursor_decode(page.next_cursor, sort=sort)
    back = leads_page(
        rows, sort=sort, cursor=cursor_decode(pages[-1].previous_cursor, sort=sort), size=2
    )

    scores = [row["predictive_score"] for row in everything]
    filled = [s for s in scores if s is not None]
    assert seen == [row["id"] for row in everything]
    assert scores[len(filled) :] == [None, None]
    assert filled == sorted(filled, reverse=sort.startswith("-"))
    assert back.rows == pages[-2].rows


def test_the_predictive_sort_shows_only_the_leads_in_view(rep, other_rep, outsider, leads):
    hidden = predicted(LeadFactory(owner=other_rep), 99)

    mine = ids_in(client_for(rep).get("/leads/?cols=predictive&sort=-predictive"))
    theirs = ids_in(client_for(other_rep).get("/leads/?sort=-predictive"))
    outside = client_for(outsider).get("/leads/?sort=-predictive")

    assert hidden.pk not in mine
    assert sorted(mine) == sorted(lead.pk for lead in leads.values())
    assert theirs == [hidden.pk]
    assert outside.status_code == client_for(outsider).get("/leads/").status_code
    assert hidden.pk not in ids_in(outside)


@pytest.mark.parametrize("rows", [3, 30])
def test_the_predictive_column_and_sort_add_no_query_per_row(
    rep, django_assert_max_num_queries, rows
):
    for n in range(rows):
        predicted(LeadFactory(owner=rep), n if n % 3 else None)
    client = client_for(rep)
    client.get("/leads/")  # the session and the person's caches

    with django_assert_max_num_queries(12):
        response = client.get("/leads/?cols=predictive&sort=-predictive")

    assert len(ids_in(response)) == min(rows, 25)


def test_an_export_of_the_predictive_sort_lists_the_leads_in_its_order(manager, leads):
    response = client_for(manager).get("/leads/export.csv?sort=-predictive")

    body = b"".join(response.streaming_content).decode("utf-8-sig").splitlines()[1:]
    assert [int(line.split(",")[0]) for line in body] == [
        leads["high"].pk,
        *sorted([leads["low_a"].pk, leads["low_b"].pk], reverse=True),
        leads["none"].pk,
    ]


# --- Next up ---------------------------------------------------------------------------------


def test_next_up_shows_the_predictive_score_of_the_leads_that_have_one(rep):
    shown = predicted(LeadFactory(owner=rep, score=95, band="hot", first_name="Shown"), 73)
    predicted(LeadFactory(owner=rep, score=90, band="hot", first_name="Bare"), None)

    body = client_for(rep).get("/next/").content.decode()

    assert body.count("Predictive 73") == 2  # the current card and its queue item
    assert body.count("predictive-score") == 2
    assert f'data-lead="{shown.pk}"' in body


# --- The API ---------------------------------------------------------------------------------


def api_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def walk(client: APIClient, url: str) -> list[dict]:
    rows, pages = [], []
    while url:
        answer = client.get(url)
        assert answer.status_code == 200, answer.content
        pages.append(answer.json())
        rows += answer.json()["results"]
        url = answer.json()["next"]
    return rows


@pytest.mark.parametrize("ordering", ["-predictive_score", "predictive_score"])
def test_the_api_orders_by_predictive_score_with_the_unscored_last_across_pages(
    rep, other_rep, ordering
):
    for score in [50, None, 20, 50, 90, None, 20]:
        predicted(LeadFactory(owner=rep), score)
    predicted(LeadFactory(owner=other_rep), 99)
    client = api_for(rep)

    rows = walk(client, f"/api/v1/leads/?ordering={ordering}&page_size=2")
    last = client.get(f"/api/v1/leads/?ordering={ordering}&page_size=2").json()
    while last["next"]:
        last = client.get(last["next"]).json()
    back = client.get(last["previous"]).json()

    scores = [row["predictive_score"] for row in rows]
    filled = [s for s in scores if s is not None]
    descending = ordering.startswith("-")
    assert len(rows) == 7
    assert len({row["id"] for row in rows}) == 7
    assert scores[5:] == [None, None]
    assert filled == sorted(filled, reverse=descending)
    for first, second in itertools.pairwise(rows):
        if first["predictive_score"] == second["predictive_score"]:
            assert (first["id"] > second["id"]) == descending
    assert [row["id"] for row in back["results"]] == [row["id"] for row in rows[4:6]]


def test_the_api_refuses_nothing_new_for_an_outsider(outsider):
    answer = api_for(outsider).get("/api/v1/leads/?ordering=-predictive_score")

    assert answer.status_code == api_for(outsider).get("/api/v1/leads/").status_code

"""The header's search at /search/: leads by full name, email, phone in any format,
company and deal name; companies; deals; only what the person may see.

The same tests run on SQLite (no ``DATABASE_URL``), where the search runs without
indexes and the phone match compares the digits' end directly; the plan tests at the
end need PostgreSQL.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client

from crm.models import Role, Team
from leads.deals import deal_save
from leads.models import Deal, Lead
from leads.search import deals_search, leads_search, phone_suffix
from tests.conftest import make_user
from tests.factories import CompanyFactory, LeadFactory

pytestmark = pytest.mark.django_db

LEAD_LINK = re.compile(r'<a href="/leads/(\d+)/">')


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def found(user, text: str, *, htmx: bool = True) -> str:
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = client_for(user).get("/search/", {"q": text}, **headers)
    assert response.status_code == 200
    return response.content.decode()


def lead_ids(body: str) -> set[int]:
    return {int(pk) for pk in LEAD_LINK.findall(body)}


@pytest.fixture
def katharina(rep):
    company = CompanyFactory(name="Wolfram Maschinenbau", domain="wolfram.example")
    return LeadFactory(
        owner=rep,
        first_name="Katharina",
        last_name="Wolf",
        email="k.wolf@wolfram.example",
        phone="+49 30 1234567",
        company=company,
        score=72,
        band="hot",
    )


@pytest.fixture
def others(rep):
    """Leads that share a word with Katharina Wolf but are not her."""
    return [
        LeadFactory(owner=rep, first_name="Katharina", last_name="Berg", phone="+49 89 7654321"),
        LeadFactory(owner=rep, first_name="Peter", last_name="Wolf", phone="+44 20 7946 0958"),
    ]


# --- Leads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["Katharina Wolf", "wolf katharina", "  KATHARINA   wolf "])
def test_full_name_finds_the_lead_in_either_order(rep, katharina, others, text):
    body = found(rep, text)

    assert lead_ids(body) == {katharina.pk}
    assert "Wolfram Maschinenbau" in body
    assert 'class="band band-hot"' in body
    assert ">72<" in body


@pytest.mark.parametrize(
    "text",
    [
        "+49 30 1234567",
        "+49301234567",
        "0049 30 1234567",
        "030 1234567",
        "(030) 123-4567",
        "1234567",
    ],
)
def test_phone_in_any_format_finds_the_lead(rep, katharina, others, text):
    assert lead_ids(found(rep, text)) == {katharina.pk}


def test_phone_stored_nationally_is_found_by_its_international_form(rep):
    # Given a number stored as someone typed it at home
    lead = LeadFactory(owner=rep, phone="030/1234567")
    LeadFactory(owner=rep, phone="+49 40 1234567")

    # When it is searched in E.164
    body = found(rep, "+49301234567")

    # Then the stored number's digits end with the national number, and only it matches
    assert lead_ids(body) == {lead.pk}


def test_email_prefix_finds_the_lead(rep, katharina, others):
    assert lead_ids(found(rep, "k.wolf@")) == {katharina.pk}


def test_company_name_finds_its_leads_and_the_company(rep, katharina, others):
    colleague = LeadFactory(owner=rep, company=katharina.company, first_name="Jonas")

    body = found(rep, "wolfram masch")

    assert lead_ids(body) == {katharina.pk, colleague.pk}
    assert f'href="/companies/{katharina.company.pk}/"' in body


def test_deal_name_finds_the_deal_on_a_visible_lead(rep, katharina):
    deal_save(deal=Deal(lead=katharina, name="Fräsmaschinen Rahmenvertrag", amount=25000))

    body = found(rep, "rahmenvertrag")

    assert "Fräsmaschinen Rahmenvertrag" in body
    assert f'href="/leads/{katharina.pk}/#deals"' in body


def test_leads_come_hottest_first_with_a_link_to_all_of_them_in_the_list(rep):
    cold = LeadFactory(owner=rep, last_name="Hartmann", score=5, band="cold")
    hot = LeadFactory(owner=rep, last_name="Hartmann", score=90, band="hot")

    body = found(rep, "hartmann")

    assert body.index(f"/leads/{hot.pk}/") < body.index(f"/leads/{cold.pk}/")
    assert 'href="/leads/?q=hartmann"' in body
    assert "All 2 leads" in body


def test_the_list_and_the_header_find_the_same_leads(rep, katharina, others):
    # The header's "all N leads" opens the list with the same text: it finds the same.
    body = client_for(rep).get("/leads/", {"q": "wolf katharina"}).content.decode()
    rows = {int(pk) for pk in re.findall(r'data-label="Name"><a href="/leads/(\d+)/">', body)}

    assert rows == {katharina.pk}


# --- Who finds what -------------------------------------------------------------------------


def test_rep_does_not_find_another_reps_lead_or_its_deal(rep, other_rep, katharina):
    # Given a lead and deal of a teammate (a rep sees only their own and the pool)
    theirs = LeadFactory(owner=other_rep, first_name="Katharina", last_name="Wolff")
    deal_save(deal=Deal(lead=theirs, name="Wolff secret deal", amount=10))

    # When the rep searches for both
    names = found(rep, "katharina wolf")
    deals = found(rep, "wolff secret")

    # Then only their own lead shows, and no deal at all
    assert lead_ids(names) == {katharina.pk}
    assert "Wolff secret deal" not in deals
    assert lead_ids(deals) == set()


def test_manager_finds_the_teams_leads_but_not_another_teams(rep, manager, katharina):
    south = Team.objects.create(name="South")
    stranger = make_user("south_rep", Role.REP, team=south)
    LeadFactory(owner=stranger, first_name="Katharina", last_name="Wolf", phone="+49301234567")

    assert lead_ids(found(manager, "Katharina Wolf")) == {katharina.pk}
    assert lead_ids(found(manager, "030 1234567")) == {katharina.pk}


def test_outsider_finds_nothing(outsider, katharina):
    body = found(outsider, "wolfram")

    assert lead_ids(body) == set()
    assert "/companies/" not in body
    assert "Nothing found" in body


def test_anonymous_is_sent_to_log_in(katharina):
    response = Client().get("/search/", {"q": "wolf"})

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


# --- The page and its input -----------------------------------------------------------------


def test_plain_request_opens_a_whole_page_with_the_findings(rep, katharina):
    body = found(rep, "katharina wolf", htmx=False)

    assert "<html" in body
    assert 'role="search"' in body
    assert lead_ids(body) >= {katharina.pk}


def test_htmx_request_gets_the_findings_alone(rep, katharina):
    body = found(rep, "katharina wolf")

    assert "<html" not in body
    assert lead_ids(body) == {katharina.pk}


def test_short_text_asks_for_more(rep, katharina):
    body = found(rep, "ka")

    assert lead_ids(body) == set()
    assert "Type at least 3 characters." in body


def test_too_long_text_is_refused_with_the_fields_message(rep):
    response = client_for(rep).get("/search/", {"q": "x" * 101})

    assert response.status_code == 400
    assert "Ensure this value has at most 100 characters" in response.content.decode()


def test_every_page_has_the_search_box(rep):
    body = client_for(rep).get("/").content.decode()

    assert 'role="search"' in body
    assert 'hx-get="/search/"' in body
    assert 'aria-live="polite"' in body


# --- The pieces ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        ("+49 30 1234567", "301234567"),
        ("0049 30 1234567", "301234567"),
        ("030 1234567", "301234567"),
        ("1234567", "1234567"),
        ("12-34", ""),
        ("wolf 12345", ""),
        ("lead12345@", ""),
    ],
)
def test_phone_suffix(text, suffix):
    assert phone_suffix(text) == suffix


@pytest.mark.postgres
def test_phone_and_deal_searches_use_their_indexes_on_postgresql(rep):
    # Given enough rows that the planner prefers an index to a scan
    Lead.objects.bulk_create(
        Lead(email=f"person{n}@example.com", phone=f"+49 30 {1000000 + n}") for n in range(3000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE leads_lead")
        cursor.execute("ANALYZE leads_deal")

    # When the searches are explained
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        phone_plan = leads_search(Lead.objects.all(), "030 1002999").explain()
        deal_plan = deals_search(Deal.objects.all(), "rahmen").explain()
        cursor.execute("RESET enable_seqscan")

    # Then each reads its index
    assert "lead_phone_digits_idx" in phone_plan
    assert "deal_name_trgm_idx" in deal_plan

"""The company page at /companies/<id>/: what the company is, its people by score, its
deals with totals, its latest activity; of these only what the person may see; and a
link to it from every company name in the workspace."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from leads.deals import deal_save
from leads.models import Deal, DealStatus
from tests.factories import ActivityFactory, CompanyFactory, LeadFactory

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def acme(rep, other_rep):
    company = CompanyFactory(
        name="Acme Logistics",
        domain="acme.example",
        industry="logistics",
        employee_count=340,
        country="NL",
    )
    mine = LeadFactory(owner=rep, company=company, first_name="Mara", last_name="Vos", score=80)
    pool = LeadFactory(owner=None, company=company, first_name="Pim", last_name="Bos", score=30)
    theirs = LeadFactory(
        owner=other_rep, company=company, first_name="Hidden", last_name="Person", score=99
    )
    deal_save(deal=Deal(lead=mine, name="Fleet renewal", amount=Decimal("1200")))
    deal_save(
        deal=Deal(
            lead=pool,
            name="Depot pilot",
            amount=Decimal("300"),
            status=DealStatus.WON,
            closed_at=timezone.now(),
        )
    )
    deal_save(deal=Deal(lead=theirs, name="Hidden deal", amount=Decimal("99999")))
    ActivityFactory(lead=mine, url="https://acme.example/pricing")
    ActivityFactory(lead=theirs, url="https://acme.example/hidden")
    return company, mine, pool, theirs


def test_company_page_shows_the_company_its_people_deals_and_activity(rep, acme):
    company, mine, pool, _ = acme

    response = client_for(rep).get(f"/companies/{company.pk}/")
    body = response.content.decode()

    assert response.status_code == 200
    assert "<h1>Acme Logistics</h1>" in body
    assert "acme.example" in body
    assert "Logistics" in body
    assert "340 employees" in body
    assert "NL" in body
    # People, hottest first, with their owner
    assert body.index(f'href="/leads/{mine.pk}/"') < body.index(f'href="/leads/{pool.pk}/"')
    assert 'class="band band-' in body
    assert "Unassigned" in body
    # Deals with totals per status
    assert "Fleet renewal" in body
    assert "Depot pilot" in body
    assert "<dt>Open</dt><dd>1,200 EUR</dd>" in body
    assert "<dt>Won</dt><dd>300 EUR</dd>" in body
    # Activity of its leads
    assert "Page view" in body


def test_rep_sees_none_of_a_teammates_lead_its_deals_or_activity(rep, acme):
    company, *_ = acme

    body = client_for(rep).get(f"/companies/{company.pk}/").content.decode()

    assert "Hidden" not in body
    assert "99,999" not in body
    assert 'People <span class="muted">(2)</span>' in body


def test_manager_sees_the_whole_team_at_the_company(manager, acme):
    company, _, _, theirs = acme

    body = client_for(manager).get(f"/companies/{company.pk}/").content.decode()

    assert f'href="/leads/{theirs.pk}/"' in body
    assert "Hidden deal" in body


def test_company_without_leads_in_view_still_shows_what_it_is(rep, other_rep):
    # Companies are read by everyone with a role, as in the REST API.
    company = CompanyFactory(name="Elsewhere GmbH")
    LeadFactory(owner=other_rep, company=company, first_name="Secret")

    body = client_for(rep).get(f"/companies/{company.pk}/").content.decode()

    assert "Elsewhere GmbH" in body
    assert "Secret" not in body
    assert "No leads here that you can see." in body


def test_outsider_and_missing_company_get_404(outsider, rep, acme):
    company, *_ = acme

    assert client_for(outsider).get(f"/companies/{company.pk}/").status_code == 404
    assert client_for(rep).get(f"/companies/{company.pk + 1000}/").status_code == 404


def test_company_names_link_to_the_company_page(rep, acme):
    company, mine, *_ = acme
    target = f'href="/companies/{company.pk}/"'
    client = client_for(rep)

    assert target in client.get(f"/leads/{mine.pk}/").content.decode()
    assert target in client.get("/leads/").content.decode()
    assert target in client.get("/pipeline/").content.decode()
    assert target in client.get("/").content.decode()


def scored(company, rep, other_rep):
    """The company's people scored in a model giving +20 to heads and +25 per pricing
    view; another rep's person is the most engaged."""
    from scoring.lead_scoring import leads_score
    from tests.factories import active_model, fit_rule, page_rule

    model = active_model(name="Accounts", engaged_from=20, surge_points=0)
    fit_rule(model, 20, "job_title", "contains", "head")
    page_rule(model, 25, "/pricing")
    hidden = LeadFactory(owner=other_rep, company=company, first_name="Secret", job_title="Head")
    for _ in range(2):
        ActivityFactory(lead=hidden, url="https://acme.example/pricing")
    clerk = LeadFactory(owner=rep, company=company, first_name="Clerk", job_title="Clerk")
    leads_score(lead_ids=list(company.leads.values_list("pk", flat=True)))
    return hidden, clerk


def test_company_page_shows_the_account_score_and_only_the_contacts_one_may_see(
    rep, other_rep, acme
):
    company, mine, pool, theirs = acme
    hidden, clerk = scored(company, rep, other_rep)

    body = client_for(rep).get(f"/companies/{company.pk}/").content.decode()
    section = body[body.index('id="account"') : body.index('id="people"')]
    cells = re.findall(r"<td>(.*?)</td>", section)

    # The company's figures, from all its people: best fit 20, engagement 25 (Mara's
    # view) + 50 (the hidden person's two), both of them engaged; 20 + 75 is hot.
    assert '<th scope="row">Accounts</th>' in section
    assert 'class="band band-hot" title="Hot">95</span>' in cells[0]
    assert cells[1:4] == ["20", "75", "2"]
    # The contacts behind it: the rep's own and the pool's, best first, never another's
    links = re.findall(r'href="/leads/(\d+)/"', cells[4])
    assert links == [str(mine.pk), str(pool.pk), str(clerk.pk)]
    assert str(hidden.pk) not in links
    assert str(theirs.pk) not in links


def test_company_page_of_unscored_people_says_there_is_no_account_score_yet(rep, acme):
    company = acme[0]

    body = client_for(rep).get(f"/companies/{company.pk}/").content.decode()

    assert "No account score yet" in body


def test_outsider_sees_no_company_page_nor_its_account_score(outsider, rep, other_rep, acme):
    company = acme[0]
    scored(company, rep, other_rep)

    response = client_for(outsider).get(f"/companies/{company.pk}/")

    assert response.status_code == 404
    assert b"Account score" not in response.content

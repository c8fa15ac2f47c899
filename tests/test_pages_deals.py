"""Deals where reps work, through HTTP: the lead page's Deals card (new, change, won,
lost) and the deal board at /deals/ (columns, totals, rotting, moves, filters), each as
the people who may and may not."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.models import Role, Team
from leads.deals import deal_create, deal_pipeline_ensure
from leads.models import Deal, DealStage, DealStatus, Lead, ProductLine, Stage, StageChange
from tests.conftest import make_user
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def stages() -> list[DealStage]:
    return deal_pipeline_ensure()


@pytest.fixture
def opportunity(rep) -> Lead:
    return LeadFactory(owner=rep, stage=Stage.OPPORTUNITY, first_name="Olga", last_name="Opp")


@pytest.fixture
def south(db):
    """Another team's rep and their deal, which North's people must not reach."""
    team = Team.objects.create(name="South")
    seller = make_user("south_rep", Role.REP, team=team)
    lead = LeadFactory(owner=seller, stage=Stage.OPPORTUNITY, first_name="Zebedee")
    return seller, lead


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def deal_form(stage: DealStage, **fields) -> dict:
    return {
        "deal-name": "Fleet pilot",
        "deal-amount": "12000",
        "deal-currency": "eur",
        "deal-stage": stage.pk,
        "deal-expected_close": "2030-03-31",
        "deal-probability": "",
        "deal-product_line": "",
        **{f"deal-{name}": value for name, value in fields.items()},
    }


def column(body: str, key: str) -> str:
    start = body.index(f'aria-labelledby="column-{key}"')
    return body[start : body.find("</section>", start)]


def deal_cards(body: str, key: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-deal="(\d+)"', column(body, key))]


# --- The lead page --------------------------------------------------------------------------


def test_the_lead_page_offers_a_new_deal_up_front_for_an_opportunity_without_one(
    rep, opportunity, stages
):
    body = client_for(rep).get(f"/leads/{opportunity.pk}/").content.decode()

    assert "is an opportunity without an open deal" in body
    assert '<a href="#deals">create its deal</a>' in body
    assert re.search(r'<details class="deal-new" open>', body)
    assert 'aria-label="Create a deal"' in body


def test_a_lead_with_an_open_deal_is_not_prodded(rep, opportunity, stages):
    deal_create(lead=opportunity, by=rep, name="Pilot")

    body = client_for(rep).get(f"/leads/{opportunity.pk}/").content.decode()

    assert "without an open deal" not in body
    assert "create its deal" not in body
    assert '<details class="deal-new">' in body


def test_creating_a_deal_with_htmx_answers_the_card(rep, opportunity, stages):
    line = ProductLine.objects.create(name="Fleet", slug="fleet")

    response = client_for(rep).post(
        f"/leads/{opportunity.pk}/deals/",
        deal_form(stages[1], product_line=line.pk, probability="60"),
        headers=HTMX,
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section class="card" id="deals"')
    assert "Deal “Fleet pilot” created." in body
    deal = Deal.objects.get()
    assert (deal.lead, deal.name, deal.amount, deal.currency) == (
        opportunity,
        "Fleet pilot",
        Decimal(12000),
        "EUR",
    )
    assert (deal.stage, deal.probability, deal.product_line, deal.owner) == (
        stages[1],
        60,
        line,
        rep,
    )
    assert deal.expected_close == dt.date(2030, 3, 31)
    assert "hx-swap-oob" not in body


def test_creating_a_deal_without_javascript_redirects_to_the_card(rep, opportunity, stages):
    client = client_for(rep)
    response = client.post(f"/leads/{opportunity.pk}/deals/", deal_form(stages[0]))

    assert response.status_code == 302
    assert response["Location"] == f"/leads/{opportunity.pk}/#deals"
    assert "Deal “Fleet pilot” created." in client.get(response["Location"]).content.decode()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "  "}, "Name the deal."),
        ({"currency": "12€"}, "three-letter currency code"),
        ({"amount": "-5"}, "greater than or equal to 0"),
        ({"probability": "150"}, "less than or equal to 100"),
        ({"expected_close": "someday"}, "Enter a valid date"),
    ],
)
def test_a_bad_deal_form_answers_400_with_the_form_and_stores_nothing(
    rep, opportunity, stages, fields, message
):
    response = client_for(rep).post(
        f"/leads/{opportunity.pk}/deals/", deal_form(stages[0], **fields), headers=HTMX
    )

    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    assert '<details class="deal-new" open>' in body
    assert not Deal.objects.exists()


def test_a_rep_cannot_give_the_deal_to_someone_else(rep, other_rep, opportunity, stages):
    response = client_for(rep).post(
        f"/leads/{opportunity.pk}/deals/", deal_form(stages[0], owner=other_rep.pk), headers=HTMX
    )

    assert response.status_code == 400
    assert not Deal.objects.exists()


def test_a_manager_gives_a_deal_to_a_member_of_the_team(
    manager, rep, other_rep, opportunity, stages
):
    response = client_for(manager).post(
        f"/leads/{opportunity.pk}/deals/", deal_form(stages[0], owner=other_rep.pk), headers=HTMX
    )

    assert response.status_code == 200
    assert Deal.objects.get().owner == other_rep


def test_changing_a_deal_moves_its_stage_and_restarts_its_idle_time(rep, opportunity, stages):
    deal = deal_create(lead=opportunity, by=rep, name="Pilot", amount=Decimal(100))
    long_ago = timezone.now() - dt.timedelta(days=60)
    Deal.objects.filter(pk=deal.pk).update(stage_changed_at=long_ago)
    data = {
        f"deal-{deal.pk}-{name}": value
        for name, value in {
            "name": "Pilot, bigger",
            "amount": "2500",
            "currency": "EUR",
            "stage": stages[2].pk,
            "owner": rep.pk,
        }.items()
    }

    response = client_for(rep).post(f"/deals/{deal.pk}/change/", data, headers=HTMX)

    assert response.status_code == 200
    deal.refresh_from_db()
    assert (deal.name, deal.amount, deal.stage) == ("Pilot, bigger", Decimal(2500), stages[2])
    assert deal.stage_changed_at > long_ago


def test_the_card_flags_a_rotting_deal(rep, opportunity, stages):
    deal = deal_create(lead=opportunity, by=rep, name="Pilot")
    Deal.objects.filter(pk=deal.pk).update(stage_changed_at=timezone.now() - dt.timedelta(days=45))

    body = client_for(rep).get(f"/leads/{opportunity.pk}/").content.decode()

    assert "Rotting: 45 days in Qualification" in body


def test_winning_from_the_card_makes_a_customer_and_refreshes_header_and_stage(
    rep, opportunity, stages
):
    deal = deal_create(lead=opportunity, by=rep, name="Pilot")

    response = client_for(rep).post(f"/deals/{deal.pk}/won/", {}, headers=HTMX)

    body = response.content.decode()
    assert response.status_code == 200
    assert "Deal “Pilot” won: Olga Opp is a customer." in body
    assert '<header class="lead-header card" id="lead-header" hx-swap-oob="true">' in body
    assert '<section class="card" id="stage" aria-labelledby="stage-h" hx-swap-oob="true">' in body
    assert "Stage: Customer" in body
    assert Deal.objects.get().status == DealStatus.WON
    assert Lead.objects.get(pk=opportunity.pk).stage == Stage.CUSTOMER
    change = StageChange.objects.get(lead=opportunity)
    assert (change.by, change.to_stage) == (rep, Stage.CUSTOMER)


def test_winning_a_disqualified_leads_deal_answers_400_and_changes_nothing(rep, stages):
    lead = LeadFactory(owner=rep, stage=Stage.DISQUALIFIED, disqualification_reason="No budget")
    deal = deal_create(lead=lead, by=rep, name="Pilot")

    response = client_for(rep).post(f"/deals/{deal.pk}/won/", {}, headers=HTMX)

    assert response.status_code == 400
    assert "recycle it before winning" in response.content.decode()
    assert Deal.objects.get().status == DealStatus.OPEN
    assert Lead.objects.get(pk=lead.pk).stage == Stage.DISQUALIFIED


def test_losing_from_the_card_needs_a_reason_from_the_pick_list(rep, opportunity, stages):
    deal = deal_create(lead=opportunity, by=rep, name="Pilot")
    client = client_for(rep)
    url = f"/deals/{deal.pk}/lost/"

    missing = client.post(url, {f"lost-{deal.pk}-reason": ""}, headers=HTMX)
    unknown = client.post(url, {f"lost-{deal.pk}-reason": "Aliens"}, headers=HTMX)
    assert Deal.objects.get().status == DealStatus.OPEN
    lost = client.post(url, {f"lost-{deal.pk}-reason": "Chose a competitor"}, headers=HTMX)

    assert missing.status_code == unknown.status_code == 400
    assert "Say why the deal is lost." in missing.content.decode()
    assert "Select a valid choice" in unknown.content.decode()
    assert lost.status_code == 200
    assert "Deal “Pilot” lost: Chose a competitor." in lost.content.decode()
    deal.refresh_from_db()
    assert (deal.status, deal.lost_reason) == (DealStatus.LOST, "Chose a competitor")
    assert Lead.objects.get(pk=opportunity.pk).stage == Stage.OPPORTUNITY


def test_the_stage_form_refuses_a_customer_without_a_won_deal_to_a_rep(rep, opportunity, stages):
    response = client_for(rep).post(
        f"/leads/{opportunity.pk}/stage/",
        {"stage-stage": "customer", "stage-reason": "Trust me"},
        headers=HTMX,
    )

    assert response.status_code == 400
    assert "when one of its deals is won" in response.content.decode()
    assert Lead.objects.get(pk=opportunity.pk).stage == Stage.OPPORTUNITY


def test_the_stage_form_lets_a_manager_override_with_a_reason(manager, opportunity, stages):
    response = client_for(manager).post(
        f"/leads/{opportunity.pk}/stage/",
        {"stage-stage": "customer", "stage-reason": "Signed on paper"},
    )

    assert response.status_code == 302
    change = StageChange.objects.get(lead=opportunity)
    assert change.reason == "Customer without a won deal: Signed on paper"


@pytest.mark.parametrize("action", ["change", "won", "lost"])
def test_a_rep_is_refused_another_teams_deal_with_404(rep, south, stages, action):
    seller, lead = south
    deal = deal_create(lead=lead, by=seller, name="Southern deal")
    before = list(Deal.objects.values())

    response = client_for(rep).post(
        f"/deals/{deal.pk}/{action}/",
        {f"lost-{deal.pk}-reason": "No decision", f"deal-{deal.pk}-name": "Pwned"},
    )

    assert response.status_code == 404
    assert list(Deal.objects.values()) == before
    assert Lead.objects.get(pk=lead.pk).stage == Stage.OPPORTUNITY


def test_a_rep_cannot_add_a_deal_to_another_teams_lead(rep, south, stages):
    _, lead = south

    response = client_for(rep).post(f"/leads/{lead.pk}/deals/", deal_form(stages[0]))

    assert response.status_code == 404
    assert not Deal.objects.exists()


def test_a_marketer_reads_deals_but_cannot_win_them(marketer, rep, opportunity, stages):
    deal = deal_create(lead=opportunity, by=rep, name="Pilot")
    client = client_for(marketer)

    page = client.get(f"/leads/{opportunity.pk}/").content.decode()
    response = client.post(f"/deals/{deal.pk}/won/", {})

    assert "Pilot" in page
    assert f'action="/deals/{deal.pk}/won/"' not in page
    assert response.status_code == 403
    assert Deal.objects.get().status == DealStatus.OPEN


# --- The board ------------------------------------------------------------------------------


def test_the_board_shows_stages_with_counts_totals_weighted_totals_and_rotting(
    rep, opportunity, stages
):
    qualification, proposal, _ = stages
    now = timezone.now()
    first = deal_create(
        lead=opportunity,
        by=rep,
        name="Fleet pilot",
        amount=Decimal(10000),
        expected_close=dt.date(2030, 5, 1),
    )
    deal_create(lead=opportunity, by=rep, name="Add-on", amount=Decimal(2000))
    deal_create(lead=opportunity, by=rep, name="US office", amount=Decimal(4000), currency="USD")
    late = deal_create(
        lead=opportunity, by=rep, name="Renewal", amount=Decimal(5000), stage=proposal
    )
    Deal.objects.filter(pk=late.pk).update(stage_changed_at=now - dt.timedelta(days=30))

    response = client_for(rep).get("/deals/")

    body = response.content.decode()
    assert response.status_code == 200
    first_column = column(body, str(qualification.pk))
    assert '<span class="count">3</span>' in first_column
    assert "12,000 EUR" in first_column
    assert "4,000 USD" in first_column
    assert "2,400 EUR" in first_column
    assert "800 USD" in first_column
    assert deal_cards(body, str(qualification.pk))[0] == first.pk
    second = column(body, str(proposal.pk))
    assert "2,500 EUR" in second
    assert "1 rotting" in second
    assert "Rotting: 30 days in this stage" in second
    assert 'aria-current="page">Deals</a>' in body


def test_the_board_shows_what_the_lead_list_shows(rep, manager, other_rep, south, stages):
    own = deal_create(lead=LeadFactory(owner=rep), by=rep, name="Mine")
    mate = deal_create(lead=LeadFactory(owner=other_rep), by=other_rep, name="Teammate's")
    seller, lead = south
    far = deal_create(lead=lead, by=seller, name="Southern deal")
    key = str(stages[0].pk)

    rep_board = client_for(rep).get("/deals/").content.decode()
    manager_board = client_for(manager).get("/deals/").content.decode()
    as_rep, as_manager = deal_cards(rep_board, key), deal_cards(manager_board, key)

    assert sorted(as_rep) == [own.pk]
    assert sorted(as_manager) == sorted([own.pk, mate.pk])
    assert far.pk not in as_rep + as_manager
    # The column's count, from the totals, says the same.
    assert '<span class="count">1</span>' in column(rep_board, key)
    assert '<span class="count">2</span>' in column(manager_board, key)


def test_the_board_filters_by_owner_and_product_line(manager, rep, other_rep, stages):
    line = ProductLine.objects.create(name="Fleet", slug="fleet")
    own = deal_create(lead=LeadFactory(owner=rep), by=rep, name="Mine", product_line=line)
    deal_create(lead=LeadFactory(owner=other_rep), by=other_rep, name="Teammate's")
    client = client_for(manager)
    key = str(stages[0].pk)

    by_owner = client.get(f"/deals/?owner={rep.pk}")
    by_line = client.get("/deals/?product=fleet")
    bad = client.get("/deals/?owner=nobody&product=nothing")

    assert deal_cards(by_owner.content.decode(), key) == [own.pk]
    assert deal_cards(by_line.content.decode(), key) == [own.pk]
    for narrowed in (by_owner, by_line):
        assert '<span class="count">1</span>' in column(narrowed.content.decode(), key)
    assert bad.status_code == 400
    assert len(deal_cards(bad.content.decode(), key)) == 2


def test_moving_a_card_on_the_board_changes_its_stage(rep, opportunity, stages):
    deal = deal_create(lead=opportunity, by=rep, name="Pilot")

    response = client_for(rep).post(
        "/deals/move/", {"deal": deal.pk, "stage": stages[2].pk}, headers=HTMX
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "“Pilot” moved to Negotiation." in body
    assert deal_cards(body, str(stages[2].pk)) == [deal.pk]
    assert Deal.objects.get().stage == stages[2]


def test_a_plain_move_redirects_back_to_the_filtered_board(rep, opportunity, stages):
    deal = deal_create(lead=opportunity, by=rep, name="Pilot")

    response = client_for(rep).post(
        "/deals/move/?owner=me&junk=1", {"deal": deal.pk, "stage": stages[1].pk}
    )

    assert response.status_code == 302
    assert response["Location"] == "/deals/?owner=me"


def test_a_move_to_no_stage_is_a_400(rep, opportunity, stages):
    deal = deal_create(lead=opportunity, by=rep, name="Pilot")

    response = client_for(rep).post("/deals/move/", {"deal": deal.pk, "stage": 999999})

    assert response.status_code == 400
    assert Deal.objects.get().stage == stages[0]


def test_a_rep_moving_another_teams_deal_gets_404(rep, south, stages):
    seller, lead = south
    deal = deal_create(lead=lead, by=seller, name="Southern deal")

    response = client_for(rep).post("/deals/move/", {"deal": deal.pk, "stage": stages[2].pk})

    assert response.status_code == 404
    assert Deal.objects.get().stage == stages[0]


def test_winning_and_losing_from_the_board_answers_the_board(rep, stages):
    won = deal_create(lead=LeadFactory(owner=rep, stage=Stage.OPPORTUNITY), by=rep, name="Won")
    lost = deal_create(lead=LeadFactory(owner=rep), by=rep, name="Lost")
    client = client_for(rep)
    board = {**HTMX, "HX-Target": "deal-board"}

    winning = client.post(f"/deals/{won.pk}/won/?owner=me", {"from": "board"}, headers=board)
    refused = client.post(f"/deals/{lost.pk}/lost/", {"from": "board"}, headers=board)
    losing = client.post(
        f"/deals/{lost.pk}/lost/",
        {"from": "board", f"lost-{lost.pk}-reason": "Bad timing"},
        headers=board,
    )

    assert winning.status_code == 200
    assert "Deal “Won” won" in winning.content.decode()
    assert 'class="board deal-board"' in winning.content.decode()
    assert refused.status_code == 400
    assert "Say why the deal is lost." in refused.content.decode()
    assert losing.status_code == 200
    assert deal_cards(losing.content.decode(), str(stages[0].pk)) == []
    statuses = dict(Deal.objects.values_list("name", "status"))
    assert statuses == {"Won": DealStatus.WON, "Lost": DealStatus.LOST}
    assert Lead.objects.get(pk=won.lead_id).stage == Stage.CUSTOMER


def test_a_deal_without_a_stage_has_a_column_of_its_own(rep, stages):
    deal = deal_create(lead=LeadFactory(owner=rep), by=rep, name="Imported")
    Deal.objects.filter(pk=deal.pk).update(stage=None)

    body = client_for(rep).get("/deals/").content.decode()

    assert deal_cards(body, "none") == [deal.pk]
    assert 'data-stage="" data-label="No stage"' in body


def test_the_board_reads_in_a_fixed_number_of_queries(rep, stages):
    client = client_for(rep)
    lead = LeadFactory(owner=rep)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/deals/").status_code == 200
        return len(queries)

    for stage in stages:
        deal_create(lead=lead, by=rep, name=f"First in {stage}", stage=stage)
    few = count()
    for n in range(12):
        deal_create(lead=LeadFactory(owner=rep), by=rep, name=f"Deal {n}", stage=stages[n % 3])

    assert count() == few

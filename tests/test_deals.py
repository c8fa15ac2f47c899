"""Deals and the lead's stage stay in step: winning a deal makes its lead a customer
(through the lifecycle, like any move), a lead becomes a customer without a won deal
only by a manager's override with a reason, and deals move through the pipeline the
admin defines; the deal board sums them per stage and currency."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leads.deal_board import deal_board
from leads.deals import (
    deal_create,
    deal_lose,
    deal_move,
    deal_pipeline_ensure,
    deal_reopen,
    deal_update,
    deal_win,
    lost_reason_clean,
)
from leads.handoff_models import HandOff
from leads.merging import leads_merge
from leads.models import (
    Deal,
    DealOutcome,
    DealStage,
    DealStatus,
    Lead,
    LostReason,
    ProductLine,
    Stage,
    StageChange,
    StageTransitionError,
)
from leads.permissions import deals_visible_to
from leads.signals import lead_stage_changed
from leads.stages import WITHOUT_WON_DEAL, lead_move_to_stage
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def stages() -> list[DealStage]:
    return deal_pipeline_ensure()


@pytest.fixture
def moves():
    """Every ``lead_stage_changed`` sent while the test runs: (from, to, by)."""
    received: list[tuple[str, str, object]] = []

    def receiver(sender, lead, change, **kwargs) -> None:
        received.append((change.from_stage, change.to_stage, change.by))

    lead_stage_changed.connect(receiver, weak=False)
    yield received
    lead_stage_changed.disconnect(receiver)


def history(lead: Lead) -> list[tuple[str, str]]:
    return list(
        StageChange.objects.filter(lead=lead)
        .order_by("at", "id")
        .values_list("from_stage", "to_stage")
    )


# --- Creating and moving -------------------------------------------------------------------


def test_a_new_deal_starts_in_the_first_stage_owned_by_the_leads_owner(rep, stages):
    lead = LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)

    deal = deal_create(lead=lead, by=rep, name="  Fleet pilot ", amount=Decimal("1200"))

    deal.refresh_from_db()
    assert (deal.name, deal.stage, deal.owner, deal.status) == (
        "Fleet pilot",
        stages[0],
        rep,
        DealStatus.OPEN,
    )
    assert deal.win_probability == stages[0].probability == 20
    assert deal.weighted_amount == Decimal("240")


def test_a_deal_is_seen_by_whoever_sees_its_lead_whichever_way_the_lead_changes_hands(
    rep, other_rep, stages
):
    """The deal's copy of its lead's owner, which visibility reads, follows the lead:
    a lead saved or updated set-based, a deal saved from a stale instance, a deal moved
    by a merge."""
    lead = LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)
    deal = deal_create(lead=lead, by=rep, name="Pilot", amount=Decimal("100"))

    def seen_by(person) -> bool:
        return deals_visible_to(person).filter(pk=deal.pk).exists()

    assert (seen_by(rep), seen_by(other_rep)) == (True, False)
    lead.owner = other_rep
    lead.save()
    assert (seen_by(rep), seen_by(other_rep)) == (False, True)
    Lead.objects.filter(pk=lead.pk).update(owner=None)  # the pool: everyone's
    assert (seen_by(rep), seen_by(other_rep)) == (True, True)
    Lead.objects.filter(pk=lead.pk).update(owner=rep)
    deal.name = "Pilot, renamed"
    deal.save()  # the instance still holds the copy of when it was created
    assert (seen_by(rep), seen_by(other_rep)) == (True, False)
    survivor = LeadFactory(owner=other_rep)
    leads_merge(survivor_id=survivor.pk, others=[lead.pk])
    assert Deal.objects.get(pk=deal.pk).lead_id == survivor.pk
    assert (seen_by(rep), seen_by(other_rep)) == (False, True)


def test_a_deal_can_set_its_own_probability_stage_and_owner(rep, other_rep, stages):
    lead = LeadFactory(owner=rep)
    line = ProductLine.objects.create(name="Fleet", slug="fleet")

    deal = deal_create(
        lead=lead,
        by=rep,
        name="Big one",
        amount=Decimal(1000),
        currency="usd",
        stage=stages[2],
        probability=90,
        product_line=line,
        owner=other_rep,
        expected_close=dt.date(2030, 1, 31),
    )

    deal.refresh_from_db()
    assert (deal.currency, deal.stage, deal.owner, deal.product_line) == (
        "USD",
        stages[2],
        other_rep,
        line,
    )
    assert deal.win_probability == 90


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "   "}, "name"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": "E1R"}, "currency"),
        ({"probability": 101}, "probability"),
        ({"amount": Decimal("-1")}, "amount"),
    ],
)
def test_a_deal_with_bad_fields_is_refused_on_the_field(rep, stages, fields, field):
    lead = LeadFactory(owner=rep)

    with pytest.raises(ValidationError) as refused:
        deal_create(lead=lead, by=rep, **{"name": "Pilot", **fields})

    assert field in refused.value.error_dict
    assert not Deal.objects.exists()


def test_moving_a_deal_restarts_its_idle_time_and_moving_a_closed_one_is_refused(rep, stages):
    lead = LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)
    deal = deal_create(lead=lead, by=rep, name="Pilot")
    Deal.objects.filter(pk=deal.pk).update(stage_changed_at=timezone.now() - dt.timedelta(40))
    deal.refresh_from_db()
    assert deal.rotting_days(timezone.now()) == 40

    deal_move(deal=deal, by=rep, stage=stages[1])

    deal.refresh_from_db()
    assert deal.stage == stages[1]
    assert deal.rotting_days(timezone.now()) is None
    deal_lose(deal=deal, by=rep, reason="No decision")
    with pytest.raises(ValidationError):
        deal_move(deal=deal, by=rep, stage=stages[2])
    assert Deal.objects.get(pk=deal.pk).stage == stages[1]


# --- Winning ------------------------------------------------------------------------------


def test_winning_a_deal_makes_the_lead_a_customer_through_the_lifecycle(rep, stages, moves):
    # Given an opportunity with an open deal
    lead = LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)
    deal = deal_create(lead=lead, by=rep, name="Fleet pilot", amount=Decimal(5000))

    # When the rep wins it
    deal_win(deal=deal, by=rep)

    # Then the deal is won, the lead a customer, the move recorded and announced as the rep's
    deal.refresh_from_db()
    lead.refresh_from_db()
    assert deal.status == DealStatus.WON
    assert deal.closed_at is not None
    assert lead.stage == Stage.CUSTOMER
    assert lead.deal_outcome == DealOutcome.WON
    change = StageChange.objects.get(lead=lead)
    assert (change.to_stage, change.by, change.reason) == (
        Stage.CUSTOMER,
        rep,
        "Deal “Fleet pilot” won.",
    )
    assert moves == [(Stage.OPPORTUNITY, Stage.CUSTOMER, rep)]


@pytest.mark.parametrize("start", [Stage.NEW, Stage.MQL, Stage.SQL, Stage.RECYCLED])
def test_winning_moves_an_earlier_lead_through_opportunity(rep, stages, start):
    lead = LeadFactory(owner=rep, stage=start)
    deal = deal_create(lead=lead, by=rep, name="Quick win")

    deal_win(deal=deal, by=rep)

    lead.refresh_from_db()
    assert lead.stage == Stage.CUSTOMER
    assert history(lead) == [(start, Stage.OPPORTUNITY), (Stage.OPPORTUNITY, Stage.CUSTOMER)]
    assert lead.furthest_step == 4


def test_winning_a_second_deal_of_a_customer_changes_no_stage(rep, stages):
    lead = LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)
    first = deal_create(lead=lead, by=rep, name="First")
    second = deal_create(lead=lead, by=rep, name="Upsell")
    deal_win(deal=first, by=rep)

    deal_win(deal=second, by=rep)

    assert Deal.objects.filter(lead=lead, status=DealStatus.WON).count() == 2
    assert history(lead) == [(Stage.OPPORTUNITY, Stage.CUSTOMER)]


def test_winning_a_disqualified_leads_deal_is_refused_and_writes_nothing(rep, stages):
    lead = LeadFactory(owner=rep, stage=Stage.DISQUALIFIED, disqualification_reason="No budget")
    deal = deal_create(lead=lead, by=rep, name="Pilot")

    with pytest.raises(StageTransitionError, match="recycle it"):
        deal_win(deal=deal, by=rep)

    assert Deal.objects.get(pk=deal.pk).status == DealStatus.OPEN
    assert Lead.objects.get(pk=lead.pk).stage == Stage.DISQUALIFIED
    assert not StageChange.objects.exists()


def test_winning_a_won_deal_again_is_refused(rep, stages):
    lead = LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)
    deal = deal_create(lead=lead, by=rep, name="Pilot")
    deal_win(deal=deal, by=rep)
    closed_at = Deal.objects.get(pk=deal.pk).closed_at

    with pytest.raises(ValidationError, match="won already"):
        deal_win(deal=Deal.objects.get(pk=deal.pk), by=rep)

    assert Deal.objects.get(pk=deal.pk).closed_at == closed_at


def test_winning_an_opportunity_hands_nothing_off_twice(rep, stages):
    """The moves go through the lifecycle's announcement: only a move into the hand-off
    stage opens a hand-off, and winning passes no hand-off stage from opportunity."""
    lead = LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)
    deal = deal_create(lead=lead, by=rep, name="Pilot")

    deal_win(deal=deal, by=rep)

    assert not HandOff.objects.filter(lead=lead).exists()


# --- Customers without a won deal ----------------------------------------------------------


def test_a_rep_cannot_make_a_customer_without_a_won_deal(rep, stages, moves):
    lead = LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)
    deal_create(lead=lead, by=rep, name="Still open")

    with pytest.raises(StageTransitionError, match="when one of its deals is won"):
        lead_move_to_stage(lead_id=lead.pk, stage=Stage.CUSTOMER, by=rep, reason="Signed")

    assert Lead.objects.get(pk=lead.pk).stage == Stage.OPPORTUNITY
    assert not StageChange.objects.exists()
    assert moves == []


def test_the_system_cannot_make_a_customer_without_a_won_deal(stages):
    lead = LeadFactory(stage=Stage.OPPORTUNITY)

    with pytest.raises(StageTransitionError):
        lead_move_to_stage(lead_id=lead.pk, stage=Stage.CUSTOMER)

    assert Lead.objects.get(pk=lead.pk).stage == Stage.OPPORTUNITY


def test_a_manager_overrides_only_with_a_reason_which_the_history_keeps(rep, manager, stages):
    lead = LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)

    with pytest.raises(StageTransitionError, match="Say why"):
        lead_move_to_stage(lead_id=lead.pk, stage=Stage.CUSTOMER, by=manager, reason="  ")
    change = lead_move_to_stage(
        lead_id=lead.pk, stage=Stage.CUSTOMER, by=manager, reason="Signed on paper"
    )

    assert Lead.objects.get(pk=lead.pk).stage == Stage.CUSTOMER
    assert change.by == manager
    assert change.reason == f"{WITHOUT_WON_DEAL}Signed on paper"


def test_a_lost_deal_does_not_make_a_customer(rep, stages):
    lead = LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)
    deal = deal_create(lead=lead, by=rep, name="Pilot")
    deal_lose(deal=deal, by=rep, reason="Price too high")

    with pytest.raises(StageTransitionError):
        lead_move_to_stage(lead_id=lead.pk, stage=Stage.CUSTOMER, by=rep)


def test_a_won_deal_lets_the_lead_become_a_customer_by_hand(rep, stages):
    """A deal won while the lead could not move (written around the services, say)
    lets its owner make it a customer later."""
    lead = LeadFactory(owner=rep, stage=Stage.SQL)
    deal = deal_create(lead=lead, by=rep, name="Pilot")
    Deal.objects.filter(pk=deal.pk).update(status=DealStatus.WON, closed_at=timezone.now())
    lead_move_to_stage(lead_id=lead.pk, stage=Stage.OPPORTUNITY, by=rep)

    change = lead_move_to_stage(lead_id=lead.pk, stage=Stage.CUSTOMER, by=rep, reason="Signed")

    assert change.reason == "Signed"


# --- Losing ---------------------------------------------------------------------------------


def test_losing_takes_a_reason_from_the_pick_list_in_its_spelling(rep, stages):
    lead = LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)
    deal = deal_create(lead=lead, by=rep, name="Pilot")

    deal_lose(deal=deal, by=rep, reason=" price TOO high ")

    deal.refresh_from_db()
    lead.refresh_from_db()
    assert (deal.status, deal.lost_reason) == (DealStatus.LOST, "Price too high")
    assert deal.closed_at is not None
    assert (lead.stage, lead.deal_outcome) == (Stage.OPPORTUNITY, DealOutcome.LOST)


@pytest.mark.parametrize("reason", ["", "   ", "Aliens"])
def test_losing_without_a_reason_of_the_pick_list_is_refused(rep, stages, reason):
    lead = LeadFactory(owner=rep)
    deal = deal_create(lead=lead, by=rep, name="Pilot")

    with pytest.raises(ValidationError) as refused:
        deal_lose(deal=deal, by=rep, reason=reason)

    assert "lost_reason" in refused.value.error_dict
    assert Deal.objects.get(pk=deal.pk).status == DealStatus.OPEN


def test_a_retired_reason_is_not_offered_and_an_empty_pick_list_takes_any_reason(stages):
    LostReason.objects.filter(name="Bad timing").update(active=False)
    with pytest.raises(ValidationError):
        lost_reason_clean("Bad timing")

    LostReason.objects.update(active=False)

    assert lost_reason_clean(" Moved abroad ") == "Moved abroad"


# --- Changing through deal_update (the API and the admin) --------------------------------------


def test_update_routes_a_new_status_through_winning_losing_and_reopening(rep, stages):
    lead = LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)
    deal = deal_create(lead=lead, by=rep, name="Pilot")

    deal_update(
        deal=deal, by=rep, changes={"status": DealStatus.LOST, "lost_reason": "No decision"}
    )
    assert (deal.status, deal.lost_reason) == (DealStatus.LOST, "No decision")

    deal_update(deal=deal, by=rep, changes={"status": DealStatus.OPEN})
    assert (deal.status, deal.closed_at, deal.lost_reason) == (DealStatus.OPEN, None, "")

    deal_update(deal=deal, by=rep, changes={"status": DealStatus.WON, "name": "Pilot signed"})
    deal.refresh_from_db()
    assert (deal.status, deal.name) == (DealStatus.WON, "Pilot signed")
    assert Lead.objects.get(pk=lead.pk).stage == Stage.CUSTOMER


def test_a_refused_win_leaves_the_other_changes_unwritten(rep, stages):
    lead = LeadFactory(owner=rep, stage=Stage.DISQUALIFIED, disqualification_reason="No budget")
    deal = deal_create(lead=lead, by=rep, name="Pilot")

    with pytest.raises(StageTransitionError):
        deal_update(deal=deal, by=rep, changes={"status": DealStatus.WON, "name": "Renamed"})

    assert Deal.objects.values_list("name", "status").get() == ("Pilot", DealStatus.OPEN)


def test_a_new_stage_restarts_the_idle_time_and_reopening_restarts_it_too(rep, stages):
    lead = LeadFactory(owner=rep)
    deal = deal_create(lead=lead, by=rep, name="Pilot")
    long_ago = timezone.now() - dt.timedelta(days=90)
    Deal.objects.filter(pk=deal.pk).update(stage_changed_at=long_ago)
    deal.refresh_from_db()

    deal_update(deal=deal, by=rep, changes={"amount": Decimal(10)})
    assert Deal.objects.get(pk=deal.pk).stage_changed_at == long_ago
    deal_update(deal=deal, by=rep, changes={"stage": stages[1]})
    assert Deal.objects.get(pk=deal.pk).stage_changed_at > long_ago

    Deal.objects.filter(pk=deal.pk).update(stage_changed_at=long_ago)
    deal.refresh_from_db()
    deal_lose(deal=deal, by=rep, reason="No decision")
    deal_reopen(deal=deal, by=rep)
    assert Deal.objects.get(pk=deal.pk).stage_changed_at > long_ago


# --- The board --------------------------------------------------------------------------------


def test_the_board_sums_each_stage_per_currency_weighs_and_flags_rotting_deals(rep, stages):
    qualification, proposal, negotiation = stages
    lead = LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)
    now = timezone.now()

    def deal(name, stage, amount, currency="EUR", idle=0, probability=None, close=None):
        made = deal_create(
            lead=lead,
            by=rep,
            name=name,
            amount=Decimal(amount),
            currency=currency,
            stage=stage,
            probability=probability,
            expected_close=close,
        )
        Deal.objects.filter(pk=made.pk).update(stage_changed_at=now - dt.timedelta(days=idle))
        return made

    later = deal("Later", qualification, 1000, close=dt.date(2031, 1, 1))
    sooner = deal("Sooner", qualification, 3000, idle=31, close=dt.date(2030, 1, 1))
    undated = deal("Undated", qualification, 500, currency="USD", probability=50)
    deal("Proposal", proposal, 2000, idle=21)
    won = deal("Won", negotiation, 9000)
    deal_win(deal=won, by=rep)
    unstaged = deal("Imported", None, 700)
    Deal.objects.filter(pk=unstaged.pk).update(stage=None)

    columns = deal_board(where=Q(), now=now)

    by_label = {column.label: column for column in columns}
    assert list(by_label) == ["Qualification", "Proposal", "Negotiation", "No stage"]
    first = by_label["Qualification"]
    assert first.count == 3
    assert first.totals == {"EUR": Decimal(4000), "USD": Decimal(500)}
    assert first.weighted == {"EUR": Decimal(800), "USD": Decimal(250)}
    assert first.rotting == 1
    assert [card.name for card in first.cards] == ["Sooner", "Later", "Undated"]
    assert sooner.pk == first.cards[0].pk
    assert later.pk == first.cards[1].pk
    assert undated.pk == first.cards[2].pk
    assert by_label["Proposal"].rotting == 1
    assert by_label["Proposal"].weighted == {"EUR": Decimal(1000)}
    assert by_label["Negotiation"].count == 0
    assert by_label["No stage"].count == 1
    assert by_label["No stage"].weighted == {"EUR": Decimal(0)}


def test_the_board_reads_in_a_fixed_number_of_queries(rep, stages):
    lead = LeadFactory(owner=rep)
    for n in range(30):
        deal_create(lead=lead, by=rep, name=f"Deal {n}", stage=stages[n % 3])

    with CaptureQueriesContext(connection) as queries:
        columns = deal_board(where=Q(), now=timezone.now(), cards=5)
        names = [(card.lead_owner, card.stage, card.owner) for c in columns for card in c.cards]

    assert len(names) == 15
    # The stages, the totals, the rotting count, the cards (on PostgreSQL one statement
    # for every column, elsewhere a query a column), their people.
    cards = 1 if connection.vendor == "postgresql" else len(stages)
    assert len(queries) == 4 + cards

"""The deal board's totals (``DealBoardTotal``), kept by triggers on the deal table: after
every way of writing deals (the services, a merge moving deals, a lead changing hands,
queryset updates and deletes, a bulk insert) they equal the sums of the open deals
themselves, key by key; and the board reads its columns from them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from leads.deal_board import CARD_VALUES, DealCard, deal_board
from leads.deals import (
    deal_create,
    deal_lose,
    deal_move,
    deal_pipeline_ensure,
    deal_reopen,
    deal_update,
    deal_win,
)
from leads.merging import leads_merge
from leads.models import Deal, DealBoardTotal, DealStatus, Lead, ProductLine, Stage
from leads.permissions import deal_visibility
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

KEY = ("stage_id", "currency", "lead_owner_id", "owner_id", "product_line_id")


def summed() -> dict[tuple, tuple]:
    """Per key, the open deals' count, amount, own-chance amount and stage-chance amount,
    summed from the deals."""
    sums: dict[tuple, list] = {}
    for deal in Deal.objects.filter(status=DealStatus.OPEN):
        row = sums.setdefault(tuple(getattr(deal, c) for c in KEY), [0, 0, 0, 0])
        row[0] += 1
        row[1] += deal.amount
        if deal.probability is None:
            row[3] += deal.amount
        else:
            row[2] += deal.amount * deal.probability
    return {key: tuple(Decimal(v) for v in row) for key, row in sums.items()}


def kept() -> dict[tuple, tuple]:
    """The same from the totals the triggers keep; a key at zero holds nothing."""
    rows = DealBoardTotal.objects.values_list(
        *KEY, "deals", "amount", "chance_amount", "stage_amount"
    )
    totals = {tuple(row[:5]): tuple(Decimal(v) for v in row[5:]) for row in rows}
    emptied = {key: row for key, row in totals.items() if row[0] == 0}
    assert all(value == 0 for row in emptied.values() for value in row), emptied
    return {key: row for key, row in totals.items() if row[0] != 0}


@pytest.fixture
def stages():
    return deal_pipeline_ensure()


def test_the_totals_follow_every_way_deals_are_written(rep, other_rep, manager, stages):
    first, second, third = stages[:3]
    line = ProductLine.objects.create(name="Hosting", slug="hosting")
    leads = [LeadFactory(owner=rep, stage=Stage.OPPORTUNITY) for _ in range(3)]
    unowned = LeadFactory(owner=None, stage=Stage.SQL)
    a = deal_create(lead=leads[0], by=rep, name="A", amount=Decimal("1000.50"))
    b = deal_create(
        lead=leads[1], by=rep, name="B", amount=Decimal(2000), currency="USD", probability=30
    )
    c = deal_create(lead=leads[2], by=rep, name="C", amount=Decimal(300), stage=second)
    d = deal_create(lead=unowned, by=manager, name="D", amount=Decimal(40), owner=other_rep)
    assert kept() == summed()
    assert len(kept()) == 4

    deal_update(deal=a, by=rep, changes={"amount": Decimal(1500), "probability": 80})
    deal_update(deal=b, by=rep, changes={"probability": None, "product_line": line})
    deal_move(deal=c, by=rep, stage=third)
    deal_update(deal=d, by=manager, changes={"name": "D renamed"})  # moves no total
    assert kept() == summed()
    # Only a deal's own chance changes: its key's count and amounts stay, its weight moves.
    deal_update(deal=c, by=rep, changes={"probability": 30})
    deal_update(deal=c, by=rep, changes={"probability": 60})
    assert kept() == summed()

    deal_win(deal=a, by=rep)
    deal_lose(deal=b, by=rep, reason="No decision")
    assert kept() == summed()
    deal_reopen(deal=Deal.objects.get(pk=b.pk), by=rep)
    assert kept() == summed()

    # The lead changes hands: its deals' copy of its owner follows, and their totals.
    Lead.objects.filter(pk=leads[2].pk).update(owner=other_rep)
    # A merge moves the other lead's deals to the survivor, with its owner.
    leads_merge(survivor_id=unowned.pk, others=[leads[1].pk], by=manager)
    assert Deal.objects.get(pk=b.pk).lead_id == unowned.pk
    assert kept() == summed()

    # Writes around the services: a bulk insert, a queryset update, a delete.
    Deal.objects.bulk_create(
        Deal(lead=leads[0], name=f"Bulk {n}", amount=Decimal(n * 10), stage=first, probability=n)
        for n in range(1, 6)
    )
    Deal.objects.filter(name__startswith="Bulk").update(currency="GBP", stage=second)
    Deal.objects.filter(name="Bulk 3").update(
        status=DealStatus.LOST, closed_at=timezone.now(), lost_reason="Price"
    )
    Deal.objects.filter(name__in=["Bulk 1", "Bulk 3"]).delete()
    Deal.objects.filter(name="Bulk 2").update(amount=Decimal("12.34"), product_line=line)
    assert kept() == summed()
    Deal.objects.all().delete()
    assert kept() == {}


def test_the_board_reads_its_totals_and_rotting_as_the_deals_give_them(
    rep, other_rep, manager, stages
):
    first, second = stages[:2]
    now = timezone.now()
    mine = LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)
    theirs = LeadFactory(owner=other_rep, stage=Stage.OPPORTUNITY)
    for n, (lead, stage) in enumerate([(mine, first), (mine, second), (theirs, first)] * 4):
        deal = deal_create(
            lead=lead,
            by=manager,
            name=f"Deal {n}",
            amount=Decimal(100 * (n + 1)),
            currency="EUR" if n % 3 else "USD",
            stage=stage,
            probability=None if n % 2 else 10 * n,
        )
        idle = dt.timedelta(days=5 * n)
        Deal.objects.filter(pk=deal.pk).update(stage_changed_at=now - idle)

    for person, resolved in [(p, r) for p in (rep, other_rep, manager) for r in (False, True)]:
        where = deal_visibility(person, resolved=resolved)
        columns = {column.stage: column for column in deal_board(where=where, now=now)}
        deals = Deal.objects.filter(where, status=DealStatus.OPEN)
        for stage in stages:
            in_stage = deals.filter(stage=stage)
            column = columns[stage]
            assert column.count == in_stage.count()
            by_currency = in_stage.values("currency").annotate(total=Sum("amount"))
            assert column.totals == {row["currency"]: row["total"] for row in by_currency}
            weighted: dict[str, Decimal] = {}
            for deal in in_stage.select_related("stage"):
                weighted[deal.currency] = weighted.get(deal.currency, 0) + deal.weighted_amount
            assert column.weighted == weighted
            rotting = [deal for deal in in_stage if deal.rotting_days(now) is not None]
            assert column.rotting == len(rotting)
    # What the board showed moves with a stage's probability, which no total holds.
    first.probability = 90
    first.save()
    column = deal_board(where=Q(), now=now)[0]
    open_first = Deal.objects.filter(stage=first, status=DealStatus.OPEN).select_related("stage")
    assert sum(column.weighted.values()) == sum(d.weighted_amount for d in open_first)
    assert column.rotting > 0
    # A filter on the deal's owner or product line selects deals and totals alike.
    only_rep = deal_board(where=Q(owner=rep), now=now)
    assert (
        sum(c.count for c in only_rep)
        == Deal.objects.filter(owner=rep, status=DealStatus.OPEN).count()
    )
    assert sum(c.count for c in only_rep) < Deal.objects.aggregate(n=Count("pk"))["n"]


# What the board attaches to a card besides its values, compared on their own.
ATTACHED = {"stage": None, "owner": None, "lead_owner": None}


def test_each_columns_cards_are_its_open_deals_closing_soonest(rep, other_rep, manager, stages):
    first, second, third = stages[:3]
    today = timezone.localdate()
    leads = [LeadFactory(owner=owner, stage=Stage.OPPORTUNITY) for owner in (rep, other_rep)]
    for n in range(24):
        deal_create(
            lead=leads[n % 2],
            by=manager,
            name=f"Deal {n}",
            amount=Decimal(n) + Decimal("0.25"),
            stage=(first, second, third)[n % 3],
            expected_close=None if n % 5 == 0 else today + dt.timedelta(days=n % 4),
        )
    Deal.objects.filter(name__in=["Deal 7", "Deal 8"]).update(stage=None)
    deal_lose(deal=Deal.objects.get(name="Deal 3"), by=manager, reason="Price too high")
    now = timezone.now()

    for person in (rep, other_rep, manager):
        where = deal_visibility(person, resolved=True)
        columns = deal_board(where=where, now=now, cards=3)
        for column in columns:
            # As one query of the column's open deals would read them, value for value
            in_stage = Deal.objects.filter(where, status=DealStatus.OPEN, stage=column.stage)
            expected = in_stage.order_by(F("expected_close").asc(nulls_last=True), "id")
            rows = expected.values(*CARD_VALUES)[:3]
            assert [vars(card) | ATTACHED for card in column.cards] == [
                vars(DealCard.of(row)) | ATTACHED for row in rows
            ]
            assert column.hidden == max(in_stage.count() - 3, 0)
            for card in column.cards:
                assert card.stage == column.stage
                assert (card.owner.pk, card.lead_owner.pk) == (card.owner_id, card.lead_owner_id)

"""The deal board's reads: a column per pipeline stage with its open deals' count,
totals and weighted totals (per currency: amounts in different currencies are never
added up), how many are rotting, and the deals closing soonest.

A fixed number of queries whatever the number of deals: the stages, one grouped
aggregate over the open deals given, each column's first cards from the
``deal_open_board_idx`` index (stage, expected close, id) of the open deals, and the
cards' people. A card query joins only the deal's lead and its company: with the
stage, the owners and their teams joined too, planning it took longer than running it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Coalesce

from crm.models import User

from .models import Deal, DealStage, DealStatus

CARDS_PER_COLUMN = 20
NO_STAGE = "none"
# What a card shows and checks of its lead (its name, owner and company's name): a
# lead row is wide, and building 20 a column of them whole cost more than reading them.
CARD_FIELDS = (
    *(field.name for field in Deal._meta.concrete_fields),
    "lead__first_name",
    "lead__last_name",
    "lead__email",
    "lead__owner",
    "lead__company",
    "lead__company__name",
)


@dataclass
class DealColumn:
    """One stage's open deals; ``stage`` None gathers the open deals without a stage
    (written around the services, e.g. imported), shown only when there are some."""

    stage: DealStage | None
    count: int = 0
    totals: dict[str, Decimal] = field(default_factory=dict)
    weighted: dict[str, Decimal] = field(default_factory=dict)
    rotting: int = 0
    cards: list[Deal] = field(default_factory=list)

    @property
    def key(self) -> str:
        return str(self.stage.pk) if self.stage is not None else NO_STAGE

    @property
    def label(self) -> str:
        return self.stage.name if self.stage is not None else "No stage"

    @property
    def hidden(self) -> int:
        """How many of the column's deals have no card."""
        return self.count - len(self.cards)


def deal_board(
    *, deals: QuerySet[Deal], now: dt.datetime, cards: int = CARDS_PER_COLUMN
) -> list[DealColumn]:
    """The board of the open deals among ``deals`` (already narrowed to what the person
    sees and filters): a column per stage in the pipeline's order, then "No stage"."""
    stages = list(DealStage.objects.all())
    columns: dict[int | None, DealColumn] = {stage.pk: DealColumn(stage=stage) for stage in stages}
    open_deals = deals.filter(status=DealStatus.OPEN)
    for row in _aggregates(open_deals, stages, now):
        column = columns.get(row["stage_id"])
        if column is None:
            column = columns.setdefault(None, DealColumn(stage=None))
        column.count += row["n"]
        column.rotting += row["rotting"]
        currency = row["currency"]
        column.totals[currency] = column.totals.get(currency, Decimal(0)) + row["total"]
        weighted = row["weighted"] / 100
        column.weighted[currency] = column.weighted.get(currency, Decimal(0)) + weighted
    soonest = (
        open_deals.select_related("lead__company")
        .only(*CARD_FIELDS)
        .order_by(F("expected_close").asc(nulls_last=True), "id")
    )
    for stage_id, column in columns.items():
        if column.count:
            in_stage = soonest.filter(stage_id=stage_id) if stage_id else soonest.filter(stage=None)
            column.cards = list(in_stage[:cards])
    _attach(
        [deal for column in columns.values() for deal in column.cards],
        {stage.pk: stage for stage in stages},
    )
    return list(columns.values())


def _attach(deals: list[Deal], stages: dict[int, DealStage]) -> None:
    """Give the cards their stage, their owner and their lead's owner with its team (what
    ``leads.permissions.lead_access`` reads), in one query for the people."""
    if not deals:
        return
    ids = {pk for deal in deals for pk in (deal.owner_id, deal.lead.owner_id) if pk is not None}
    people = User.objects.filter(pk__in=ids).select_related("team").in_bulk()
    for deal in deals:
        deal.stage = stages.get(deal.stage_id) if deal.stage_id else None
        deal.owner = people.get(deal.owner_id) if deal.owner_id else None
        deal.lead.owner = people.get(deal.lead.owner_id) if deal.lead.owner_id else None


def _aggregates(open_deals: QuerySet[Deal], stages: list[DealStage], now: dt.datetime) -> QuerySet:
    """Per stage and currency: how many, their total, their total weighted by each
    deal's probability (its own, else its stage's) in per cent, and how many rot."""
    chance = Coalesce(
        "probability",
        Case(
            *[When(stage_id=stage.pk, then=Value(stage.probability)) for stage in stages],
            default=Value(0),
            output_field=IntegerField(),
        ),
    )
    rotten = Q()
    for stage in stages:
        if stage.rot_days is not None:
            since = now - dt.timedelta(days=stage.rot_days)
            rotten |= Q(stage_id=stage.pk, stage_changed_at__lte=since)
    rotting = Count("pk", filter=rotten) if rotten else Value(0)
    return (
        open_deals.order_by()
        .values("stage_id", "currency")
        .annotate(
            n=Count("pk"),
            total=Sum("amount"),
            weighted=Sum(F("amount") * chance),
            rotting=rotting,
        )
    )

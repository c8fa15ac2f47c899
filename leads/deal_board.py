"""The deal board's reads: a column per pipeline stage with its open deals' count,
totals and weighted totals (per currency: amounts in different currencies are never
added up), how many are rotting, and the deals closing soonest.

A fixed number of queries whatever the number of deals: the stages, the column totals
from the totals the database keeps (``DealBoardTotal``, a few rows for each owner and
stage, where summing the open deals a manager sees took 20 ms at 1,000,000 leads), the
rotting count from the idle index of the open deals (``deal_open_idle_idx``, a subquery
for each stage's idle range), each column's first cards from the
``deal_open_board_idx`` index (stage, expected close, id) of the open deals (on
PostgreSQL every column's in one statement), and the cards' people. A card query
joins only the deal's lead and its company: with the stage, the owners and their
teams joined too, planning it took longer than running it.

Deals and totals are selected by one condition (``where``) on the columns they share:
the lead's owner (who sees the deal), the deal's owner and its product line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import (
    Case,
    DateTimeField,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import RawSQL

from crm.models import User

from .models import Deal, DealBoardTotal, DealStage, DealStatus

CARDS_PER_COLUMN = 20
NO_STAGE = "none"
# What a card shows and checks of a deal and its lead (its name, owner and company's
# name), read as plain values: a lead row is wide, and a model instance for each
# deal, lead and company of 20 cards a column cost more to build than to read.
CARD_VALUES = (
    "id",
    "name",
    "amount",
    "currency",
    "expected_close",
    "probability",
    "stage_id",
    "stage_changed_at",
    "owner_id",
    "lead_id",
    "lead__first_name",
    "lead__last_name",
    "lead__email",
    "lead__owner",
    "lead__company__name",
)


@dataclass
class DealCard:
    """An open deal as its card shows it, with its stage, its owner and its lead's owner
    (with their team: what ``leads.permissions.owner_access`` reads) attached."""

    pk: int
    name: str
    amount: Decimal
    currency: str
    expected_close: dt.date | None
    probability: int | None
    stage_id: int | None
    stage_changed_at: dt.datetime
    owner_id: int | None
    lead_id: int
    lead_name: str
    lead_owner_id: int | None
    company_name: str | None
    stage: DealStage | None = None
    owner: User | None = None
    lead_owner: User | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> DealCard:
        return cls(
            pk=row["id"],
            name=row["name"],
            amount=row["amount"],
            currency=row["currency"],
            expected_close=row["expected_close"],
            probability=row["probability"],
            stage_id=row["stage_id"],
            stage_changed_at=row["stage_changed_at"],
            owner_id=row["owner_id"],
            lead_id=row["lead_id"],
            # As ``Lead.__str__``: the full name, else the email.
            lead_name=f"{row['lead__first_name']} {row['lead__last_name']}".strip()
            or row["lead__email"],
            lead_owner_id=row["lead__owner"],
            company_name=row["lead__company__name"],
        )

    @property
    def win_probability(self) -> int:
        """Per cent, as ``Deal.win_probability``: the deal's own, else its stage's."""
        if self.probability is not None:
            return self.probability
        return self.stage.probability if self.stage is not None else 0

    def rotting_days(self, now: dt.datetime) -> int | None:
        """As ``Deal.rotting_days`` of an open deal."""
        if self.stage is None:
            return None
        return self.stage.rotting_days(idle_since=self.stage_changed_at, now=now)


@dataclass
class DealColumn:
    """One stage's open deals; ``stage`` None gathers the open deals without a stage
    (written around the services, e.g. imported), shown only when there are some."""

    stage: DealStage | None
    count: int = 0
    totals: dict[str, Decimal] = field(default_factory=dict)
    weighted: dict[str, Decimal] = field(default_factory=dict)
    rotting: int = 0
    cards: list[DealCard] = field(default_factory=list)

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


def deal_board(*, where: Q, now: dt.datetime, cards: int = CARDS_PER_COLUMN) -> list[DealColumn]:
    """The board of the open deals ``where`` selects (what the person sees and filters,
    said of the columns deals and their totals share): a column per stage in the
    pipeline's order, then "No stage"."""
    stages = list(DealStage.objects.all())
    columns: dict[int | None, DealColumn] = {stage.pk: DealColumn(stage=stage) for stage in stages}

    def column_of(stage_id: int | None) -> DealColumn:
        column = columns.get(stage_id)
        if column is None:
            column = columns.setdefault(None, DealColumn(stage=None))
        return column

    chances = {stage.pk: stage.probability for stage in stages}
    for row in _totals(where):
        column = column_of(row["stage_id"])
        column.count += row["deals"]
        currency = row["currency"]
        column.totals[currency] = column.totals.get(currency, Decimal(0)) + row["amount"]
        chance = chances.get(row["stage_id"], 0)
        weighted = (row["chance_amount"] + row["stage_amount"] * chance) / 100
        column.weighted[currency] = column.weighted.get(currency, Decimal(0)) + weighted
    for rotting_stage, rotting in _rotting(where, stages, now).items():
        column_of(rotting_stage).rotting = rotting
    shown = [stage_id for stage_id, column in columns.items() if column.count]
    for stage_id, rows in _first_cards(where, shown, cards).items():
        columns[stage_id].cards = [DealCard.of(row) for row in rows]
    _attach(
        [card for column in columns.values() for card in column.cards],
        {stage.pk: stage for stage in stages},
    )
    return list(columns.values())


def _first_cards(
    where: Q, stage_ids: list[int | None], cards: int
) -> dict[int | None, list[dict[str, Any]]]:
    """The first ``cards`` open deals ``where`` selects in each of the stages (None: with
    no stage), closing soonest, as ``CARD_VALUES``: each stage's read from the board
    index (stage, expected close, id) of the open deals. On PostgreSQL the stages are
    read in one statement, a LATERAL subquery a stage: a query a stage cost more to
    build and send than to run."""
    soonest = (
        Deal.objects.filter(where, status=DealStatus.OPEN)
        .order_by(F("expected_close").asc(nulls_last=True), "id")
        .values(*CARD_VALUES)
    )
    staged = [stage_id for stage_id in stage_ids if stage_id is not None]
    found: dict[int | None, list[dict[str, Any]]] = {}
    if staged and connection.vendor == "postgresql":
        found.update(_cards_in_one_statement(soonest, staged, cards))
    else:
        for stage_id in staged:
            found[stage_id] = list(soonest.filter(stage_id=stage_id)[:cards])
    if None in stage_ids:
        found[None] = list(soonest.filter(stage=None)[:cards])
    return found


def _cards_in_one_statement(
    soonest: QuerySet, stage_ids: list[int], cards: int
) -> dict[int | None, list[dict[str, Any]]]:
    """``_first_cards`` of the stages ``stage_ids`` in one statement (PostgreSQL): the
    card query of a stage, built once, run for each stage of the list in its order."""
    per_stage = soonest.filter(stage_id=RawSQL("board_stage.id", ()))[:cards]
    sql, params = per_stage.query.sql_with_params()
    statement = (
        "SELECT card.* FROM unnest(%s::bigint[]) WITH ORDINALITY AS board_stage(id, position) "
        f"CROSS JOIN LATERAL ({sql}) AS card "
        "ORDER BY board_stage.position, card.expected_close NULLS LAST, card.id"
    )
    found: dict[int | None, list[dict[str, Any]]] = {stage_id: [] for stage_id in stage_ids}
    with connection.cursor() as cursor:
        cursor.execute(statement, [stage_ids, *params])
        names = [column.name for column in cursor.description]
        for row in cursor.fetchall():
            card = dict(zip(names, row, strict=True))
            found[card["stage_id"]].append(card)
    return found


def _totals(where: Q) -> QuerySet:
    """Per stage and currency: how many open deals, their amount, and the two parts of
    their weighted amount (``DealBoardTotal``)."""
    return (
        DealBoardTotal.objects.filter(where)
        .values("stage_id", "currency")
        .annotate(
            deals=Sum("deals"),
            amount=Sum("amount"),
            chance_amount=Sum("chance_amount"),
            stage_amount=Sum("stage_amount"),
        )
        .filter(deals__gt=0)
        .order_by()
    )


def _rotting(where: Q, stages: list[DealStage], now: dt.datetime) -> dict[int, int]:
    """Per stage that rots, how many of its open deals have idled past its limit.

    One statement over the stages that rot, each counting its open deals in a subquery
    over its own range of the idle index (stage, idle since), read from the index alone.
    As one grouped query over the stages' ranges, PostgreSQL read the deal rows of every
    range (a bitmap scan, in parallel workers): 14 ms against 3 ms for a manager at
    1,000,000 leads."""
    limits = [
        When(pk=stage.pk, then=Value(now - dt.timedelta(days=days)))
        for stage in stages
        if (days := stage.rot_days) is not None
    ]
    if not limits:
        return {}
    idle = (
        Deal.objects.filter(where, status=DealStatus.OPEN)
        .filter(stage_id=OuterRef("pk"), stage_changed_at__lte=OuterRef("idle_since"))
        .order_by()
        # COUNT(*) as a plain function: one row with no GROUP BY, and no column the
        # index lacks.
        .annotate(n=Func(template="COUNT(*)", output_field=IntegerField()))
        .values("n")
    )
    rows = (
        DealStage.objects.filter(rot_days__isnull=False)
        .annotate(idle_since=Case(*limits, output_field=DateTimeField()))
        .annotate(n=Subquery(idle))
        .order_by()
        .values_list("pk", "n")
    )
    return dict(rows)


def _attach(cards: list[DealCard], stages: dict[int, DealStage]) -> None:
    """Give the cards their stage, their owner and their lead's owner with its team (what
    ``leads.permissions.owner_access`` reads), in one query for the people."""
    if not cards:
        return
    ids = {pk for card in cards for pk in (card.owner_id, card.lead_owner_id) if pk is not None}
    people = User.objects.filter(pk__in=ids).select_related("team").in_bulk()
    for card in cards:
        card.stage = stages.get(card.stage_id) if card.stage_id else None
        card.owner = people.get(card.owner_id) if card.owner_id else None
        card.lead_owner = people.get(card.lead_owner_id) if card.lead_owner_id else None

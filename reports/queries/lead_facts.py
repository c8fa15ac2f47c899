"""What every report sums: one row of facts per lead in scope (its furthest funnel
step, won, closed), the score cube counted from them, and the scope's deals and
hand-offs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import F, QuerySet

from leads.models import Deal, DealOutcome, HandOff, Lead, Stage
from reports.scope import ReportScope
from reports.sql import queryset_sql

HOUR = 3600.0
DAY = 86400.0
# The lead's deal outcome as the two flags the reports sum.
WON_SQL = f"CASE WHEN deal_outcome = {DealOutcome.WON.value} THEN 1 ELSE 0 END"
CLOSED_SQL = f"CASE WHEN deal_outcome >= {DealOutcome.LOST.value} THEN 1 ELSE 0 END"


def lead_facts(scope: ReportScope, **columns: Any) -> tuple[str, tuple[Any, ...]]:
    return facts_of(scope.leads, **columns)


def facts_of(leads: QuerySet[Lead], **columns: Any) -> tuple[str, tuple[Any, ...]]:
    """SQL of one row per lead of ``leads``: ``pk``, the given ORM ``columns``, ``reached``
    (the furthest funnel step, 0 new … 4 customer, by its history or its stage now: a
    disqualified lead keeps the credit for the steps it passed), ``won`` and ``closed``
    (0 or 1).

    The lead carries both facts (``Lead.furthest_step``, ``Lead.deal_outcome``), kept by
    every stage and deal write: a pass over a million leads reads the report index
    alone, without aggregating the stage history and the deals on every request.
    """
    inner = leads.order_by().annotate(**columns)
    inner_sql, params = queryset_sql(inner.values("pk", "furthest_step", "deal_outcome", *columns))
    names = "".join(f"lead.{name}, " for name in columns)
    sql = (
        f"SELECT lead.pk, {names}lead.furthest_step AS reached, "
        f"{WON_SQL} AS won, {CLOSED_SQL} AS closed FROM ({inner_sql}) lead"
    )
    return sql, params


def fetch_rows(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def reached_sum(step: int) -> str:
    return f"SUM(CASE WHEN reached >= {step} THEN 1 ELSE 0 END)"


@dataclass(frozen=True)
class CubeRow:
    """How many leads in scope share a band, a score, a furthest step and an outcome."""

    band: str
    score: float
    reached: int
    closed: int
    won: int
    leads: int


def score_cube(scope: ReportScope) -> list[CubeRow]:
    """The scope's leads counted by (band, score, furthest step, closed, won): a few
    thousand rows at most, from which the key figures, the band table, the score
    distribution and the ROC AUC are all summed in one pass over the leads."""
    facts, params = lead_facts(scope, grp=F(scope.band), val=F(scope.score))
    rows = fetch_rows(
        f"SELECT grp, val, reached, closed, won, COUNT(*) FROM ({facts}) facts "
        "GROUP BY grp, val, reached, closed, won",
        params,
    )
    return [
        CubeRow(band, float(val), int(reached), int(closed), int(won), int(n))
        for band, val, reached, closed, won, n in rows
    ]


def scope_deals(scope: ReportScope) -> QuerySet[Deal]:
    """The deals of the scope's leads, their score in the chosen model reachable as
    ``lead__scores__…`` when a model is chosen."""
    deals = Deal.objects.filter(lead__in=scope.lead_ids)
    if scope.model is not None:
        deals = deals.filter(lead__scores__model=scope.model)
    return deals


def with_history(scope: ReportScope) -> QuerySet[Lead]:
    """The scope's leads that may have a stage history (and hand-offs): those that left
    New, as nothing moves a lead back to New. They have a small index of their own
    (leads migration 0012), so a history is joined to a few of the leads rather than to
    all of them."""
    return scope.leads.exclude(stage=Stage.NEW)


def scope_handoffs(scope: ReportScope) -> QuerySet[HandOff]:
    """The hand-offs of the scope: to the scope's people (``handoff_people``), of the
    leads in its range and lead filters, whoever owns them now, so that a hand-off a
    rep rejected (its lead then has no owner) still counts for the rep and the team;
    without such people, the hand-offs of the scope's leads. Each came with a stage
    change, so its lead is among those with a history."""
    if scope.handoff_people is None or scope.handed is None:
        return HandOff.objects.filter(lead__in=with_history(scope).order_by().values("pk"))
    leads = scope.handed.exclude(stage=Stage.NEW).order_by().values("pk")
    return HandOff.objects.filter(owner__in=scope.handoff_people.values("pk"), lead__in=leads)

"""The reports' reads: set-based aggregate queries returning plain rows (dicts).

Each function takes a ``ReportScope`` and runs a fixed number of queries, whatever the
number of leads: conditional aggregates, correlated ``EXISTS``, window functions
(``NTILE``, ``LAG``, ``ROW_NUMBER``) and percentiles by group. Pages and CSV exports
render the same rows.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import (
    Avg,
    Case,
    Count,
    Exists,
    F,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncMonth
from django.utils import timezone

from crm.models import Team, User
from leads.handoff_models import HandOffStatus, Rating
from leads.models import (
    Band,
    Deal,
    DealOutcome,
    DealStatus,
    HandOff,
    Lead,
    LeadRating,
    Stage,
    StageChange,
)
from scoring.models import Rule, ScoreEntry, ScoringModel

from . import stats
from .models import Campaign, RollupName, RuleMatch, RuleMatchCount
from .rollups import rollup_built
from .scope import ReportScope
from .sql import EpochSeconds, percentiles_by_group, queryset_sql, seconds_between

# The funnel's steps, in order.
FUNNEL_STEPS = [Stage.NEW, Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER]
BANDS_HIGH_TO_LOW = [Band.HOT, Band.WARM, Band.COLD]
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


def _fetch(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _reached(step: int) -> str:
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
    rows = _fetch(
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


# --- Key figures ---------------------------------------------------------------------


def key_figures(scope: ReportScope) -> dict[str, Any]:
    """The headline numbers of the index page and the weekly digest."""
    cube = score_cube(scope)
    counts = {
        "leads": sum(r.leads for r in cube),
        "mql": sum(r.leads for r in cube if r.reached >= 1),
        "sql": sum(r.leads for r in cube if r.reached >= 2),
        "customers": sum(r.leads for r in cube if r.reached >= 4),
        "closed": sum(r.leads for r in cube if r.closed),
        "won": sum(r.leads for r in cube if r.won),
    }
    won = (
        scope_deals(scope)
        .filter(status=DealStatus.WON)
        .aggregate(
            deals=Count("pk"), revenue=Coalesce(Sum("amount"), Value(0), output_field=FloatField())
        )
    )
    speed = percentiles_by_group(*_speed_source(scope, None), fractions=[0.5])
    touched, (median,) = speed.get("all", (0, [None]))
    return {
        **counts,
        "won_deals": won["deals"],
        "revenue": won["revenue"],
        "mql_rate": stats.ratio(counts["mql"], counts["leads"]),
        "win_rate": stats.ratio(counts["won"], counts["closed"]),
        "touched": touched,
        "median_speed_hours": None if median is None else median / HOUR,
        "auc": stats.roc_auc(score_outcome_counts(scope, cube=cube)),
    }


# --- Funnel ---------------------------------------------------------------------------


def funnel_by_cohort(scope: ReportScope) -> list[dict[str, Any]]:
    """Per month of creation: how many leads reached each funnel step.

    The few months are sorted here: ordered in SQL, the grouping would sort every lead
    (the planner cannot tell that a million creation times fall in a few months).
    """
    facts, params = lead_facts(scope, cohort=TruncMonth("created_at"))
    rows = _fetch(
        f"SELECT cohort, COUNT(*), {_reached(1)}, {_reached(2)}, {_reached(3)}, {_reached(4)} "
        f"FROM ({facts}) facts GROUP BY cohort",
        params,
    )
    keys = ("leads", "mql", "sql", "opportunity", "customer")
    cohorts = [
        {"cohort": _month(row[0]), **dict(zip(keys, (int(v or 0) for v in row[1:]), strict=True))}
        for row in rows
    ]
    return sorted(cohorts, key=lambda row: row["cohort"])


def _month(value: dt.datetime | dt.date | str | None) -> str:
    if value is None:
        return ""
    return value[:7] if isinstance(value, str) else value.strftime("%Y-%m")


def funnel_totals(cohorts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The funnel over all cohorts: per step its count, the share of the step before it
    that got there and the share of all leads."""
    keys = ["leads", "mql", "sql", "opportunity", "customer"]
    totals = {key: sum(row[key] for row in cohorts) for key in keys}
    steps = []
    previous = None
    for key, stage in zip(keys, FUNNEL_STEPS, strict=True):
        count = totals[key]
        steps.append(
            {
                "step": "Leads" if stage == Stage.NEW else stage.label,
                "stage": stage.value,
                "count": count,
                "step_rate": None if previous is None else stats.ratio(count, previous),
                "overall_rate": stats.ratio(count, totals["leads"]),
            }
        )
        previous = count
    return steps


def stage_times(scope: ReportScope) -> dict[str, dict[str, Any]]:
    """Per stage left: how many stays ended, and their median and p90 length in days.

    A stay runs from the change into the stage (or the lead's creation, for the first
    one) to the change out of it; ``LAG`` over the lead's history finds its start.
    """
    # The scope's leads with a history are joined once, bringing their creation time along.
    leads_sql, params = queryset_sql(_with_history(scope).order_by().values("pk", "created_at"))
    changes = StageChange._meta.db_table
    started = (
        "COALESCE(LAG(sc.at) OVER (PARTITION BY sc.lead_id ORDER BY sc.at, sc.id), l.created_at)"
    )
    source = (
        f"SELECT sc.from_stage AS grp, {seconds_between('sc.at', started)} AS val "
        f"FROM {changes} sc JOIN ({leads_sql}) l ON l.pk = sc.lead_id"
    )
    found = percentiles_by_group(source, params, fractions=[0.5, 0.9])
    return {
        stage: {
            "stays": count,
            "median_days": None if median is None else median / DAY,
            "p90_days": None if p90 is None else p90 / DAY,
        }
        for stage, (count, (median, p90)) in found.items()
    }


def _with_history(scope: ReportScope) -> QuerySet[Lead]:
    """The scope's leads that may have a stage history (and hand-offs): those that left
    New, as nothing moves a lead back to New. They have a small index of their own
    (leads migration 0012), so a history is joined to a few of the leads rather than to
    all of them."""
    return scope.leads.exclude(stage=Stage.NEW)


def exit_reasons(scope: ReportScope) -> list[dict[str, Any]]:
    """Why leads were disqualified or recycled, most frequent first."""
    rows = (
        StageChange.objects.filter(
            lead__in=_with_history(scope).order_by().values("pk"),
            to_stage__in=[Stage.DISQUALIFIED, Stage.RECYCLED],
        )
        .order_by()
        .values("to_stage", "reason")
        .annotate(leads=Count("lead", distinct=True))
        .order_by("-leads", "to_stage", "reason")[:50]
    )
    return [
        {
            "outcome": Stage(row["to_stage"]).label,
            "reason": row["reason"] or "(none given)",
            "leads": row["leads"],
        }
        for row in rows
    ]


# --- Score vs outcome -------------------------------------------------------------------


def outcome_by_band(
    scope: ReportScope, *, cube: list[CubeRow] | None = None
) -> list[dict[str, Any]]:
    """Per band (highest first): leads, closed, won, conversion, lift over all closed
    leads, won deals, average deal size and sales cycle in days."""
    by_band: dict[str, dict[str, int]] = {}
    for r in score_cube(scope) if cube is None else cube:
        counts = by_band.setdefault(r.band, {"leads": 0, "closed": 0, "won": 0})
        counts["leads"] += r.leads
        counts["closed"] += r.leads * r.closed
        counts["won"] += r.leads * r.won
    deals = (
        scope_deals(scope)
        .filter(status=DealStatus.WON)
        .order_by()
        .values(grp=F(f"lead__{scope.band}"))
        .annotate(
            deals=Count("pk"),
            revenue=Sum("amount"),
            cycle=Avg(EpochSeconds("closed_at", "lead__created_at")),
        )
    )
    money = {row["grp"]: row for row in deals}
    closed_all = sum(row["closed"] for row in by_band.values())
    won_all = sum(row["won"] for row in by_band.values())
    overall = stats.ratio(won_all, closed_all)
    rows = []
    for band in BANDS_HIGH_TO_LOW:
        row = by_band.get(band, {"leads": 0, "closed": 0, "won": 0})
        deal = money.get(band, {"deals": 0, "revenue": None, "cycle": None})
        conversion = stats.ratio(row["won"], row["closed"])
        rows.append(
            {
                "band": band.label,
                "leads": row["leads"],
                "closed": row["closed"],
                "won": row["won"],
                "conversion": conversion,
                "lift": stats.ratio(conversion, overall),
                "won_deals": deal["deals"],
                "revenue": float(deal["revenue"] or 0),
                "avg_deal": stats.ratio(float(deal["revenue"] or 0), deal["deals"]),
                "cycle_days": None if deal["cycle"] is None else deal["cycle"] / DAY,
            }
        )
    return rows


def outcome_by_decile(
    scope: ReportScope, *, cube: list[CubeRow] | None = None
) -> list[dict[str, Any]]:
    """Per score decile today (10 is the highest): the score range, closed, won,
    conversion and lift.

    The tiles are those of ``NTILE(10) OVER (ORDER BY score, id)``, worked out from the
    cube's counts per score instead of sorting every lead: a score's leads all fall in
    one tile except at the (at most nine) scores a tile boundary cuts through, where the
    id decides. Only the closed leads at those scores are then read, with their rank
    among their score's leads.
    """
    per_score: dict[float, list[int]] = {}
    for r in score_cube(scope) if cube is None else cube:
        counts = per_score.setdefault(r.score, [0, 0, 0])
        counts[0] += r.leads
        counts[1] += r.leads * r.closed
        counts[2] += r.leads * r.won
    total = sum(n for n, _, _ in per_score.values())
    tiles: dict[int, list[Any]] = {}
    before = 0
    cut: dict[float, int] = {}
    for score in sorted(per_score):
        n, closed, won = per_score[score]
        first, last = _ntile(before, total), _ntile(before + n - 1, total)
        for tile in range(first, last + 1):
            start = max(before, _tile_start(tile, total))
            end = min(before + n, _tile_start(tile + 1, total))
            _tile_add(tiles, tile, score, end - start)
        if first == last:
            tiles[first][3] += closed
            tiles[first][4] += won
        else:
            cut[score] = before
        before += n
    for score, rank, won in _cut_closed(scope, sorted(cut)):
        tile = tiles[_ntile(cut[score] + rank, total)]
        tile[3] += 1
        tile[4] += won
    found = [(tile, *values) for tile, values in sorted(tiles.items(), reverse=True)]
    return _decile_rows(found)


def _ntile(rank: int, total: int) -> int:
    """The tile (1 to 10) of the row at 0-based ``rank`` of ``total`` under NTILE(10):
    the first ``total % 10`` tiles hold one row more than the others."""
    size, extra = divmod(total, 10)
    if rank < extra * (size + 1):
        return 1 + rank // (size + 1)
    return 1 + extra + (rank - extra * (size + 1)) // size


def _tile_start(tile: int, total: int) -> int:
    """The 0-based rank of the first row of ``tile`` (1 to 11, 11 being the end)."""
    size, extra = divmod(total, 10)
    return (tile - 1) * size + min(tile - 1, extra)


def _tile_add(tiles: dict[int, list[Any]], tile: int, score: float, leads: int) -> None:
    if leads <= 0:
        return
    found = tiles.setdefault(tile, [0, score, score, 0, 0])
    found[0] += leads
    found[1] = min(found[1], score)
    found[2] = max(found[2], score)


def _cut_closed(scope: ReportScope, scores: list[float]) -> list[tuple[float, int, int]]:
    """(score, rank among the leads with that score by id, won) of the closed leads at
    ``scores``."""
    if not scores:
        return []
    facts, params = lead_facts(scope, val=F(scope.score))
    marks = ", ".join(["%s"] * len(scores))
    rows = _fetch(
        "SELECT val, rn, won FROM (SELECT val, closed, won, "
        "ROW_NUMBER() OVER (PARTITION BY val ORDER BY pk) - 1 AS rn "
        f"FROM ({facts}) facts WHERE val IN ({marks})) ranked WHERE closed = 1",
        (*params, *scores),
    )
    return [(float(val), int(rn), int(won)) for val, rn, won in rows]


def outcome_by_handoff_decile(scope: ReportScope) -> list[dict[str, Any]]:
    """Per decile of the score a lead had when it was handed off, read from the ledger
    (points earned by then, before decay): the same columns as today's deciles."""
    model = scope.effective_model
    if model is None:
        return []
    handoffs = _scope_handoffs(scope)
    deals = Deal.objects.filter(lead=OuterRef("lead_id"))
    source = (
        handoffs.annotate(
            val=Coalesce(_ledger_points_until(model, "lead_id", "created_at"), Value(0.0)),
            w=_flag(Exists(deals.filter(status=DealStatus.WON))),
            c=_flag(Exists(deals.filter(status__in=[DealStatus.WON, DealStatus.LOST]))),
        )
        .order_by()
        .values("pk", "val", "w", "c")
    )
    return _deciles(*queryset_sql(source))


def _flag(condition: Exists) -> Case:
    return Case(When(condition, then=Value(1)), default=Value(0), output_field=IntegerField())


def _ledger_points_until(model: ScoringModel, lead_ref: str, at_ref: str) -> Subquery:
    return Subquery(
        ScoreEntry.objects.filter(model=model, lead_id=OuterRef(lead_ref), at__lte=OuterRef(at_ref))
        .order_by()
        .values("lead_id")
        .annotate(points=Sum("points"))
        .values("points")[:1],
        output_field=FloatField(),
    )


def _deciles(source_sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    sql = (
        "SELECT decile, COUNT(*), MIN(val), MAX(val), SUM(c), SUM(w) FROM ("
        "SELECT NTILE(10) OVER (ORDER BY val, pk) AS decile, val, w, c FROM ("
        f"{source_sql}) src) ranked GROUP BY decile ORDER BY decile DESC"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    return _decile_rows(found)


def _decile_rows(found: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Rows of (decile, leads, lowest, highest, closed, won), highest decile first, as
    the page shows them."""
    closed_all = sum(int(row[4] or 0) for row in found)
    won_all = sum(int(row[5] or 0) for row in found)
    overall = stats.ratio(won_all, closed_all)
    rows = []
    for decile, leads, low, high, closed, won in found:
        conversion = stats.ratio(int(won or 0), int(closed or 0))
        rows.append(
            {
                "decile": int(decile),
                "leads": int(leads),
                "score_from": round(float(low)),
                "score_to": round(float(high)),
                "closed": int(closed or 0),
                "won": int(won or 0),
                "conversion": conversion,
                "lift": stats.ratio(conversion, overall),
            }
        )
    return rows


def score_distribution(
    scope: ReportScope, *, cube: list[CubeRow] | None = None
) -> list[dict[str, Any]]:
    """How many leads score in each ten-point bucket, lowest first."""
    buckets: dict[int, int] = {}
    for r in score_cube(scope) if cube is None else cube:
        bucket = math.floor(r.score / 10)
        buckets[bucket] = buckets.get(bucket, 0) + r.leads
    return [
        {"scores": f"{bucket * 10} to {bucket * 10 + 9}", "leads": leads}
        for bucket, leads in sorted(buckets.items())
    ]


def score_outcome_counts(
    scope: ReportScope, *, cube: list[CubeRow] | None = None
) -> list[tuple[float, int, int]]:
    """(score, won, lost) over the closed leads, one row per distinct score: what the
    ROC AUC is computed from."""
    counts: dict[float, list[int]] = {}
    for r in score_cube(scope) if cube is None else cube:
        if r.closed:
            pair = counts.setdefault(r.score, [0, 0])
            pair[0 if r.won else 1] += r.leads
    return [(score, won, lost) for score, (won, lost) in counts.items()]


def won_before_close(scope: ReportScope, *, cube: list[CubeRow] | None = None) -> dict[str, Any]:
    """Over won deals: how many had a hot score before they closed (ledger points up to
    the close, before decay) and the lowest score of a converted lead today (from the
    cube: the score index would be walked from the bottom to the few won leads)."""
    model = scope.effective_model
    won = scope_deals(scope).filter(status=DealStatus.WON)
    result: dict[str, Any] = {"won_deals": 0, "hot_before_close": 0, "hot_share": None}
    if model is not None:
        counted = won.annotate(
            before=_ledger_points_until(model, "lead_id", "closed_at")
        ).aggregate(
            won_deals=Count("pk"),
            hot_before_close=Count("pk", filter=Q(before__gte=model.hot_from)),
        )
        result.update(counted)
        result["hot_share"] = stats.ratio(counted["hot_before_close"], counted["won_deals"])
    won_scores = [r.score for r in (score_cube(scope) if cube is None else cube) if r.won]
    # Whole points, as both the lead's score and a model's score are stored.
    result["lowest_won_score"] = round(min(won_scores)) if won_scores else None
    result["hot_from"] = model.hot_from if model is not None else None
    return result


# --- Sources and campaigns ---------------------------------------------------------------

DIMENSIONS = {"source": "Source", "campaign": "Campaign", "utm_medium": "UTM medium"}


def source_rows(scope: ReportScope, dimension: str) -> list[dict[str, Any]]:
    """Per source, campaign or UTM medium: leads, average score, MQL rate, win rate,
    revenue, and cost per lead and per customer where the campaign's spend is known."""
    if dimension not in DIMENSIONS:
        raise ValueError(dimension)
    facts, params = lead_facts(scope, grp=F(dimension), val=F(scope.score))
    keys = ("grp", "leads", "avg_score", "mql", "closed", "won")
    leads = [
        dict(zip(keys, row, strict=True))
        for row in _fetch(
            f"SELECT grp, COUNT(*), AVG(val), {_reached(1)}, SUM(closed), SUM(won) "
            f"FROM ({facts}) facts GROUP BY grp ORDER BY COUNT(*) DESC, grp",
            params,
        )
    ]
    revenue = dict(
        scope_deals(scope)
        .filter(status=DealStatus.WON)
        .order_by()
        .values(grp=F(f"lead__{dimension}"))
        .annotate(total=Sum("amount"))
        .values_list("grp", "total")
    )
    spend = _spend() if dimension == "campaign" else {}
    labels = dict(Lead._meta.get_field("source").choices) if dimension == "source" else {}
    rows = []
    for row in leads:
        cost = spend.get((row["grp"] or "").lower())
        rows.append(
            {
                "name": labels.get(row["grp"], row["grp"]) or "(none)",
                "leads": row["leads"],
                "avg_score": None if row["avg_score"] is None else float(row["avg_score"]),
                "mql_rate": stats.ratio(int(row["mql"] or 0), row["leads"]),
                "closed": int(row["closed"] or 0),
                "won": int(row["won"] or 0),
                "win_rate": stats.ratio(int(row["won"] or 0), int(row["closed"] or 0)),
                "revenue": float(revenue.get(row["grp"]) or 0),
                "spend": cost,
                "cost_per_lead": stats.ratio(cost, row["leads"]),
                "cost_per_customer": stats.ratio(cost, row["won"]),
            }
        )
    return rows


def _spend() -> dict[str, float]:
    return {
        name.lower(): float(spend) for name, spend in Campaign.objects.values_list("name", "spend")
    }


# --- Speed to lead and reps ---------------------------------------------------------------


def _scope_handoffs(scope: ReportScope) -> QuerySet[HandOff]:
    """The hand-offs of the scope's leads: each came with a stage change, so its lead is
    among those with a history."""
    return HandOff.objects.filter(lead__in=_with_history(scope).order_by().values("pk"))


def _speed_source(scope: ReportScope, group: str | None) -> tuple[str, tuple[Any, ...]]:
    """SQL of (grp, seconds to first touch) over the scope's touched hand-offs, grouped
    by the ORM path ``group`` (None: all in one group, "all")."""
    source = (
        _scope_handoffs(scope)
        .filter(first_touch_at__isnull=False)
        .order_by()
        .values(
            grp=F(group) if group else Value("all"),
            val=EpochSeconds("first_touch_at", "created_at"),
        )
    )
    return queryset_sql(source)


def _breach(now: dt.datetime) -> Q:
    """Past the SLA: escalated, touched after it was due, or untouched and overdue."""
    return (
        Q(escalated_at__isnull=False)
        | Q(first_touch_at__gt=F("sla_due_at"))
        | Q(first_touch_at__isnull=True, sla_due_at__lt=now)
    )


def speed_rows(scope: ReportScope, *, by_team: bool = False) -> list[dict[str, Any]]:
    """Per rep (or team): hand-offs, touched, median and p90 hours to the first touch,
    SLA breaches, accepted, rejected, quality ratings, open pipeline and wins."""
    reps, teams = speed_tables(scope)
    return teams if by_team else reps


def speed_tables(scope: ReportScope) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of ``speed_rows`` per rep and per team, from one pass over each table:
    the counts and sums per person add up to their team's (the team of a hand-off's or
    a deal's owner, of a rating's author); only the percentiles are read per team."""
    now = timezone.now()
    handoffs = list(
        _scope_handoffs(scope)
        .order_by()
        .values(grp=F("owner_id"))
        .annotate(
            handoffs=Count("pk"),
            touched=Count("pk", filter=Q(first_touch_at__isnull=False)),
            breaches=Count("pk", filter=_breach(now)),
            accepted=Count("pk", filter=Q(status=HandOffStatus.ACCEPTED)),
            rejected=Count("pk", filter=Q(status=HandOffStatus.REJECTED)),
        )
    )
    speed = percentiles_by_group(*_speed_source(scope, "owner_id"), fractions=[0.5, 0.9])
    team_speed = percentiles_by_group(*_speed_source(scope, "owner__team_id"), fractions=[0.5, 0.9])
    ratings = list(
        LeadRating.objects.filter(lead__in=scope.lead_ids)
        .order_by()
        .values(grp=F("by_id"))
        .annotate(
            good=Count("pk", filter=Q(rating=Rating.GOOD)),
            not_fit=Count("pk", filter=Q(rating=Rating.NOT_FIT)),
        )
    )
    deals = list(
        Deal.objects.filter(lead__in=scope.lead_ids)
        .order_by()
        .values(grp=F("lead__owner_id"))
        .annotate(
            pipeline=Sum("amount", filter=Q(status=DealStatus.OPEN)),
            won_deals=Count("pk", filter=Q(status=DealStatus.WON)),
            won_amount=Sum("amount", filter=Q(status=DealStatus.WON)),
        )
    )
    people = [row["grp"] for rows in (handoffs, ratings, deals) for row in rows]
    users = {user.pk: user for user in User.objects.filter(pk__in=[p for p in people if p])}
    team_of = {pk: user.team_id for pk, user in users.items()}
    per_team = [_by_team(rows, team_of) for rows in (handoffs, ratings, deals)]
    wanted = {row["grp"] for rows in per_team for row in rows} | set(team_speed)
    teams = {team.pk: team.name for team in Team.objects.filter(pk__in=[t for t in wanted if t])}
    reps = _merge_people(
        handoffs, speed, ratings, deals, names={pk: str(u) for pk, u in users.items()}
    )
    return reps, _merge_people(*per_team[:1], team_speed, *per_team[1:], names=teams, teams=True)


def _by_team(rows: list[dict[str, Any]], team_of: dict[Any, Any]) -> list[dict[str, Any]]:
    """Per-person rows added up per team (None: no owner or no team)."""
    totals: dict[Any, dict[str, Any]] = {}
    for row in rows:
        team = team_of.get(row["grp"])
        found = totals.setdefault(team, {"grp": team})
        for key, value in row.items():
            if key != "grp" and value is not None:
                found[key] = (found.get(key) or 0) + value
            elif key != "grp":
                found.setdefault(key, None)
    return list(totals.values())


def _merge_people(
    handoffs: Any,
    speed: dict[Any, Any],
    ratings: Any,
    deals: Any,
    *,
    names: dict[Any, str],
    teams: bool = False,
) -> list[dict[str, Any]]:
    """One row per person or team from the four per-group aggregates."""
    merged: dict[Any, dict[str, Any]] = {}
    blank = {
        "handoffs": 0,
        "touched": 0,
        "breaches": 0,
        "accepted": 0,
        "rejected": 0,
        "good": 0,
        "not_fit": 0,
        "pipeline": None,
        "won_deals": 0,
        "won_amount": None,
    }
    for source in (handoffs, ratings, deals):
        for row in source:
            merged.setdefault(row["grp"], dict(blank)).update(
                {k: v for k, v in row.items() if k != "grp"}
            )
    for grp, (_, (median, p90)) in speed.items():
        row = merged.setdefault(grp, dict(blank))
        row["median_hours"] = None if median is None else median / HOUR
        row["p90_hours"] = None if p90 is None else p90 / HOUR
    rows = []
    for grp, row in merged.items():
        decided = row["accepted"] + row["rejected"]
        rows.append(
            {
                "name": names.get(grp, "(no team)" if teams else "(unassigned)"),
                "handoffs": row["handoffs"],
                "touched": row["touched"],
                "median_hours": row.get("median_hours"),
                "p90_hours": row.get("p90_hours"),
                "breaches": row["breaches"],
                "accepted": row["accepted"],
                "rejected": row["rejected"],
                "acceptance": stats.ratio(row["accepted"], decided),
                "good": row["good"],
                "not_fit": row["not_fit"],
                "pipeline": float(row["pipeline"] or 0),
                "won_deals": row["won_deals"],
                "won_amount": float(row["won_amount"] or 0),
            }
        )
    return sorted(rows, key=lambda r: (-r["handoffs"], r["name"]))


def reject_reasons(scope: ReportScope) -> list[dict[str, Any]]:
    """Why reps rejected hand-offs, most frequent first."""
    rows = (
        _scope_handoffs(scope)
        .filter(status=HandOffStatus.REJECTED)
        .order_by()
        .values("reject_reason")
        .annotate(handoffs=Count("pk"))
        .order_by("-handoffs", "reject_reason")[:50]
    )
    return [{"reason": row["reject_reason"], "handoffs": row["handoffs"]} for row in rows]


# --- Rule effectiveness ---------------------------------------------------------------------


# Below this many ledger entries in a model, Rule effectiveness reduces the ledger
# itself when the rollup was never built: a few hundred milliseconds at most.
LIVE_MATCHES_MAX_ENTRIES = 50_000


def _active_awards_sql() -> str:
    """Distinct (rule, lead) pairs of a model's awards never reversed (one ``%s``: the
    model), straight from the ledger."""
    entries = ScoreEntry._meta.db_table
    return (
        f"SELECT DISTINCT e.rule_id, e.lead_id FROM {entries} e "
        "WHERE e.model_id = %s AND e.rule_id IS NOT NULL AND e.reversal_of_id IS NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {entries} r WHERE r.reversal_of_id = e.id)"
    )


def _rolled_up_sql() -> str:
    """The same pairs from the nightly rollup (one ``%s``: the model)."""
    return f"SELECT rule_id, lead_id FROM {RuleMatch._meta.db_table} WHERE model_id = %s"


def _rule_matches(
    leads: QuerySet[Lead], model: ScoringModel, *, pairs_sql: str
) -> list[dict[str, Any]]:
    """Per rule: the leads of ``leads`` it matched (``pairs_sql`` gives the pairs), and
    how many of them closed and won."""
    facts, params = facts_of(leads)
    rows = _fetch(
        "SELECT pairs.rule_id, COUNT(*), SUM(facts.closed), SUM(facts.won) "
        f"FROM ({pairs_sql}) pairs JOIN ({facts}) facts ON facts.pk = pairs.lead_id "
        "GROUP BY pairs.rule_id",
        (model.pk, *params),
    )
    return [
        {"rule_id": rule, "matched": n, "closed_in": int(closed or 0), "won_in": int(won or 0)}
        for rule, n, closed, won in rows
    ]


def _totals(leads: QuerySet[Lead]) -> dict[str, int]:
    facts, params = facts_of(leads)
    ((count, closed, won),) = _fetch(
        f"SELECT COUNT(*), SUM(closed), SUM(won) FROM ({facts}) facts", params
    )
    return {"leads": count, "closed": int(closed or 0), "won": int(won or 0)}


def _rolled_up_counts(
    scope: ReportScope, leads: QuerySet[Lead], model: ScoringModel
) -> tuple[dict[str, int], dict[int, dict[str, Any]]]:
    """The totals and the per-rule figures of a scope the rollup's counts answer.

    One pass over the leads counts them per owner: the totals, and the owners in view
    (every condition of such a scope goes through the owner). ``matched`` sums the
    rollup's counts over the range's days and those owners. Closed leads are few: their
    matches are looked up lead by lead, starting from the deals.
    """
    facts, params = facts_of(leads, grp=F("owner_id"))
    per_owner = _fetch(
        f"SELECT grp, COUNT(*), SUM(closed), SUM(won) FROM ({facts}) facts GROUP BY grp",
        params,
    )
    totals = {
        "leads": sum(int(n) for _, n, _, _ in per_owner),
        "closed": sum(int(c or 0) for _, _, c, _ in per_owner),
        "won": sum(int(w or 0) for _, _, _, w in per_owner),
    }
    by_rule: dict[int, dict[str, Any]] = {}
    for row in _closed_matches(leads, model):
        by_rule[row["rule_id"]] = {"matched": 0, **row}
    owners = [owner for owner, *_ in per_owner]
    for row in _matched_by_owner_and_day(scope, model, owners):
        found = by_rule.setdefault(row["rule_id"], {"matched": 0, "closed_in": 0, "won_in": 0})
        found["matched"] = int(row["matched"])
    return totals, by_rule


def _closed_matches(leads: QuerySet[Lead], model: ScoringModel) -> list[dict[str, Any]]:
    """Per rule: the closed leads in ``leads`` it matched (as of the rollup), and how
    many of them were won."""
    facts, params = facts_of(leads.filter(deal_outcome__gte=DealOutcome.LOST))
    rows = _fetch(
        f"SELECT m.rule_id, COUNT(*), SUM(facts.won) FROM ({facts}) facts "
        f"JOIN {RuleMatch._meta.db_table} m ON m.lead_id = facts.pk AND m.model_id = %s "
        "GROUP BY m.rule_id",
        (*params, model.pk),
    )
    return [
        {"rule_id": rule, "closed_in": int(n), "won_in": int(won or 0)} for rule, n, won in rows
    ]


def _matched_by_owner_and_day(
    scope: ReportScope, model: ScoringModel, owners: list[int | None]
) -> QuerySet[RuleMatchCount]:
    in_view = Q(owner__in=[owner for owner in owners if owner is not None])
    if None in owners:
        in_view |= Q(owner__isnull=True)
    return (
        RuleMatchCount.objects.filter(
            in_view, model=model, day__gte=scope.first_day, day__lte=scope.last_day
        )
        .order_by()
        .values("rule_id")
        .annotate(matched=Sum("leads"))
    )


def _ledger_is_small(model: ScoringModel) -> bool:
    """Whether the model's ledger is small enough to reduce during a request; reads at
    most one entry more than the limit."""
    (count,) = _fetch(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM {ScoreEntry._meta.db_table} "
        "WHERE model_id = %s LIMIT %s) entries",
        (model.pk, LIVE_MATCHES_MAX_ENTRIES + 1),
    )[0]
    return count <= LIVE_MATCHES_MAX_ENTRIES


@dataclass(frozen=True)
class MatchSource:
    """Where a rules page's matches came from: the rollup built at ``built_at``, the
    ledger itself (``live``), or nowhere yet (neither)."""

    built_at: dt.datetime | None = None
    live: bool = False

    @property
    def known(self) -> bool:
        return self.built_at is not None or self.live


def match_source(model: ScoringModel) -> MatchSource:
    """The rollup when it was built; else the ledger, when it is small."""
    rollup = rollup_built(RollupName.RULE_MATCHES)
    if rollup is not None:
        return MatchSource(built_at=rollup.built_at)
    return MatchSource(live=_ledger_is_small(model))


def rule_rows(
    scope: ReportScope, model: ScoringModel, *, source: MatchSource | None = None
) -> dict[str, Any]:
    """Per rule of ``model``: its points, how many leads it matched, the conversion of
    matched and unmatched closed leads, the lift with its 95 % interval, and a verdict
    (prune, re-weight) with the evidence.

    A lead matches a rule when it holds an award of the rule that was never reversed,
    as of the last rollup (``source``, by default ``match_source(model)``). Without
    known matches the rules come with their points and no figures.
    """
    source = source or match_source(model)
    leads = _scored_by(scope, model)
    if source.built_at is not None and scope.by_owner_and_day:
        totals, by_rule = _rolled_up_counts(scope, leads, model)
    else:
        totals = _totals(leads)
        by_rule = {}
        if source.known:
            pairs = _active_awards_sql() if source.live else _rolled_up_sql()
            by_rule = {r["rule_id"]: r for r in _rule_matches(leads, model, pairs_sql=pairs)}
    rules = Rule.objects.filter(model=model).order_by("kind", "-points", "pk")
    rows = [
        _rule_row(rule, by_rule, totals) if source.known else _unknown_rule_row(rule)
        for rule in rules
    ]
    return {"totals": totals, "rules": rows, "source": source}


def _scored_by(scope: ReportScope, model: ScoringModel) -> QuerySet[Lead]:
    """The scope's leads ``model`` scores. The default model scores every lead (as
    ``scoring.lead_sets.segment_lead_ids`` says): its leads are the scope's, without a
    join to the scores of every lead in view, which costs more than the rest of the page
    at a million leads."""
    if scope.model is not None or model.is_default:
        return scope.leads
    return scope.leads.filter(scores__model=model)


def _rule_row(rule: Rule, by_rule: dict[int, Any], totals: dict[str, int]) -> dict[str, Any]:
    found = by_rule.get(rule.pk, {"matched": 0, "closed_in": 0, "won_in": 0})
    closed_out = totals["closed"] - found["closed_in"]
    won_out = totals["won"] - found["won_in"]
    lift = stats.lift_with_interval(found["won_in"], found["closed_in"], won_out, closed_out)
    verdict = stats.rule_verdict(
        points=rule.points,
        matched=found["matched"],
        leads=totals["leads"],
        lift=lift,
        closed_in=found["closed_in"],
        closed_out=closed_out,
    )
    return {
        **_unknown_rule_row(rule),
        "matched": found["matched"],
        "match_share": stats.ratio(found["matched"], totals["leads"]),
        "closed_in": found["closed_in"],
        "conversion_in": stats.ratio(found["won_in"], found["closed_in"]),
        "closed_out": closed_out,
        "conversion_out": stats.ratio(won_out, closed_out),
        "lift": lift.value,
        "lift_low": lift.low,
        "lift_high": lift.high,
        "verdict": verdict.action,
        "evidence": verdict.evidence,
    }


def _unknown_rule_row(rule: Rule) -> dict[str, Any]:
    """A rule with its points and no match figures."""
    return {
        "rule": rule.name,
        "description": rule.describe(),
        "active": rule.active,
        "points": rule.points,
        "matched": None,
        "match_share": None,
        "closed_in": None,
        "conversion_in": None,
        "closed_out": None,
        "conversion_out": None,
        "lift": None,
        "lift_low": None,
        "lift_high": None,
        "verdict": "",
        "evidence": "matches not built yet",
    }


# --- Nurture ----------------------------------------------------------------------------------


def nurture_available() -> bool:
    from django.apps import apps

    return apps.is_installed("nurturing") and _nurture_models() is not None


def _nurture_models() -> Any:
    try:
        from nurturing.models import Enrollment, Message
    except ImportError:
        return None
    return Enrollment, Message


def nurture_steps(scope: ReportScope) -> list[dict[str, Any]]:
    """Per sequence and step: messages sent, opened, clicked, replied, unsubscribed,
    bounced, with the rates over sent."""
    _, message_model = _nurture_models()
    rows = (
        message_model.objects.filter(lead__in=scope.lead_ids)
        .order_by()
        .values("step__sequence__name", "step__position", "step__subject", "step_id")
        .annotate(
            sent=Count("pk", filter=Q(sent_at__isnull=False)),
            opened=Count("pk", filter=Q(opened_at__isnull=False)),
            clicked=Count("pk", filter=Q(clicked_at__isnull=False)),
            replied=Count("pk", filter=Q(replied_at__isnull=False)),
            unsubscribed=Count("pk", filter=Q(unsubscribed_at__isnull=False)),
            bounced=Count("pk", filter=Q(bounced_at__isnull=False) | Q(status="bounced")),
        )
        .order_by("step__sequence__name", "step__position", "step_id")
    )
    return [
        {
            "sequence": row["step__sequence__name"],
            "step": row["step__position"],
            "subject": row["step__subject"],
            "sent": row["sent"],
            "opened": row["opened"],
            "clicked": row["clicked"],
            "replied": row["replied"],
            "unsubscribed": row["unsubscribed"],
            "bounced": row["bounced"],
            "open_rate": stats.ratio(row["opened"], row["sent"]),
            "click_rate": stats.ratio(row["clicked"], row["sent"]),
        }
        for row in rows
    ]


def nurture_sequences(scope: ReportScope) -> list[dict[str, Any]]:
    """Per sequence: leads enrolled and the share that reached MQL and SQL after they
    were enrolled."""
    enrollment_model, _ = _nurture_models()
    later = StageChange.objects.filter(lead=OuterRef("lead_id"), at__gte=OuterRef("started_at"))
    mql_on = [Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER]
    rows = (
        enrollment_model.objects.filter(lead__in=scope.lead_ids)
        .annotate(
            to_mql=Exists(later.filter(to_stage__in=mql_on)),
            to_sql=Exists(later.filter(to_stage__in=mql_on[1:])),
        )
        .order_by()
        .values("sequence__name")
        .annotate(
            enrolled=Count("lead_id", distinct=True),
            mql=Count("lead_id", distinct=True, filter=Q(to_mql=True)),
            sql=Count("lead_id", distinct=True, filter=Q(to_sql=True)),
        )
        .order_by("sequence__name")
    )
    return [
        {
            "sequence": row["sequence__name"],
            "enrolled": row["enrolled"],
            "mql": row["mql"],
            "mql_rate": stats.ratio(row["mql"], row["enrolled"]),
            "sql": row["sql"],
            "sql_rate": stats.ratio(row["sql"], row["enrolled"]),
        }
        for row in rows
    ]

"""The score vs outcome report's reads: does a high score close? Conversion and
lift by band and by score decile (today and at hand-off), the score distribution,
the inputs of the ROC AUC and the hot scores of won deals before they closed."""

from __future__ import annotations

import math
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
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from leads.models import Band, Deal, DealStatus
from reports import stats
from reports.queries.lead_facts import (
    DAY,
    CubeRow,
    fetch_rows,
    lead_facts,
    scope_deals,
    scope_handoffs,
    score_cube,
)
from reports.scope import ReportScope
from reports.sql import EpochSeconds, queryset_sql
from scoring.models import ScoreEntry, ScoringModel

BANDS_HIGH_TO_LOW = [Band.HOT, Band.WARM, Band.COLD]


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
        counts = tiles[_ntile(cut[score] + rank, total)]
        counts[3] += 1
        counts[4] += won
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
    rows = fetch_rows(
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
    handoffs = scope_handoffs(scope)
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

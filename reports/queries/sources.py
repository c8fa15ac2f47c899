"""The sources and campaigns report's reads: lead quality, revenue and cost per
source, campaign or UTM medium."""

from __future__ import annotations

from typing import Any

from django.db.models import F, Sum

from leads.models import DealStatus, Source
from reports import stats
from reports.models import Campaign
from reports.queries.lead_facts import fetch_rows, lead_facts, reached_sum, scope_deals
from reports.scope import ReportScope

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
        for row in fetch_rows(
            f"SELECT grp, COUNT(*), AVG(val), {reached_sum(1)}, SUM(closed), SUM(won) "
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
    labels = dict(Source.choices) if dimension == "source" else {}
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

"""The headline numbers of the reports' index page and the weekly digest."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, FloatField, Sum, Value
from django.db.models.functions import Coalesce

from leads.models import DealStatus
from reports import stats
from reports.queries.lead_facts import HOUR, scope_deals, score_cube
from reports.queries.score_outcome import score_outcome_counts
from reports.queries.speed_to_lead import speed_source
from reports.scope import ReportScope
from reports.sql import percentiles_by_group


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
    speed = percentiles_by_group(*speed_source(scope, None), fractions=[0.5])
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

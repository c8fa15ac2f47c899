"""The funnel report's reads: leads per month of creation reaching each step, the
time spent in each stage and why leads left the funnel."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count
from django.db.models.functions import TruncMonth

from leads.models import Stage, StageChange
from reports import stats
from reports.queries.lead_facts import DAY, fetch_rows, lead_facts, reached_sum, with_history
from reports.scope import ReportScope
from reports.sql import percentiles_by_group, queryset_sql, seconds_between

# The funnel's steps, in order.
FUNNEL_STEPS = [Stage.NEW, Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER]


def funnel_by_cohort(scope: ReportScope) -> list[dict[str, Any]]:
    """Per month of creation: how many leads reached each funnel step.

    The few months are sorted here: ordered in SQL, the grouping would sort every lead
    (the planner cannot tell that a million creation times fall in a few months).
    """
    facts, params = lead_facts(scope, cohort=TruncMonth("created_at"))
    rows = fetch_rows(
        f"SELECT cohort, COUNT(*), {reached_sum(1)}, {reached_sum(2)}, {reached_sum(3)}, "
        f"{reached_sum(4)} FROM ({facts}) facts GROUP BY cohort",
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
    leads_sql, params = queryset_sql(with_history(scope).order_by().values("pk", "created_at"))
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


def exit_reasons(scope: ReportScope) -> list[dict[str, Any]]:
    """Why leads were disqualified or recycled, most frequent first."""
    rows = (
        StageChange.objects.filter(
            lead__in=with_history(scope).order_by().values("pk"),
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

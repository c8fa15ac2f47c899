"""The speed to lead and reps report's page: hours to the first touch drawn per rep,
the per-rep and per-team tables and the rejection reasons."""

from __future__ import annotations

from django.http import QueryDict

from reports import charts
from reports.pages.report_page import ReportPage
from reports.queries.speed_to_lead import reject_reasons, speed_tables
from reports.scope import ReportScope
from reports.tables import Column, Table, show


def speed_page(scope: ReportScope, params: QueryDict) -> ReportPage:
    reps, teams = speed_tables(scope)
    reasons = reject_reasons(scope)
    page = ReportPage()
    if not reps:
        page.notices.append("No hand-offs, ratings or deals in this range with these filters.")
    touched = [r for r in reps if r["median_hours"] is not None]
    page.charts.append(
        charts.bar_chart(
            slug="speed",
            title="Median hours from hand-off to first touch, per rep",
            labels=[r["name"] for r in touched],
            values=[r["median_hours"] for r in touched],
            texts=[
                f"{show(r['median_hours'], 'hours')} (p90 {show(r['p90_hours'], 'hours')})"
                for r in touched
            ],
        )
    )
    columns = [
        Column("name", "Rep"),
        Column("handoffs", "Hand-offs", "int"),
        Column("touched", "Touched", "int"),
        Column("median_hours", "Median to first touch", "hours"),
        Column("p90_hours", "p90 to first touch", "hours"),
        Column("breaches", "SLA breaches", "int"),
        Column("accepted", "Accepted", "int"),
        Column("rejected", "Rejected", "int"),
        Column("acceptance", "Acceptance", "pct"),
        Column("good", "Rated good", "int"),
        Column("not_fit", "Rated not a fit", "int"),
        Column("pipeline", "Open pipeline", "money"),
        Column("won_deals", "Won deals", "int"),
        Column("won_amount", "Won", "money"),
    ]
    page.tables += [
        Table("reps", "Per rep", columns, reps),
        Table("teams", "Per team", [Column("name", "Team"), *columns[1:]], teams),
        Table(
            "rejections",
            "Why hand-offs were rejected",
            [Column("reason", "Reason"), Column("handoffs", "Hand-offs", "int")],
            reasons,
            empty="No hand-off in this range was rejected.",
        ),
    ]
    return page

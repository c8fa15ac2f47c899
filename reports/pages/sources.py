"""The sources and campaigns report's page: the win rate drawn per source, campaign
or UTM medium (the page's option), and the table of the same rows."""

from __future__ import annotations

from django.http import QueryDict

from reports import charts
from reports.pages.report_page import ReportPage, pct
from reports.queries.sources import DIMENSIONS, source_rows
from reports.scope import ReportScope
from reports.tables import Column, Table


def sources_page(scope: ReportScope, params: QueryDict) -> ReportPage:
    dimension = params.get("by") or ""
    if dimension not in DIMENSIONS:
        dimension = "source"
    rows = source_rows(scope, dimension)
    label = DIMENSIONS[dimension]
    page = ReportPage()
    page.options = [
        {"name": "by", "value": key, "label": f"By {text.lower()}", "current": key == dimension}
        for key, text in DIMENSIONS.items()
    ]
    if not rows:
        page.notices.append("No leads in this range with these filters.")
    page.charts.append(
        charts.bar_chart(
            slug="sources",
            title=f"Win rate by {label.lower()}",
            labels=[r["name"] for r in rows],
            values=[r["win_rate"] for r in rows],
            texts=[f"{pct(r['win_rate'])} of {r['closed']} closed" for r in rows],
        )
    )
    page.tables.append(
        Table(
            key="sources",
            title=f"By {label.lower()}",
            columns=[
                Column("name", label),
                Column("leads", "Leads", "int"),
                Column("avg_score", "Average score", "float"),
                Column("mql_rate", "MQL rate", "pct"),
                Column("closed", "Closed", "int"),
                Column("won", "Won", "int"),
                Column("win_rate", "Win rate", "pct"),
                Column("revenue", "Revenue", "money"),
                Column("spend", "Spend", "money"),
                Column("cost_per_lead", "Cost per lead", "money"),
                Column("cost_per_customer", "Cost per customer", "money"),
            ],
            rows=rows,
            note="Spend comes from the campaign costs entered in the admin and is set "
            "against the campaign's leads in this range.",
        )
    )
    return page

"""The nurture report's page: the share of enrolled leads reaching MQL drawn per
sequence, and the tables per step and per sequence."""

from __future__ import annotations

from django.http import QueryDict

from reports import charts
from reports.pages.report_page import ReportPage, pct
from reports.queries.nurture import nurture_available, nurture_sequences, nurture_steps
from reports.scope import ReportScope
from reports.tables import Column, Table


def nurture_page(scope: ReportScope, params: QueryDict) -> ReportPage:
    page = ReportPage()
    if not nurture_available():
        page.notices.append("Nurturing is not installed: there are no sequences to report on.")
        return page
    steps = nurture_steps(scope)
    sequences = nurture_sequences(scope)
    if not steps and not sequences:
        page.notices.append("No nurture messages or enrollments in this range with these filters.")
    page.charts.append(
        charts.bar_chart(
            slug="nurture",
            title="Share of enrolled leads that reached MQL, per sequence",
            labels=[s["sequence"] for s in sequences],
            values=[s["mql_rate"] for s in sequences],
            texts=[f"{pct(s['mql_rate'])} of {s['enrolled']} enrolled" for s in sequences],
        )
    )
    page.tables += [
        Table(
            "steps",
            "Per sequence and step",
            [
                Column("sequence", "Sequence"),
                Column("step", "Step", "int"),
                Column("subject", "Subject"),
                Column("sent", "Sent", "int"),
                Column("opened", "Opened", "int"),
                Column("clicked", "Clicked", "int"),
                Column("replied", "Replied", "int"),
                Column("unsubscribed", "Unsubscribed", "int"),
                Column("bounced", "Bounced", "int"),
                Column("open_rate", "Open rate", "pct"),
                Column("click_rate", "Click rate", "pct"),
            ],
            steps,
        ),
        Table(
            "sequences",
            "Per sequence: enrolled leads that reached MQL and SQL",
            [
                Column("sequence", "Sequence"),
                Column("enrolled", "Enrolled leads", "int"),
                Column("mql", "Reached MQL", "int"),
                Column("mql_rate", "MQL share", "pct"),
                Column("sql", "Reached SQL", "int"),
                Column("sql_rate", "SQL share", "pct"),
            ],
            sequences,
        ),
    ]
    return page

"""The funnel report's page: the funnel and the monthly cohorts drawn, the steps with
their time in stage, the cohorts and the exit reasons as tables."""

from __future__ import annotations

from django.http import QueryDict

from reports import charts, stats
from reports.pages.report_page import ReportPage, pct
from reports.queries.funnel import exit_reasons, funnel_by_cohort, funnel_totals, stage_times
from reports.scope import ReportScope
from reports.tables import Column, Table


def _exported(params: QueryDict) -> str | None:
    """The table a CSV export asks for (the first, "steps" or the like, when none is
    named); None when the whole page is shown."""
    if params.get("format") != "csv":
        return None
    return params.get("table") or ""


def funnel_page(scope: ReportScope, params: QueryDict) -> ReportPage:
    # A CSV export reads only what its table needs: each query is a pass over the leads.
    export = _exported(params)
    cohorts = funnel_by_cohort(scope) if export != "reasons" else []
    steps = funnel_totals(cohorts)
    times = stage_times(scope) if export in (None, "", "steps") else {}
    reasons = exit_reasons(scope) if export in (None, "reasons") else []
    page = ReportPage()
    if not cohorts:
        page.notices.append("No leads in this range with these filters.")
    if scope.handoff_people is not None:
        page.notices.append(
            "This funnel counts the leads owned now by "
            f"{_whose(scope)}. A lead reaches an owner when it is handed off, at MQL or "
            "later, so the steps up to the hand-off read near 100 %; hand-offs that were "
            "rejected returned their leads to marketing and are counted in Speed to lead."
        )
    for step in steps:
        stay = times.get(step["stage"], {})
        step["median_days"] = stay.get("median_days")
        step["p90_days"] = stay.get("p90_days")
        step["stays"] = stay.get("stays", 0)
    page.charts.append(
        charts.funnel_chart(
            slug="funnel",
            title="Funnel: leads reaching each stage",
            labels=[s["step"] for s in steps],
            counts=[s["count"] for s in steps],
            texts=[
                f"{s['count']:,}"
                + (
                    f" ({pct(s['step_rate'])} of the step before)"
                    if s["step_rate"] is not None
                    else ""
                )
                for s in steps
            ],
        )
    )
    if cohorts:
        page.charts.append(
            charts.line_chart(
                slug="cohorts",
                title="Monthly cohorts: leads created and how many became MQL and customers",
                labels=[c["cohort"] for c in cohorts],
                series=[
                    ("Leads", [c["leads"] for c in cohorts]),
                    ("MQL", [c["mql"] for c in cohorts]),
                    ("Customers", [c["customer"] for c in cohorts]),
                ],
            )
        )
    page.tables.append(
        Table(
            key="steps",
            title="Funnel steps",
            columns=[
                Column("step", "Step"),
                Column("count", "Leads", "int"),
                Column("step_rate", "From the step before", "pct"),
                Column("overall_rate", "Of all leads", "pct"),
                Column("stays", "Stays ended", "int"),
                Column("median_days", "Median time in stage", "days"),
                Column("p90_days", "p90 time in stage", "days"),
            ],
            rows=steps if cohorts else [],
            note="A lead counts at every step it passed, by its stage history. Time in stage "
            "covers the stays that ended: from entering the stage to leaving it.",
        )
    )
    for row in cohorts:
        row["mql_rate"] = stats.ratio(row["mql"], row["leads"])
        row["customer_rate"] = stats.ratio(row["customer"], row["leads"])
    page.tables.append(
        Table(
            key="cohorts",
            title="By month of creation",
            columns=[
                Column("cohort", "Month"),
                Column("leads", "Leads", "int"),
                Column("mql", "MQL", "int"),
                Column("sql", "SQL", "int"),
                Column("opportunity", "Opportunity", "int"),
                Column("customer", "Customer", "int"),
                Column("mql_rate", "MQL rate", "pct"),
                Column("customer_rate", "Customer rate", "pct"),
            ],
            rows=cohorts,
        )
    )
    page.tables.append(
        Table(
            key="reasons",
            title="Disqualification and recycle reasons",
            columns=[
                Column("outcome", "Outcome"),
                Column("reason", "Reason"),
                Column("leads", "Leads", "int"),
            ],
            rows=reasons,
            empty="No lead in this range was disqualified or recycled.",
        )
    )
    return page


def _whose(scope: ReportScope) -> str:
    role = scope.user.role
    if role == "rep":
        return "you"
    if role == "manager":
        return "your team"
    return "the chosen owner or team"

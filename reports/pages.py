"""What each report page shows: its facts, charts and tables, built from the query rows.

One builder per report, each taking the scope (and the query string for its own
options) and returning a ``ReportPage`` that the page template and the CSV export
both render.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict
from django.utils import timezone

from . import charts, queries
from .charts import Chart
from .scope import ReportScope
from .tables import Column, Table, show

NO_CLOSED = (
    "No closed leads in this range for this model yet: conversion, lift and ROC AUC "
    "need won or lost deals."
)


@dataclass
class ReportPage:
    facts: list[tuple[str, str]] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    alert: str = ""
    options: list[dict[str, Any]] = field(default_factory=list)

    def table(self, key: str | None) -> Table | None:
        if not key:
            return self.tables[0] if self.tables else None
        return next((t for t in self.tables if t.key == key), None)


@dataclass(frozen=True)
class Report:
    slug: str
    title: str
    summary: str
    build: Callable[[ReportScope, QueryDict], ReportPage]


def _pct(value: float | None) -> str:
    return show(value, "pct")


def key_facts(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """The key figures as the index page and the digest show them."""
    return [
        ("Leads", show(figures["leads"], "int")),
        ("Reached MQL", f"{figures['mql']:,} ({_pct(figures['mql_rate'])})"),
        ("Reached SQL", show(figures["sql"], "int")),
        ("Customers", show(figures["customers"], "int")),
        ("Win rate (won / closed)", _pct(figures["win_rate"])),
        ("Won revenue", show(figures["revenue"], "money")),
        ("Median time to first touch", show(figures["median_speed_hours"], "hours")),
        ("ROC AUC of the score", show(figures["auc"], "ratio")),
    ]


# --- Funnel -----------------------------------------------------------------------------


def _exported(params: QueryDict) -> str | None:
    """The table a CSV export asks for (the first, "steps" or the like, when none is
    named); None when the whole page is shown."""
    if params.get("format") != "csv":
        return None
    return params.get("table") or ""


def funnel_page(scope: ReportScope, params: QueryDict) -> ReportPage:
    # A CSV export reads only what its table needs: each query is a pass over the leads.
    export = _exported(params)
    cohorts = queries.funnel_by_cohort(scope) if export != "reasons" else []
    steps = queries.funnel_totals(cohorts)
    times = queries.stage_times(scope) if export in (None, "", "steps") else {}
    reasons = queries.exit_reasons(scope) if export in (None, "reasons") else []
    page = ReportPage()
    if not cohorts:
        page.notices.append("No leads in this range with these filters.")
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
                    f" ({_pct(s['step_rate'])} of the step before)"
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
        row["mql_rate"] = queries.stats.ratio(row["mql"], row["leads"])
        row["customer_rate"] = queries.stats.ratio(row["customer"], row["leads"])
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


# --- Score vs outcome ----------------------------------------------------------------------


def score_page(scope: ReportScope, params: QueryDict) -> ReportPage:
    cube = queries.score_cube(scope)
    bands = queries.outcome_by_band(scope, cube=cube)
    deciles = queries.outcome_by_decile(scope, cube=cube)
    at_handoff = queries.outcome_by_handoff_decile(scope)
    distribution = queries.score_distribution(scope, cube=cube)
    auc = queries.stats.roc_auc(queries.score_outcome_counts(scope, cube=cube))
    won = queries.won_before_close(scope, cube=cube)
    page = ReportPage()
    closed = sum(b["closed"] for b in bands)
    leads = sum(b["leads"] for b in bands)
    if not leads:
        page.notices.append("No leads in this range with these filters.")
    elif not closed:
        page.notices.append(NO_CLOSED)
    if queries.stats.scores_backwards([(b["band"], b["conversion"]) for b in bands]):
        page.alert = (
            "Scores are backwards: the higher bands convert worse than the lower ones. "
            "Review the model's rules (see Rule effectiveness)."
        )
    top = deciles[0] if deciles else None
    page.facts = [
        ("Closed leads", f"{closed:,}"),
        ("ROC AUC", show(auc, "ratio")),
        ("Lift of the highest decile", show(top["lift"] if top else None, "float")),
        ("Won deals with a hot score before closing", _pct(won["hot_share"])),
        ("Lowest score of a converted lead", show(won["lowest_won_score"], "int")),
    ]
    page.charts.append(
        charts.bar_chart(
            slug="bands",
            title="Conversion (won / closed) by band",
            labels=[b["band"] for b in bands],
            values=[b["conversion"] for b in bands],
            texts=[f"{_pct(b['conversion'])} of {b['closed']} closed" for b in bands],
            tones=["tone-hot", "tone-warm", "tone-cold"],
        )
    )
    page.charts.append(
        charts.bar_chart(
            slug="deciles",
            title="Conversion by score decile today (10 is the highest)",
            labels=[f"Decile {d['decile']}" for d in deciles],
            values=[d["conversion"] for d in deciles],
            texts=[f"{_pct(d['conversion'])} of {d['closed']} closed" for d in deciles],
        )
    )
    page.charts.append(
        charts.bar_chart(
            slug="distribution",
            title="Score distribution",
            labels=[d["scores"] for d in distribution],
            values=[d["leads"] for d in distribution],
            texts=[f"{d['leads']:,} leads" for d in distribution],
        )
    )
    band_columns = [
        Column("band", "Band"),
        Column("leads", "Leads", "int"),
        Column("closed", "Closed", "int"),
        Column("won", "Won", "int"),
        Column("conversion", "Conversion", "pct"),
        Column("lift", "Lift", "float"),
        Column("won_deals", "Won deals", "int"),
        Column("avg_deal", "Average deal", "money"),
        Column("cycle_days", "Sales cycle", "days"),
    ]
    decile_columns = [
        Column("decile", "Decile", "int"),
        Column("score_from", "Score from", "int"),
        Column("score_to", "Score to", "int"),
        Column("leads", "Leads", "int"),
        Column("closed", "Closed", "int"),
        Column("won", "Won", "int"),
        Column("conversion", "Conversion", "pct"),
        Column("lift", "Lift", "float"),
    ]
    page.tables += [
        Table("bands", "By band today", band_columns, bands if leads else []),
        Table("deciles", "By score decile today", decile_columns, deciles),
        Table(
            "handoff",
            "By score decile at hand-off",
            [
                c if c.key != "leads" else Column("leads", "Hand-offs", "int")
                for c in decile_columns
            ],
            at_handoff,
            empty="No hand-offs in this range.",
            note="The score at hand-off is the ledger's points up to that moment, before decay.",
        ),
        Table(
            "distribution",
            "Score distribution",
            [Column("scores", "Scores"), Column("leads", "Leads", "int")],
            distribution,
        ),
    ]
    return page


# --- Sources and campaigns -----------------------------------------------------------------


def sources_page(scope: ReportScope, params: QueryDict) -> ReportPage:
    dimension = params.get("by") if params.get("by") in queries.DIMENSIONS else "source"
    rows = queries.source_rows(scope, dimension)
    label = queries.DIMENSIONS[dimension]
    page = ReportPage()
    page.options = [
        {"name": "by", "value": key, "label": f"By {text.lower()}", "current": key == dimension}
        for key, text in queries.DIMENSIONS.items()
    ]
    if not rows:
        page.notices.append("No leads in this range with these filters.")
    page.charts.append(
        charts.bar_chart(
            slug="sources",
            title=f"Win rate by {label.lower()}",
            labels=[r["name"] for r in rows],
            values=[r["win_rate"] for r in rows],
            texts=[f"{_pct(r['win_rate'])} of {r['closed']} closed" for r in rows],
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


# --- Speed to lead and reps ---------------------------------------------------------------


def speed_page(scope: ReportScope, params: QueryDict) -> ReportPage:
    reps, teams = queries.speed_tables(scope)
    reasons = queries.reject_reasons(scope)
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


# --- Rule effectiveness ---------------------------------------------------------------------


def _matches_notice(source: queries.MatchSource) -> str:
    """Which matches the rules page counts: the rollup's, with its time, or why not."""
    if source.built_at is not None:
        when = timezone.localtime(source.built_at).strftime("%Y-%m-%d %H:%M %Z")
        return (
            f"Rule matches as of {when}: they are rebuilt every night, so leads scored "
            "since then count as unmatched."
        )
    if source.live:
        return (
            "Rule matches have not been built yet; with a ledger this small they are "
            "computed from it as you look. They are rebuilt every night, or now with "
            "“python manage.py reports_refresh”."
        )
    return (
        "Rule matches have not been built yet, and the ledger is too large to count them "
        "during a page view: the rules are listed with their points only. They are "
        "rebuilt every night, or now with “python manage.py reports_refresh”."
    )


def rules_page(scope: ReportScope, params: QueryDict) -> ReportPage:
    page = ReportPage()
    model = scope.effective_model
    if model is None:
        page.notices.append("There is no scoring model yet.")
        return page
    found = queries.rule_rows(scope, model)
    rows, totals = found["rules"], found["totals"]
    page.facts = [
        ("Model", model.name),
        ("Leads", f"{totals['leads']:,}"),
        ("Closed", f"{totals['closed']:,}"),
        ("Won", f"{totals['won']:,}"),
    ]
    known = found["source"].known
    page.notices.append(_matches_notice(found["source"]))
    if not totals["leads"]:
        page.notices.append(f"No leads in this range scored by {model.name} with these filters.")
    elif not rows:
        page.notices.append(f"{model.name} has no rules.")
    if totals["leads"] and not totals["closed"]:
        page.notices.append(NO_CLOSED)
    lifted = [r for r in rows if r["lift"] is not None]
    page.charts.append(
        charts.bar_chart(
            slug="lift",
            title=f"Lift per rule in {model.name} (1 means no signal)",
            labels=[r["rule"] for r in lifted],
            values=[r["lift"] for r in lifted],
            texts=[f"{show(r['lift'], 'float')} ({r['points']:+d} points)" for r in lifted],
        )
    )
    columns = [
        Column("rule", "Rule"),
        Column("points", "Points", "int"),
        Column("matched", "Leads matched", "int"),
        Column("match_share", "Share of leads", "pct"),
        Column("conversion_in", "Conversion if matched", "pct"),
        Column("conversion_out", "Conversion if not", "pct"),
        Column("lift", "Lift", "float"),
        Column("lift_low", "Lift 95 % low", "float"),
        Column("lift_high", "Lift 95 % high", "float"),
        Column("evidence", "Evidence"),
    ]
    short = [
        Column("rule", "Rule"),
        Column("points", "Points", "int"),
        Column("evidence", "Evidence"),
    ]
    page.tables += [
        Table("rules", f"Rules of {model.name}", columns, rows),
        Table(
            "prune",
            "Candidates for pruning",
            short,
            [r for r in rows if r["verdict"] == "prune"],
            empty="No rule fires on nearly everyone or lacks a signal."
            if known
            else "Not known until the rule matches are built.",
        ),
        Table(
            "reweight",
            "Candidates for re-weighting",
            short,
            [r for r in rows if r["verdict"] == "reweight"],
            empty="Every judged rule's points agree with its lift."
            if known
            else "Not known until the rule matches are built.",
        ),
    ]
    return page


# --- Nurture -----------------------------------------------------------------------------


def nurture_page(scope: ReportScope, params: QueryDict) -> ReportPage:
    page = ReportPage()
    if not queries.nurture_available():
        page.notices.append("Nurturing is not installed: there are no sequences to report on.")
        return page
    steps = queries.nurture_steps(scope)
    sequences = queries.nurture_sequences(scope)
    if not steps and not sequences:
        page.notices.append("No nurture messages or enrollments in this range with these filters.")
    page.charts.append(
        charts.bar_chart(
            slug="nurture",
            title="Share of enrolled leads that reached MQL, per sequence",
            labels=[s["sequence"] for s in sequences],
            values=[s["mql_rate"] for s in sequences],
            texts=[f"{_pct(s['mql_rate'])} of {s['enrolled']} enrolled" for s in sequences],
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


REPORTS: dict[str, Report] = {
    report.slug: report
    for report in [
        Report(
            "funnel",
            "Funnel",
            "Leads through MQL, SQL and opportunity to customer, by month.",
            funnel_page,
        ),
        Report(
            "score",
            "Score vs outcome",
            "Do high scores close? Conversion by band and decile, ROC AUC, lift.",
            score_page,
        ),
        Report(
            "sources",
            "Sources and campaigns",
            "Lead quality, revenue and cost per source, campaign and medium.",
            sources_page,
        ),
        Report(
            "speed",
            "Speed to lead and reps",
            "Hours to the first touch, SLA breaches, acceptance, ratings, wins.",
            speed_page,
        ),
        Report(
            "rules",
            "Rule effectiveness",
            "Lift per rule with its interval; what to prune or re-weight.",
            rules_page,
        ),
        Report(
            "nurture",
            "Nurture",
            "Sequences and steps: opens, clicks, replies, and leads that reached MQL.",
            nurture_page,
        ),
    ]
}

"""The rule effectiveness report's page: the lift drawn per rule, where the matches
came from, and the tables of rules and of candidates for pruning and re-weighting."""

from __future__ import annotations

from django.http import QueryDict
from django.utils import timezone
from django.utils.formats import date_format

from reports import charts
from reports.pages.report_page import NO_CLOSED, ReportPage
from reports.queries.rule_effectiveness import MatchSource, rule_rows
from reports.rollups import rule_matches_refresh_request
from reports.scope import ReportScope
from reports.tables import Column, Table, show


def _matches_notice(source: MatchSource) -> str:
    """How the rules page counts the matches: the rollup's counts, with their time, the
    matches themselves, or why not yet."""
    if source.built_at is not None:
        when = date_format(timezone.localtime(source.built_at), "DATETIME_FORMAT")
        return (
            f"Rule matches as of {when}: the leads each rule matches are counted again "
            "within a minute of every rescore, and every night."
        )
    if source.live:
        return (
            "Rule matches have not been counted yet; there are few, so they are counted "
            "as you look."
        )
    return (
        "Rule matches are being counted: there are too many to count during a page view, "
        "so the rules are listed with their points only until then. Reload this page in a "
        "minute."
    )


def rules_page(scope: ReportScope, params: QueryDict) -> ReportPage:
    page = ReportPage()
    model = scope.effective_model
    if model is None:
        page.notices.append("There is no scoring model yet.")
        return page
    found = rule_rows(scope, model)
    if not found["source"].known:
        rule_matches_refresh_request()
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

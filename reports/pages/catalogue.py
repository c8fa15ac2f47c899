"""The reports, in the order the navigation lists them, each with the builder of
its page; and the key figures as the index page and the weekly digest show them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import QueryDict

from reports.pages.funnel import funnel_page
from reports.pages.nurture import nurture_page
from reports.pages.report_page import ReportPage, pct
from reports.pages.rule_effectiveness import rules_page
from reports.pages.score_outcome import score_page
from reports.pages.sources import sources_page
from reports.pages.speed_to_lead import speed_page
from reports.scope import ReportScope
from reports.tables import show


@dataclass(frozen=True)
class Report:
    slug: str
    title: str
    summary: str
    build: Callable[[ReportScope, QueryDict], ReportPage]


def key_facts(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """The key figures as the index page and the digest show them."""
    return [
        ("Leads", show(figures["leads"], "int")),
        ("Reached MQL", f"{figures['mql']:,} ({pct(figures['mql_rate'])})"),
        ("Reached SQL", show(figures["sql"], "int")),
        ("Customers", show(figures["customers"], "int")),
        ("Win rate (won / closed)", pct(figures["win_rate"])),
        ("Won revenue", show(figures["revenue"], "money")),
        ("Median time to first touch", show(figures["median_speed_hours"], "hours")),
        ("ROC AUC of the score", show(figures["auc"], "ratio")),
    ]


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

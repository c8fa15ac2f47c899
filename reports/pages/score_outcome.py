"""The score vs outcome report's page: conversion by band and decile drawn, the
"scores are backwards" alert, and the tables by band, decile (today and at hand-off)
and score."""

from __future__ import annotations

from django.http import QueryDict

from reports import charts, stats
from reports.pages.report_page import NO_CLOSED, ReportPage, pct
from reports.queries.lead_facts import score_cube
from reports.queries.score_outcome import (
    outcome_by_band,
    outcome_by_decile,
    outcome_by_handoff_decile,
    score_distribution,
    score_outcome_counts,
    won_before_close,
)
from reports.scope import ReportScope
from reports.tables import Column, Table, show


def score_page(scope: ReportScope, params: QueryDict) -> ReportPage:
    cube = score_cube(scope)
    bands = outcome_by_band(scope, cube=cube)
    deciles = outcome_by_decile(scope, cube=cube)
    at_handoff = outcome_by_handoff_decile(scope)
    distribution = score_distribution(scope, cube=cube)
    auc = stats.roc_auc(score_outcome_counts(scope, cube=cube))
    won = won_before_close(scope, cube=cube)
    page = ReportPage()
    closed = sum(b["closed"] for b in bands)
    leads = sum(b["leads"] for b in bands)
    if not leads:
        page.notices.append("No leads in this range with these filters.")
    elif not closed:
        page.notices.append(NO_CLOSED)
    if stats.scores_backwards([(b["band"], b["conversion"]) for b in bands]):
        page.alert = (
            "Scores are backwards: the higher bands convert worse than the lower ones. "
            "Review the model's rules (see Rule effectiveness)."
        )
    top = deciles[0] if deciles else None
    page.facts = [
        ("Closed leads", f"{closed:,}"),
        ("ROC AUC", show(auc, "ratio")),
        ("Lift of the highest decile", show(top["lift"] if top else None, "float")),
        ("Won deals with a hot score before closing", pct(won["hot_share"])),
        ("Lowest score of a converted lead", show(won["lowest_won_score"], "int")),
    ]
    page.charts.append(
        charts.bar_chart(
            slug="bands",
            title="Conversion (won / closed) by band",
            labels=[b["band"] for b in bands],
            values=[b["conversion"] for b in bands],
            texts=[f"{pct(b['conversion'])} of {b['closed']} closed" for b in bands],
            tones=["tone-hot", "tone-warm", "tone-cold"],
        )
    )
    page.charts.append(
        charts.bar_chart(
            slug="deciles",
            title="Conversion by score decile today (10 is the highest)",
            labels=[f"Decile {d['decile']}" for d in deciles],
            values=[d["conversion"] for d in deciles],
            texts=[f"{pct(d['conversion'])} of {d['closed']} closed" for d in deciles],
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

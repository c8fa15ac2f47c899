"""The report query layer over a small hand-built world whose figures are worked out
by hand below.

The world (March 2025, model "Main", hot from 80, warm from 30), owners rep1 (R) and
rep2 (O) of team North, and one lead of another team (X):

    lead  owner score band  source       history (days after creation)          deal
    H1    R     90    hot   event        mql 1, sql 2, opp 4, customer 10       won 1000
    H2    R     85    hot   event        mql 2, sql 4, opp 7, customer 14       won 3000, 2 Apr
    H3    O     80    hot   event        mql 1, sql 3, opp 5, disqualified 8    lost
    W1    R     50    warm  paid_search  mql 3, sql 6, opp 10, customer 19      won 2000
    W2    O     40    warm  paid_search  mql 2, sql 3, opp 6, disqualified 12   lost
    W3    R     35    warm  paid_search  mql 4, disqualified 6                  lost
    C1    R     10    cold  website      mql 5, recycled 9                      lost
    C2    O      5    cold  website      disqualified 1                         lost
    C3    O      0    cold  website      (new)                                  none
    X     east  20    cold  website      (new)                                  none
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import F
from django.http import QueryDict

from crm.models import Role, Team
from leads.deals import deal_save
from leads.handoff_models import HandOff, LeadRating
from leads.models import Deal, Lead
from leads.stages import stage_change_record
from reports import stats
from reports.models import Campaign
from reports.queries import (
    funnel,
    key_figures,
    lead_facts,
    rule_effectiveness,
    score_outcome,
    sources,
    speed_to_lead,
)
from reports.scope import ReportFilterForm, scope_from
from scoring.models import LeadScore, ScoreEntry, ScoringModel
from tests.conftest import make_user
from tests.factories import fit_rule

BASE = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC)
MARCH = {"date_from": "2025-03-01", "date_to": "2025-03-31"}
HISTORIES = {
    "H1": [
        ("new", "mql", 1),
        ("mql", "sql", 2),
        ("sql", "opportunity", 4),
        ("opportunity", "customer", 10),
    ],
    "H2": [
        ("new", "mql", 2),
        ("mql", "sql", 4),
        ("sql", "opportunity", 7),
        ("opportunity", "customer", 14),
    ],
    "H3": [
        ("new", "mql", 1),
        ("mql", "sql", 3),
        ("sql", "opportunity", 5),
        ("opportunity", "disqualified", 8),
    ],
    "W1": [
        ("new", "mql", 3),
        ("mql", "sql", 6),
        ("sql", "opportunity", 10),
        ("opportunity", "customer", 19),
    ],
    "W2": [
        ("new", "mql", 2),
        ("mql", "sql", 3),
        ("sql", "opportunity", 6),
        ("opportunity", "disqualified", 12),
    ],
    "W3": [("new", "mql", 4), ("mql", "disqualified", 6)],
    "C1": [("new", "mql", 5), ("mql", "recycled", 9)],
    "C2": [("new", "disqualified", 1)],
    "C3": [],
    "X": [],
}
REASONS = {
    "H3": "Chose a competitor",
    "W2": "Chose a competitor",
    "W3": "No budget",
    "C1": "Not now",
    "C2": "Student",
}
LEADS = {
    # name: (owner, score, band, source, campaign, deal status, amount, closed after days)
    "H1": ("R", 90, "hot", "event", "Spring webinar", "won", 1000, 10),
    "H2": ("R", 85, "hot", "event", "Spring webinar", "won", 3000, 30),
    "H3": ("O", 80, "hot", "event", "", "lost", 0, 8),
    "W1": ("R", 50, "warm", "paid_search", "=cmd|' /C calc'!A0", "won", 2000, 19),
    "W2": ("O", 40, "warm", "paid_search", "", "lost", 0, 12),
    "W3": ("R", 35, "warm", "paid_search", "", "lost", 0, 6),
    "C1": ("R", 10, "cold", "website", "", "lost", 0, 9),
    "C2": ("O", 5, "cold", "website", "", "lost", 0, 1),
    "C3": ("O", 0, "cold", "website", "", None, 0, 0),
    "X": ("E", 20, "cold", "website", "", None, 0, 0),
}
# Hand-offs at the move to SQL: owner, hours to the first touch (None: never), status.
HANDOFFS = {
    "H1": ("R", 2, "accepted"),
    "H2": ("R", 10, "accepted"),
    "W1": ("R", 30, "accepted"),
    "H3": ("O", 4, "accepted"),
    "W2": ("O", None, "rejected"),
}


def build_world(rep, other_rep) -> dict:
    east = Team.objects.create(name="East")
    outsider_rep = make_user("east-rep", Role.REP, team=east)
    owners = {"R": rep, "O": other_rep, "E": outsider_rep}
    main = ScoringModel.objects.create(
        name="Main", status="active", is_default=True, hot_from=80, warm_from=30
    )
    demo = fit_rule(main, 30, "job_title", "contains", "Head", name="Demo request")
    everyone = fit_rule(main, 5, "country", "equals", "DE", name="Everyone")
    leads = {}
    for i, (name, (owner, score, band, source, campaign, status, amount, closed)) in enumerate(
        LEADS.items()
    ):
        created = BASE + dt.timedelta(hours=i)
        lead = Lead.objects.create(
            email=f"{name.lower()}@example.com",
            first_name=name,
            owner=owners[owner],
            score=score,
            band=band,
            source=source,
            campaign=campaign,
            created_at=created,
        )
        history = HISTORIES[name]
        if history:
            lead.stage = history[-1][1]
            lead.disqualification_reason = (
                REASONS.get(name, "") if lead.stage == "disqualified" else ""
            )
            lead.save(update_fields=["stage", "disqualification_reason"])
        for from_stage, to_stage, days in history:
            reason = REASONS.get(name, "") if to_stage in ("disqualified", "recycled") else ""
            stage_change_record(
                lead=lead,
                from_stage=from_stage,
                to_stage=to_stage,
                at=created + dt.timedelta(days=days),
                reason=reason,
            )
        if status:
            deal_save(
                deal=Deal(
                    lead=lead,
                    name=f"{name} deal",
                    amount=Decimal(amount),
                    status=status,
                    created_at=created,
                    closed_at=created + dt.timedelta(days=closed),
                )
            )
        LeadScore.objects.create(lead=lead, model=main, score=score, band=band, is_primary=True)
        leads[name] = lead
    for name in ("H1", "H2", "H3", "W2"):
        ScoreEntry.objects.create(
            lead=leads[name],
            model=main,
            rule=demo,
            kind="fit",
            points=30,
            reason="Demo",
            at=leads[name].created_at,
        )
    for lead in leads.values():
        ScoreEntry.objects.create(
            lead=lead,
            model=main,
            rule=everyone,
            kind="fit",
            points=5,
            reason="DE",
            at=lead.created_at,
        )
    # A reversed award does not count as a match.
    award = ScoreEntry.objects.create(
        lead=leads["C1"],
        model=main,
        rule=demo,
        kind="fit",
        points=30,
        reason="Demo",
        at=leads["C1"].created_at,
    )
    ScoreEntry.objects.create(
        lead=leads["C1"],
        model=main,
        rule=demo,
        kind="fit",
        points=-30,
        reason="Undo",
        at=leads["C1"].created_at,
        reversal_of=award,
    )
    ScoreEntry.objects.create(
        lead=leads["H1"],
        model=main,
        kind="manual",
        points=60,
        reason="Call went well",
        at=leads["H1"].created_at,
    )
    for name, (owner, hours, status) in HANDOFFS.items():
        lead = leads[name]
        change = lead.stage_changes.get(to_stage="sql")
        extra = (
            {"accepted_at": change.at}
            if status == "accepted"
            else {"rejected_at": change.at, "reject_reason": "@SUM(1) wrong territory"}
        )
        HandOff.objects.create(
            lead=lead,
            stage_change=change,
            stage="sql",
            owner=owners[owner],
            status=status,
            created_at=change.at,
            sla_due_at=change.at + dt.timedelta(hours=24),
            first_touch_at=None if hours is None else change.at + dt.timedelta(hours=hours),
            **extra,
        )
    LeadRating.objects.create(lead=leads["H1"], by=rep, rating="good")
    LeadRating.objects.create(lead=leads["W1"], by=rep, rating="good")
    LeadRating.objects.create(lead=leads["W2"], by=other_rep, rating="not_fit", reason="Too small")
    Campaign.objects.create(name="spring webinar", spend=Decimal("600"))
    return {
        "leads": leads,
        "model": main,
        "demo": demo,
        "everyone": everyone,
        "east_rep": outsider_rep,
    }


@pytest.fixture
def world(rep, other_rep, manager):
    return build_world(rep, other_rep)


def scope(user, **data):
    form = ReportFilterForm({**MARCH, **data}, user=user)
    assert form.is_valid(), form.errors
    return scope_from(form)


def test_funnel_counts_every_step_a_lead_passed(world, manager):
    cohorts = funnel.funnel_by_cohort(scope(manager))

    assert cohorts == [
        {"cohort": "2025-03", "leads": 9, "mql": 7, "sql": 5, "opportunity": 5, "customer": 3}
    ]
    steps = {s["stage"]: s for s in funnel.funnel_totals(cohorts)}
    assert steps["mql"]["step_rate"] == pytest.approx(7 / 9)
    assert steps["sql"]["step_rate"] == pytest.approx(5 / 7)
    assert steps["opportunity"]["step_rate"] == pytest.approx(5 / 5)
    assert steps["customer"]["step_rate"] == pytest.approx(3 / 5)
    assert steps["customer"]["overall_rate"] == pytest.approx(3 / 9)


def test_median_and_p90_time_in_each_stage(world, manager):
    times = funnel.stage_times(scope(manager))

    # Stays in "new": 1,1,1,2,2,3,4,5 days -> median (2+2)/2, p90 at rank 6.3: 4 + 0.3.
    assert times["new"]["stays"] == 8
    assert times["new"]["median_days"] == pytest.approx(2)
    assert times["new"]["p90_days"] == pytest.approx(4.3)
    # "mql": 1,1,2,2,2,3,4 -> median 2, p90 at rank 5.4: 3 + 0.4.
    assert times["mql"]["median_days"] == pytest.approx(2)
    assert times["mql"]["p90_days"] == pytest.approx(3.4)
    # "sql": 2,2,3,3,4 -> 3 and 3.6; "opportunity": 3,6,6,7,9 -> 6 and 7 + 0.6 * 2.
    assert times["sql"]["median_days"] == pytest.approx(3)
    assert times["sql"]["p90_days"] == pytest.approx(3.6)
    assert times["opportunity"]["median_days"] == pytest.approx(6)
    assert times["opportunity"]["p90_days"] == pytest.approx(8.2)


def test_exit_reasons_are_counted(world, manager):
    reasons = funnel.exit_reasons(scope(manager))

    assert reasons == [
        {"outcome": "Disqualified", "reason": "Chose a competitor", "leads": 2},
        {"outcome": "Disqualified", "reason": "No budget", "leads": 1},
        {"outcome": "Disqualified", "reason": "Student", "leads": 1},
        {"outcome": "Recycled", "reason": "Not now", "leads": 1},
    ]


def test_conversion_and_lift_by_band(world, manager):
    bands = {row["band"]: row for row in score_outcome.outcome_by_band(scope(manager))}

    # Closed: 8 leads, 3 won -> 3/8 overall.
    assert (bands["Hot"]["closed"], bands["Hot"]["won"]) == (3, 2)
    assert bands["Hot"]["conversion"] == pytest.approx(2 / 3)
    assert bands["Hot"]["lift"] == pytest.approx((2 / 3) / (3 / 8))
    assert bands["Warm"]["conversion"] == pytest.approx(1 / 3)
    assert (bands["Cold"]["leads"], bands["Cold"]["closed"], bands["Cold"]["won"]) == (3, 2, 0)
    assert bands["Cold"]["conversion"] == 0
    # Hot won deals 1000 and 3000 after 10 and 30 days.
    assert bands["Hot"]["avg_deal"] == pytest.approx(2000)
    assert bands["Hot"]["cycle_days"] == pytest.approx(20)
    assert bands["Warm"]["cycle_days"] == pytest.approx(19)


def test_roc_auc_counts_pairs_of_won_and_lost(world, manager):
    counts = score_outcome.score_outcome_counts(scope(manager))

    # Won 90, 85, 50 against lost 80, 40, 35, 10, 5: 5 + 5 + 4 of 15 pairs.
    assert stats.roc_auc(counts) == pytest.approx(14 / 15)


def test_deciles_hot_share_and_lowest_converted_score(world, manager):
    the_scope = scope(manager)
    deciles = score_outcome.outcome_by_decile(the_scope)
    won = score_outcome.won_before_close(the_scope)

    # Nine leads in ten tiles: one lead each in tiles 1 to 9, highest (H1) in tile 9.
    assert [d["leads"] for d in deciles] == [1] * 9
    assert deciles[0]["score_from"] == 90
    assert deciles[0]["won"] == 1
    # Ledger before close: H1 30+5+60 = 95 (hot), H2 35, W1 5.
    assert won["won_deals"] == 3
    assert won["hot_before_close"] == 1
    assert won["lowest_won_score"] == 50


def test_sources_with_campaign_costs(world, manager):
    by_source = {r["name"]: r for r in sources.source_rows(scope(manager), "source")}
    by_campaign = {r["name"]: r for r in sources.source_rows(scope(manager), "campaign")}

    event = by_source["Event"]
    assert event["leads"] == 3
    assert event["avg_score"] == pytest.approx(85)
    assert event["mql_rate"] == pytest.approx(1)
    assert event["win_rate"] == pytest.approx(2 / 3)
    assert event["revenue"] == pytest.approx(4000)
    assert by_source["Website"]["mql_rate"] == pytest.approx(1 / 3)
    webinar = by_campaign["Spring webinar"]
    assert webinar["spend"] == 600
    assert webinar["cost_per_lead"] == pytest.approx(300)
    assert webinar["cost_per_customer"] == pytest.approx(300)
    assert by_campaign["(none)"]["spend"] is None


def test_speed_to_lead_per_rep(world, manager, rep, other_rep):
    rows = {r["name"]: r for r in speed_to_lead.speed_rows(scope(manager))}

    mine = rows[str(rep)]
    # Touches after 2, 10 and 30 hours: median 10, p90 at rank 1.8: 10 + 0.8 * 20.
    assert (mine["handoffs"], mine["touched"], mine["accepted"]) == (3, 3, 3)
    assert mine["median_hours"] == pytest.approx(10)
    assert mine["p90_hours"] == pytest.approx(26)
    assert mine["breaches"] == 1
    assert mine["good"] == 2
    assert mine["won_deals"] == 3
    assert mine["won_amount"] == pytest.approx(6000)
    theirs = rows[str(other_rep)]
    assert (theirs["handoffs"], theirs["touched"], theirs["rejected"]) == (2, 1, 1)
    assert theirs["breaches"] == 1
    assert theirs["acceptance"] == pytest.approx(1 / 2)
    assert theirs["not_fit"] == 1
    teams = speed_to_lead.speed_rows(scope(manager), by_team=True)
    assert [(t["name"], t["handoffs"]) for t in teams] == [("North", 5)]
    assert teams[0]["median_hours"] == pytest.approx(7)


def test_rule_lift_with_its_interval(world, manager):
    found = rule_effectiveness.rule_rows(scope(manager), world["model"])
    rules = {r["rule"]: r for r in found["rules"]}

    demo = rules["Demo request"]
    # Matched H1, H2, H3, W2 (C1's award was reversed): 2 of 4 closed won; others 1 of 4.
    assert demo["matched"] == 4
    assert demo["conversion_in"] == pytest.approx(0.5)
    assert demo["conversion_out"] == pytest.approx(0.25)
    assert demo["lift"] == pytest.approx(2)
    # Log interval: se = sqrt(1/2 - 1/4 + 1/1 - 1/4) = 1.
    assert demo["lift_low"] == pytest.approx(2 * 2.718281828**-1.959964, rel=1e-4)
    assert demo["lift_high"] == pytest.approx(2 * 2.718281828**1.959964, rel=1e-4)
    everyone = rules["Everyone"]
    assert everyone["match_share"] == pytest.approx(1)
    assert everyone["verdict"] == "prune"
    assert "fires on 100% of leads" in everyone["evidence"]


def test_closed_basis_counts_leads_by_when_their_deal_closed(world, manager):
    april = scope(manager, date_from="2025-04-01", date_to="2025-04-30", basis="closed")

    assert list(april.leads.values_list("first_name", flat=True)) == ["H2"]
    assert key_figures.key_figures(april)["won"] == 1


def test_key_figures(world, manager):
    figures = key_figures.key_figures(scope(manager))

    assert (figures["leads"], figures["mql"], figures["sql"], figures["customers"]) == (9, 7, 5, 3)
    assert figures["win_rate"] == pytest.approx(3 / 8)
    assert figures["revenue"] == pytest.approx(6000)
    # Touches after 2, 4, 10, 30 hours: median 7.
    assert figures["median_speed_hours"] == pytest.approx(7)
    assert figures["auc"] == pytest.approx(14 / 15)


def test_each_role_reports_on_its_own_leads(world, rep, manager, marketer, outsider):
    assert scope(rep).leads.count() == 5
    assert scope(manager).leads.count() == 9
    assert scope(marketer).leads.count() == 10
    assert scope(outsider).leads.count() == 0


def test_queries_run_a_fixed_number_of_statements(world, manager, django_assert_max_num_queries):
    the_scope = scope(manager)
    with django_assert_max_num_queries(12):
        key_figures.key_figures(the_scope)
        funnel.funnel_by_cohort(the_scope)
        funnel.stage_times(the_scope)
        score_outcome.outcome_by_band(the_scope)
        score_outcome.outcome_by_decile(the_scope)


def test_percentiles_agree_with_the_portable_fallback(world, manager):
    from reports import sql

    the_scope = scope(manager)
    source = speed_to_lead.speed_source(the_scope, "owner_id")
    native = sql.percentiles_by_group(*source, fractions=[0.5, 0.9])
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql._portable_percentiles(source[0], [0.5, 0.9]), source[1])
        portable = {row[0]: (int(row[1]), [float(v) for v in row[2:]]) for row in cursor.fetchall()}
    assert portable.keys() == native.keys()
    for key, (count, values) in native.items():
        assert portable[key][0] == count
        assert portable[key][1] == pytest.approx(values)


@pytest.mark.parametrize("total", [1, 7, 10, 23, 35])
def test_tiles_are_those_of_ntile(total):
    # NTILE(10): the first total % 10 tiles take one row more than the others.
    size, extra = divmod(total, 10)
    expected = []
    for tile in range(1, 11):
        expected += [tile] * (size + (1 if tile <= extra else 0))

    assert [score_outcome._ntile(rank, total) for rank in range(total)] == expected
    assert [score_outcome._tile_start(t, total) for t in range(1, 12)] == [
        expected.index(t) if t in expected else total for t in range(1, 12)
    ]


def test_deciles_split_tied_scores_by_id_as_ntile_does(marketer):
    """23 leads on four scores, so tile boundaries cut through tied scores; closed and
    won leads sit on both sides of the cuts. The figures equal PostgreSQL's (or the
    database's) own NTILE over score and id."""
    ScoringModel.objects.create(name="Main", status="active", is_default=True)
    scores = [10] * 7 + [20] * 9 + [30] * 5 + [40] * 2
    for n, score in enumerate(scores):
        lead = Lead.objects.create(
            email=f"t{n}@example.com", score=score, created_at=BASE + dt.timedelta(hours=n)
        )
        if n % 3 == 0:
            deal_save(
                deal=Deal(
                    lead=lead,
                    name=f"T{n}",
                    amount=10,
                    status="won" if n % 2 == 0 else "lost",
                    closed_at=lead.created_at,
                )
            )
    the_scope = scope(marketer)
    facts, params = lead_facts.lead_facts(the_scope, val=F("score"))

    deciles = score_outcome.outcome_by_decile(the_scope)

    assert deciles == score_outcome._deciles(
        f"SELECT pk, val, won AS w, closed AS c FROM ({facts}) facts", params
    )
    assert [d["leads"] for d in deciles] == [2, 2, 2, 2, 2, 2, 2, 3, 3, 3]
    assert sum(d["closed"] for d in deciles) == 8


def test_a_rejected_hand_off_still_counts_for_the_rep_and_team_that_rejected_it(
    world, manager, other_rep, admin_user
):
    # Rejecting returns the lead to marketing without an owner: it leaves the team's
    # leads, but it was the team's hand-off.
    rejected = HandOff.objects.get(status="rejected")
    Lead.objects.filter(pk=rejected.lead_id).update(owner=None, stage="recycled")

    rows = {r["name"]: r for r in speed_to_lead.speed_rows(scope(manager))}
    theirs = rows[str(other_rep)]
    assert (theirs["handoffs"], theirs["rejected"]) == (2, 1)
    assert theirs["acceptance"] == pytest.approx(1 / 2)
    [team] = speed_to_lead.speed_rows(scope(manager), by_team=True)
    assert (team["handoffs"], team["rejected"]) == (5, 1)
    assert [r["handoffs"] for r in speed_to_lead.reject_reasons(scope(manager))] == [1]
    # The rep sees their own rejection, and an admin filtering by the team sees it too.
    [own] = speed_to_lead.speed_rows(scope(other_rep))
    assert (own["handoffs"], own["rejected"]) == (2, 1)
    [filtered] = speed_to_lead.speed_rows(
        scope(admin_user, team=str(manager.team_id)), by_team=True
    )
    assert (filtered["handoffs"], filtered["rejected"]) == (5, 1)
    # A manager of another team counts none of them.
    east = world["east_rep"]
    assert speed_to_lead.speed_rows(scope(east)) == []


def test_a_team_funnel_says_what_it_counts(world, manager, marketer):
    from reports.pages.funnel import funnel_page

    team = funnel_page(scope(manager), QueryDict())
    everyone = funnel_page(scope(marketer), QueryDict())

    assert any("owned now by your team" in notice for notice in team.notices)
    assert not any("owned now by" in notice for notice in everyone.notices)

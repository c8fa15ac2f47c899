"""The candidate version's preview computed set-based on PostgreSQL gives every figure the
per-lead engine gives on the same leads: scores, moves, hand-offs, outcomes and reach, on
the rule score or on a blend with the live predictive model's scores."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import replace

import pytest
from django.core.cache import cache
from django.utils import timezone

from leads.deals import deal_save
from leads.models import Activity, Deal, Lead
from scoring.adjustments import leads_adjust_score
from scoring.changes import model_duplicate
from scoring.models import LeadScore, Rule, RuleKind, ScoreEntry
from scoring.rescore_jobs import model_rescore_in_process
from scoring.version_preview import VersionThresholds, version_preview, version_tallies
from tests.factories import LeadFactory, active_model, fit_rule, page_rule

pytestmark = pytest.mark.postgres


def build_world(marketer, **basis) -> tuple:
    """A live model with fit, per-unit, AND/OR, capped, windowed and bonus rules, decay and
    an idle penalty (and the score it decides on: ``basis``); a candidate with a base
    score, caps and other points; forty leads with visits over two months, adjustments,
    and won, lost and open deals."""
    rng = random.Random(25)
    live = active_model(
        name="Standard",
        mql_threshold=30,
        sql_threshold=60,
        hot_from=50,
        warm_from=20,
        decay_half_life_days=20,
        idle_week_penalty=2,
        **basis,
    )
    fit_rule(live, 10, "country", "equals", "DE", name="Germany")
    fit_rule(live, 15, "job_title", "contains", "CTO", name="CTO")
    Rule.objects.create(
        model=live,
        name="Staff",
        kind=RuleKind.FIT,
        points=1,
        field="company.employee_count",
        operator="gte",
        value="1",
        per_unit=100.0,
        points_cap=12,
    )
    Rule.objects.create(
        model=live,
        name="French or director",
        kind=RuleKind.FIT,
        points=-5,
        field="country",
        operator="equals",
        value="FR",
        conditions=[{"field": "seniority", "operator": "equals", "value": "director"}],
        join="or",
    )
    page_rule(live, 4, "/pricing", max_per_day=2, max_per_lead=6, bonus_count=2, bonus_points=5)
    Rule.objects.create(
        model=live,
        name="Busy week",
        kind=RuleKind.ENGAGEMENT,
        points=7,
        activity_type="page_view",
        window_days=7,
        window_min=3,
        recency_days=45,
    )
    candidate = model_duplicate(model=live, by=marketer)
    candidate.base_score = -10
    candidate.fit_cap = 25
    candidate.engagement_cap = 30
    candidate.mql_threshold = 20
    candidate.save()
    Rule.objects.filter(model=candidate, name="CTO").update(points=30)
    # Another window: its activities are read again; other points on the pricing page:
    # its awards are the live rule's, with the candidate's points
    Rule.objects.filter(model=candidate, name="Busy week").update(points=12, window_min=2)
    Rule.objects.filter(model=candidate, name="page /pricing").update(points=9, bonus_points=2)

    now = timezone.now()
    for i in range(40):
        lead = LeadFactory(
            country=rng.choice(["DE", "FR", "US"]),
            job_title=rng.choice(["CTO", "Engineer", ""]),
            seniority=rng.choice(["director", "manager"]),
            company__employee_count=rng.choice([None, 50, 250, 2000]),
        )
        Lead.objects.filter(pk=lead.pk).update(
            created_at=now - dt.timedelta(days=rng.randint(0, 60))
        )
        visits = [
            Activity(
                lead=lead,
                type="page_view",
                url=rng.choice(["/pricing", "/blog", "/pricing/teams"]),
                occurred_at=now - dt.timedelta(hours=rng.randint(1, 24 * 60)),
            )
            for _ in range(rng.randint(0, 12))
        ]
        Activity.objects.bulk_create(visits)
        if i % 4 == 0:
            leads_adjust_score(lead_ids=[lead.pk], points=rng.choice([-8, 6]), reason="x", by=None)
        for _ in range(rng.choice([0, 0, 1, 2])):
            status = rng.choice(["won", "lost", "open"])
            closed_at = now - dt.timedelta(days=rng.randint(1, 90)) if status != "open" else None
            deal_save(deal=Deal(lead=lead, name=f"Deal {i}", status=status, closed_at=closed_at))
    # A lead that earns the pricing page's bonus (two visits on one day)
    keen = LeadFactory(country="DE")
    Activity.objects.bulk_create(
        Activity(
            lead=keen, type="page_view", url="/pricing", occurred_at=now - dt.timedelta(hours=h)
        )
        for h in (1, 2, 3)
    )
    return live, candidate, now


def test_the_set_based_preview_gives_what_the_engine_gives(db, marketer, settings):
    settings.HANDOFF_STAGE = "mql"
    _, candidate, now = build_world(marketer)
    ledger = sorted(ScoreEntry.objects.values_list("pk", "points"))
    scores = sorted(LeadScore.objects.values_list("lead_id", "model_id", "score"))

    engine = version_tallies(candidate=candidate, now=now, set_based=False)
    set_based = version_tallies(candidate=candidate, now=now, set_based=True)

    assert set_based.scored == engine.scored == 41
    assert set_based.live_scores == engine.live_scores
    assert set_based.candidate_scores == engine.candidate_scores
    assert len(set(set_based.candidate_scores)) > 5  # the world spreads the scores
    assert set_based.open_leads == engine.open_leads
    assert set_based.recent == engine.recent
    assert set_based.closed == engine.closed
    assert {c.won for c in set_based.closed} == {True, False}
    # The candidate's rules' reach (the page reads the live model's from its ledger)
    reach = engine.rules[candidate.pk]
    assert len(reach) == 6
    assert set(set_based.rules[candidate.pk]) == set(reach)
    for rule_id, found in reach.items():
        assert set_based.rules[candidate.pk][rule_id].leads == found.leads
        assert set_based.rules[candidate.pk][rule_id].points == pytest.approx(found.points)
    # Neither wrote to the ledger or the scores
    assert sorted(ScoreEntry.objects.values_list("pk", "points")) == ledger
    assert sorted(LeadScore.objects.values_list("lead_id", "model_id", "score")) == scores


def test_the_preview_page_figures_are_the_same_either_way(db, marketer, settings):
    settings.HANDOFF_STAGE = "mql"
    _, candidate, _ = build_world(marketer)

    figures = []
    for set_based in (False, True):
        cache.clear()
        version_tallies(candidate=candidate, set_based=set_based)  # kept for the preview
        figures.append(version_preview(candidate=candidate).figures())

    engine, set_based = figures
    engine.pop("at"), set_based.pop("at")
    assert set_based == engine
    assert engine["closed"] > 0


def blending_world(marketer) -> tuple:
    """``build_world`` with a live model deciding on a blend (40% predictive) and a
    candidate on another blend (70% predictive); the live predictive model has scored
    three leads in four, from 0 to 100."""
    live, candidate, now = build_world(
        marketer, max_points=100, decide_on="blend", predictive_share=40
    )
    candidate.predictive_share = 70
    candidate.save()
    model_rescore_in_process(model=live, reason="test")
    for lead_id in LeadScore.objects.filter(model=live).values_list("lead_id", flat=True):
        if lead_id % 4:
            predictive = lead_id * 37 % 101
            LeadScore.objects.filter(model=live, lead_id=lead_id).update(
                predictive_score=predictive
            )
    cache.clear()
    return live, candidate, now


def test_a_blend_is_tallied_the_same_either_way(db, marketer, settings):
    settings.HANDOFF_STAGE = "mql"
    _, candidate, now = blending_world(marketer)

    engine = version_tallies(candidate=candidate, now=now, set_based=False)
    set_based = version_tallies(candidate=candidate, now=now, set_based=True)

    assert set_based.scored == engine.scored == 41
    assert set_based.live_scores == engine.live_scores
    assert set_based.candidate_scores == engine.candidate_scores
    assert set_based.open_leads == engine.open_leads
    assert set_based.recent == engine.recent
    assert set_based.closed == engine.closed
    # Both read the live predictive model's scores, and leads without one
    predictive = {p for _, p in set_based.live_scores}
    assert None in predictive
    assert len(predictive - {None}) > 5
    assert {c.predictive for c in set_based.closed} - {None}


def test_a_blending_preview_gives_the_same_figures_either_way(db, marketer, settings):
    settings.HANDOFF_STAGE = "mql"
    _, candidate, _ = blending_world(marketer)

    figures, previews = [], []
    for set_based in (False, True):
        cache.clear()
        version_tallies(candidate=candidate, set_based=set_based)  # kept for the preview
        preview = version_preview(candidate=candidate)
        previews.append(preview)
        figures.append(preview.figures())

    engine, set_based = figures
    engine.pop("at"), set_based.pop("at")
    assert set_based == engine
    assert engine["closed"] > 0
    assert previews[0].histogram == previews[1].histogram
    assert previews[0].split == previews[1].split
    # The blend, not the rule score, decides the moves
    on_rules = replace(VersionThresholds.of(candidate), decide_on="rules")
    moves = version_preview(candidate=candidate, thresholds=on_rules).stage_changes
    assert engine["stage_changes"] > moves > 0

"""The scoring studio through its HTTP surface: who may use it, rules edited in place, a
draft version previewed against the live one on a small world checked by hand, thresholds
tried before they are saved, publish and roll back, and the live funnel untouched until
a draft is published."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from django.db import connection
from django.urls import reverse

from leads.deals import deal_save
from leads.handoff_models import HandOff
from leads.models import Deal, Lead, Stage
from scoring.changes import model_duplicate
from scoring.lead_scoring import lead_score
from scoring.models import ChangeLog, LeadScore, RescoreJob, Rule, ScoreEntry, ScoringModel
from scoring.rescore_jobs import model_rescore_in_process
from scoring.version_preview import version_preview
from tests.factories import LeadFactory, active_model, fit_rule

pytestmark = pytest.mark.django_db

DAY = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def text(response) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", response.content.decode())).split())


@pytest.fixture
def live():
    """The live default model: a CTO earns 5 points, a lead in Germany 10."""
    model = active_model(name="Standard", mql_threshold=40, sql_threshold=80, hot_from=60)
    cto = fit_rule(model, 5, "job_title", "contains", "CTO", name="CTO")
    fit_rule(model, 10, "country", "equals", "DE", name="Germany")
    return model, cto


def closed(lead: Lead, status: str, day: int) -> Lead:
    when = DAY + dt.timedelta(days=day)
    deal_save(deal=Deal(lead=lead, name=f"Deal {lead.pk}", status=status, closed_at=when))
    return lead


@pytest.fixture
def world(live):
    """Four closed leads and two open ones, scored by hand below for each version."""
    return {
        "won_old": closed(LeadFactory(job_title="CTO", country="DE"), "won", 1),
        "lost_old": closed(LeadFactory(country="FR"), "lost", 2),
        "won_new": closed(LeadFactory(job_title="CTO", country="FR"), "won", 3),
        "lost_new": closed(LeadFactory(country="DE"), "lost", 4),
        "open_de": LeadFactory(job_title="CTO", country="DE"),
        "open_fr": LeadFactory(job_title="CTO", country="FR"),
    }


@pytest.fixture
def candidate(live, marketer):
    """A draft version of the live model giving a CTO 60 points instead of 5."""
    model, _ = live
    draft = model_duplicate(model=model, by=marketer)
    Rule.objects.filter(model=draft, name="CTO").update(points=60)
    return draft


def studio_urls(model: ScoringModel, rule: Rule) -> list[tuple[str, str, dict]]:
    return [
        ("get", reverse("studio"), {}),
        ("get", reverse("studio-model", args=[model.pk]), {}),
        ("get", reverse("studio-reach", args=[model.pk]), {}),
        ("get", reverse("studio-preview", args=[model.pk]), {}),
        ("post", reverse("studio-rule", args=[model.pk, rule.pk]), {f"rule-{rule.pk}-points": 9}),
        ("post", reverse("studio-duplicate", args=[model.pk]), {}),
        ("post", reverse("studio-thresholds", args=[model.pk]), {"mql_threshold": 1}),
        ("post", reverse("studio-publish", args=[model.pk]), {}),
        ("post", reverse("studio-roll-back", args=[model.pk]), {}),
    ]


def funnel() -> tuple:
    """Everything of the live funnel a draft must leave alone."""
    return (
        sorted(ScoreEntry.objects.values_list("lead_id", "model_id", "rule_id", "points")),
        sorted(LeadScore.objects.values_list("lead_id", "model_id", "score", "band")),
        sorted(Lead.objects.values_list("pk", "score", "band", "stage")),
        HandOff.objects.count(),
        RescoreJob.objects.count(),
    )


# --- Who may use it ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ["rep", "manager"])
def test_reps_and_managers_get_403_everywhere_and_change_nothing(
    client, request, live, candidate, role
):
    client.force_login(request.getfixturevalue(role))
    rule = candidate.rules.get(name="CTO")
    before = (funnel(), sorted(Rule.objects.values_list("pk", "points", "active")))
    models = ScoringModel.objects.count()

    for method, url, data in studio_urls(candidate, rule):
        response = getattr(client, method)(url, data)
        assert response.status_code == 403, (url, response.status_code)

    assert (funnel(), sorted(Rule.objects.values_list("pk", "points", "active"))) == before
    assert ScoringModel.objects.count() == models
    assert "Studio" not in text(client.get(reverse("home")))


def test_the_studio_opens_for_the_roles_the_scoring_permissions_are_granted_to(
    rep, manager, marketer, admin_user
):
    from scoring.permissions import may_change_models

    for user in (rep, manager, marketer, admin_user):
        allowed = user.has_perm("scoring.change_scoringmodel")
        assert may_change_models(user) == allowed == (user in (marketer, admin_user))


def test_a_marketer_sees_the_studio_in_the_navigation_and_the_live_models_with_drafts(
    client, marketer, live, candidate
):
    client.force_login(marketer)

    home = client.get(reverse("home"))
    index = client.get(reverse("studio"))

    assert f'href="{reverse("studio")}"' in home.content.decode()
    assert index.status_code == 200
    page = text(index)
    assert "Standard Live Default 2 rules" in page
    assert "Draft versions Standard (draft)" in page


# --- 1. A model's page: rules by kind, edited in place -------------------------------------


def test_the_model_page_groups_rules_by_kind_as_sentences_with_thresholds_and_decay(
    client, marketer, live
):
    model, _ = live
    fit_rule(model, -20, "email_domain", "equals", "gmail.com", name="Free mail")
    model.decay_half_life_days = 30
    model.save()
    client.force_login(marketer)

    page = text(client.get(reverse("studio-model", args=[model.pk])))

    fit = page.index("Fit: who they are")
    negative = page.index("Negative: points taken off")
    assert fit < page.index("+10 when country is DE") < negative
    assert negative < page.index("-20 when email domain is gmail.com")
    assert "No engagement rules." in page
    assert "MQL threshold 40 SQL threshold 80 Hot from 60 Warm from 30" in page
    assert "Engagement half-life 30 days" in page


def test_each_rule_shows_the_leads_it_matches_and_its_points_share(client, marketer, live, world):
    # Given the live model's leads scored (CTOs: 4, Germans: 3)
    from scoring.lead_scoring import leads_score

    model, cto = live
    leads_score(lead_ids=[lead.pk for lead in world.values()], react=False)
    client.force_login(marketer)

    response = client.get(reverse("studio-reach", args=[model.pk]))

    germany = model.rules.get(name="Germany")
    body = response.content.decode()
    # 4 CTOs at 5 points: 20, and 3 Germans at 10: 30, of 50 points
    assert f'id="reach-{cto.pk}" hx-swap-oob="true">4 leads · 40% of points' in body
    assert f'id="reach-{germany.pk}" hx-swap-oob="true">3 leads · 60% of points' in body


def test_editing_a_live_rule_saves_it_through_the_service_and_rescores(
    client, marketer, live, world, django_capture_on_commit_callbacks
):
    model, cto = live
    lead_score(lead_id=world["open_fr"].pk)
    assert Lead.objects.get(pk=world["open_fr"].pk).score == 5
    client.force_login(marketer)
    url = reverse("studio-rule", args=[model.pk, cto.pk])

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {f"rule-{cto.pk}-points": "25", f"rule-{cto.pk}-active": "on"})

    assert response.status_code == 200
    assert "+25 when job title contains CTO" in text(response)
    assert "rescoring the leads this rule touches" in text(response)
    cto.refresh_from_db()
    assert cto.points == 25
    assert ChangeLog.objects.filter(object_type="rule", object_id=cto.pk, by=marketer).exists()
    job = RescoreJob.objects.get(model=model)
    assert (job.rule_id, job.status, job.points_before) == (cto.pk, "done", 5)
    assert Lead.objects.get(pk=world["open_fr"].pk).score == 25
    if connection.vendor == "postgresql":
        # Where the set-based rescore runs, the CTO's award counts 25 points through a
        # revaluation, not a reversal and a new award
        entries = ScoreEntry.objects.filter(lead=world["open_fr"], rule=cto)
        (entry,) = entries.exclude(revalued_to=None)
        assert (entry.points, entry.revalued_to) == (20, 25)
        assert not entries.filter(reversal_of__isnull=False).exists()


def test_a_bad_rule_edit_shows_the_error_in_place_and_keeps_the_rule(client, marketer, live):
    model, cto = live
    client.force_login(marketer)
    url = reverse("studio-rule", args=[model.pk, cto.pk])

    zero = client.post(url, {f"rule-{cto.pk}-points": "0"})
    word = client.post(url, {f"rule-{cto.pk}-points": "many"})

    assert zero.status_code == word.status_code == 400
    assert "A rule needs points" in text(zero)
    assert "Enter a whole number." in text(word)
    cto.refresh_from_db()
    assert cto.points == 5
    assert not RescoreJob.objects.exists()


def test_a_rule_of_another_model_is_not_found(client, marketer, live, candidate):
    _, cto = live
    client.force_login(marketer)

    response = client.post(reverse("studio-rule", args=[candidate.pk, cto.pk]), {})

    assert response.status_code == 404


# --- 2. The preview against the live version, on a world checked by hand -------------------


def test_the_preview_compares_both_versions_on_the_same_leads(settings, candidate, world):
    settings.HANDOFF_STAGE = "mql"
    # Live: a CTO +5, Germany +10. Candidate: a CTO +60, Germany +10.
    #   won_old CTO/DE 15 → 70 (day 1)   lost_old FR 0 → 0 (day 2)
    #   won_new CTO/FR 5 → 60 (day 3)    lost_new DE 10 → 10 (day 4)
    #   open_de CTO/DE 15 → 70           open_fr CTO/FR 5 → 60
    preview = version_preview(candidate=candidate)

    live, mine = preview.separation
    assert preview.scored == 6
    assert (preview.closed, preview.won) == (4, 2)
    # Won above lost: live 15 > 10, 0 and 5 > 0 but 5 < 10: 3 of 4 pairs; candidate 4 of 4
    assert (live.auc, mine.auc) == (0.75, 1.0)
    # The time split: older (won_old, lost_old), newer (won_new, lost_new)
    assert preview.split.older_auc == (1.0, 1.0)
    assert preview.split.newer_auc == (0.0, 1.0)
    assert (preview.split.older, preview.split.newer) == (2, 2)
    # Bands (hot from 60, warm from 30): live puts every lead in cold, the candidate
    # both won leads in hot
    assert [(b.label, b.won, b.closed) for b in live.bands] == [
        ("hot", 0, 0),
        ("warm", 0, 0),
        ("cold", 2, 4),
    ]
    assert [(b.label, b.won, b.closed) for b in mine.bands] == [
        ("hot", 2, 2),
        ("warm", 0, 0),
        ("cold", 0, 2),
    ]
    assert mine.hot_lift == 2.0
    assert [(d.label, d.won, d.low) for d in mine.deciles] == [
        ("10", 1, 70),
        ("9", 1, 60),
        ("8", 0, 10),
        ("7", 0, 0),
    ]
    assert (live.top_decile_lift, mine.top_decile_lift) == (2.0, 2.0)
    # Both open leads go from cold to hot and past MQL (40): two hand-offs at MQL
    assert (preview.band_changes, preview.to_mql, preview.to_sql) == (2, 2, 0)
    assert preview.handoffs_now == 2
    # Every lead is new: live puts none past 40, the candidate four, over four weeks
    assert preview.handoffs_per_week == (0.0, 1.0)
    # Scores 0 to 70 in bins of 10
    assert [(b.low, b.counts) for b in preview.histogram] == [
        (0, (3, 1)),
        (10, (3, 1)),
        (20, (0, 0)),
        (30, (0, 0)),
        (40, (0, 0)),
        (50, (0, 0)),
        (60, (0, 2)),
        (70, (0, 2)),
    ]
    # What each candidate rule gives: four CTOs, three Germans
    cto, germany = candidate.rules.get(name="CTO"), candidate.rules.get(name="Germany")
    assert (preview.rules[cto.pk].leads, preview.rules[cto.pk].points) == (4, 240)
    assert (preview.rules[germany.pk].leads, preview.rules[germany.pk].points) == (3, 30)


def test_the_draft_page_shows_the_histogram_and_the_auc(client, marketer, candidate, world):
    client.force_login(marketer)

    page = client.get(reverse("studio-model", args=[candidate.pk]))
    preview = client.get(reverse("studio-preview", args=[candidate.pk]))

    assert reverse("studio-preview", args=[candidate.pk]) in page.content.decode()
    assert preview.status_code == 200
    body = preview.content.decode()
    assert 'data-chart="histogram"' in body
    assert preview["HX-Trigger-After-Settle"] == "studio-previewed"  # the reach comes next
    assert body.count('class="tone-candidate"') == 8
    words = text(preview)
    assert "ROC AUC on closed leads 0.750 → 1.000" in words
    assert "Open leads changing band 2" in words
    assert "Hot 0 / 0 — 2 / 2 100%" in words
    assert "Older 2 1.000 1.000 Newer 2 0.000 1.000" in words


@pytest.fixture
def blending(marketer):
    """A live model on the rule score (a director 25, a CTO 5, Germany 10; MQL 40, SQL 80,
    hot from 60, warm from 30) and a draft of it giving a director 45 and deciding on a
    50/50 blend with the live predictive model's scores; five open leads, the one the
    live model puts at 40 in MQL, the others new."""
    model = active_model(
        name="Standard", max_points=100, mql_threshold=40, sql_threshold=80, hot_from=60
    )
    fit_rule(model, 25, "seniority", "equals", "director", name="Director")
    fit_rule(model, 5, "job_title", "contains", "CTO", name="CTO")
    fit_rule(model, 10, "country", "equals", "DE", name="Germany")
    leads = {
        "cto": LeadFactory(job_title="CTO"),
        "director": LeadFactory(seniority="director"),
        "cto_director": LeadFactory(job_title="CTO", seniority="director"),
        "german": LeadFactory(),
        "unpredicted": LeadFactory(job_title="CTO"),
    }
    model_rescore_in_process(model=model, reason="test")
    for name, predictive in (("cto", 90), ("director", 5), ("cto_director", 100), ("german", 20)):
        LeadScore.objects.filter(model=model, lead=leads[name]).update(predictive_score=predictive)
    Lead.objects.update(stage=Stage.NEW)
    Lead.objects.filter(pk=leads["cto_director"].pk).update(stage=Stage.MQL)
    draft = model_duplicate(model=model, by=marketer)
    Rule.objects.filter(model=draft, name="Director").update(points=45)
    draft.decide_on, draft.predictive_share = "blend", 50
    draft.save()
    return draft


def test_a_blending_draft_previews_the_moves_of_the_blend(client, marketer, blending):
    client.force_login(marketer)
    # Rule scores live → draft, predictive score, the draft's blend:
    #   cto           15 → 15,  90: 52.5 → 53   new → MQL, cold → warm
    #   director      35 → 55,   5: 30          stays new (55 alone is past MQL 40), warm
    #   cto_director  40 → 60, 100: 80          MQL → SQL, warm → hot
    #   german        10 → 10,  20: 15          stays new, cold
    #   unpredicted   15 → 15,   —: 15          stays new, cold (no predictive score)
    response = client.get(reverse("studio-preview", args=[blending.pk]))

    assert response.status_code == 200
    words = text(response)
    assert "Open leads changing stage 2" in words
    assert "Stage changes: 1 to MQL, 1 to SQL." in words
    assert "Open leads changing band 2" in words
    assert "Hand-offs at publish 1" in words  # SQL hands off
    preview = response.context["preview"]
    # Of the leads of the last four weeks, none reaches SQL live and one on the blend
    assert preview.handoffs_per_week == (0.0, 0.25)
    assert "Score (live) and blended score (candidate) distribution" in words
    assert "the candidate a blend of 50% rule score and 50% predictive score" in words
    # The histogram counts the blend: 15, 15, 30, 53 and 80 (bins of 10 from 10)
    assert [(b.low, b.counts[1]) for b in preview.histogram] == [
        (10, 2),
        (20, 0),
        (30, 1),
        (40, 0),
        (50, 1),
        (60, 0),
        (70, 0),
        (80, 1),
    ]


def test_thresholds_tried_on_a_blending_draft_read_the_blend(client, marketer, blending):
    client.force_login(marketer)
    # MQL at 55: the cto's blend of 53 no longer moves; the cto_director's 80 still does
    tried = {
        "mql_threshold": 55,
        "sql_threshold": 80,
        "hot_from": 60,
        "warm_from": 30,
        "base_score": 0,
    }

    response = client.post(
        reverse("studio-thresholds", args=[blending.pk]), {**tried, "preview": "1"}
    )

    assert response.status_code == 200
    words = text(response)
    assert "publishing would move 1 open lead (0 to MQL, 1 to SQL)" in words
    assert "hand off 1 now and about 0.3 a week, and change the band of 2" in words
    assert "with the saved ones 2, 1 and 0.3." in words


def test_a_live_model_has_no_preview_of_its_own(client, marketer, live):
    model, _ = live
    client.force_login(marketer)

    response = client.get(reverse("studio-preview", args=[model.pk]))

    assert "is not a draft version of a live model" in text(response)


# --- 3. Thresholds tried on the draft before they are saved --------------------------------


def test_a_threshold_edit_previews_how_many_leads_would_move_and_saves_only_when_asked(
    client, marketer, candidate, world
):
    client.force_login(marketer)
    url = reverse("studio-thresholds", args=[candidate.pk])
    # With MQL at 55 and SQL at 70 the open leads (70 and 60) go one to SQL, one to MQL;
    # SQL hands off (the default): one now, and two new leads of four weeks reach 70
    tried = {
        "mql_threshold": 55,
        "sql_threshold": 70,
        "hot_from": 60,
        "warm_from": 30,
        "base_score": 0,
    }

    response = client.post(url, {**tried, "preview": "1"})

    assert response.status_code == 200
    words = text(response)
    assert "publishing would move 2 open leads (1 to MQL, 1 to SQL)" in words
    assert "hand off 1 now and about 0.5 a week" in words
    assert "with the saved ones 2, 0 and 0.0." in words
    assert "Nothing is saved yet." in words
    candidate.refresh_from_db()
    assert (candidate.mql_threshold, candidate.sql_threshold) == (40, 80)

    saved = client.post(url, {**tried, "save": "1", "confirm": "1"})

    assert saved.status_code == 302
    candidate.refresh_from_db()
    assert (candidate.mql_threshold, candidate.sql_threshold) == (55, 70)
    assert ChangeLog.objects.filter(object_id=candidate.pk, action="change").exists()


def test_a_base_score_edit_says_how_many_leads_move_and_saves_only_once_confirmed(
    client, marketer, candidate, world
):
    client.force_login(marketer)
    url = reverse("studio-thresholds", args=[candidate.pk])
    # A base score of 10 lifts every score by 10: the open leads (70 and 60) reach 80 and
    # 70, one past SQL (80), one past MQL (40); SQL hands off. New leads at 80 or more:
    # two of six over four weeks
    edit = {
        "mql_threshold": 40,
        "sql_threshold": 80,
        "hot_from": 60,
        "warm_from": 30,
        "base_score": 10,
        "save": "1",
    }

    asked = client.post(url, edit)

    assert asked.status_code == 200
    words = text(asked)
    assert "a base score +10 points from the saved one" in words
    assert "publishing would move 2 open leads (1 to MQL, 1 to SQL)" in words
    assert "hand off 1 now and about 0.5 a week" in words
    assert "with the saved ones 2, 0 and 0.0." in words
    assert "Confirm and save" in words
    candidate.refresh_from_db()
    assert candidate.base_score == 0

    confirmed = client.post(url, {**edit, "confirm": "1"})

    assert confirmed.status_code == 302
    candidate.refresh_from_db()
    assert candidate.base_score == 10
    assert ChangeLog.objects.filter(object_id=candidate.pk, action="change").exists()


def test_saving_the_thresholds_unchanged_asks_nothing(client, marketer, candidate):
    client.force_login(marketer)
    same = {"mql_threshold": 40, "sql_threshold": 80, "hot_from": 60, "warm_from": 30}

    response = client.post(
        reverse("studio-thresholds", args=[candidate.pk]), {**same, "base_score": 0, "save": "1"}
    )

    assert response.status_code == 302


def test_two_threshold_sets_side_by_side_on_newer_outcomes_with_the_hint(
    client, marketer, candidate, world
):
    client.force_login(marketer)
    url = reverse("studio-thresholds-compare", args=[candidate.pk])
    # The candidate's scores of the newer closed leads: won_new 60, lost_new 10 (days 3, 4)
    tried = {
        "mql_threshold": 55,
        "sql_threshold": 60,
        "hot_from": 65,
        "warm_from": 5,
        "base_score": 0,
    }

    saved = client.get(url)
    response = client.get(url, tried)

    assert (saved.status_code, response.status_code) == (200, 200)
    words = text(response)
    assert "checked on the 2 leads that closed since 2026-01-04" in words
    assert "Live thresholds of Standard These thresholds" in words
    assert "MQL, SQL 40, 80 55, 60" in words
    # Live: won_new hot and MQL, lost_new cold and below MQL. Tried: both warm, won_new SQL
    assert "Hot band: won / closed 1 / 1 (100%) 0 / 0" in words
    assert "Warm band: won / closed 0 / 0 1 / 2 (50%)" in words
    assert "Cold band: won / closed 0 / 1 (0%) 0 / 0" in words
    assert "SQL: won / closed 0 / 0 1 / 1 (100%)" in words
    assert "MQL: won / closed 1 / 1 (100%) 0 / 0" in words
    assert "Below MQL: won / closed 0 / 1 (0%) 0 / 1 (0%)" in words
    # New leads past the hand-off (SQL): none at 80, four of six at 60, over four weeks
    assert "Hand-offs a week from new leads 0.0 1.0" in words
    # Won leads of all closed score 70 and 60
    assert (
        "the lowest score of a won lead is 60 ; 90 % of won leads score 60 or more; "
        "75 % of won leads score 60 or more; 50 % of won leads score 70 or more." in words
    )
    # The draft's own thresholds by default
    assert "MQL, SQL 40, 80 40, 80" in text(saved)


def test_thresholds_compared_that_the_model_refuses_say_why(client, marketer, candidate):
    client.force_login(marketer)

    response = client.get(
        reverse("studio-thresholds-compare", args=[candidate.pk]),
        {
            "mql_threshold": 90,
            "sql_threshold": 50,
            "hot_from": 60,
            "warm_from": 30,
            "base_score": 0,
        },
    )

    assert response.status_code == 400
    assert "The SQL threshold cannot be below the MQL threshold." in text(response)


def test_the_draft_page_loads_the_side_by_side_after_the_preview(client, marketer, candidate):
    client.force_login(marketer)

    page = client.get(reverse("studio-model", args=[candidate.pk])).content.decode()

    assert f'hx-get="{reverse("studio-thresholds-compare", args=[candidate.pk])}"' in page
    assert 'hx-trigger="studio-previewed from:body"' in page


def test_thresholds_the_model_refuses_show_their_error(client, marketer, candidate):
    client.force_login(marketer)

    response = client.post(
        reverse("studio-thresholds", args=[candidate.pk]),
        {
            "mql_threshold": 90,
            "sql_threshold": 50,
            "hot_from": 60,
            "warm_from": 30,
            "base_score": 0,
            "save": "1",
        },
    )

    assert response.status_code == 400
    assert "The SQL threshold cannot be below the MQL threshold." in text(response)
    candidate.refresh_from_db()
    assert candidate.sql_threshold == 80


def test_a_live_models_thresholds_are_not_changed_in_the_studio(client, marketer, live):
    model, _ = live
    client.force_login(marketer)

    response = client.post(
        reverse("studio-thresholds", args=[model.pk]),
        {"mql_threshold": 10, "sql_threshold": 20, "hot_from": 60, "warm_from": 30},
    )

    assert response.status_code == 403
    model.refresh_from_db()
    assert model.mql_threshold == 40


# --- 4 and 5. The live funnel untouched until publish; publish, roll back, history ----------


def test_a_draft_is_made_edited_previewed_and_published_and_only_publishing_moves_leads(
    client, marketer, live, world, settings, django_capture_on_commit_callbacks
):
    settings.HANDOFF_STAGE = "mql"
    model, _ = live
    from scoring.lead_scoring import leads_score

    leads_score(lead_ids=[lead.pk for lead in world.values()], react=False)
    client.force_login(marketer)
    before = funnel()

    # When the marketer duplicates the live model, edits a rule and the thresholds of
    # the draft, and previews it
    with django_capture_on_commit_callbacks(execute=True):
        made = client.post(reverse("studio-duplicate", args=[model.pk]))
        draft = ScoringModel.objects.get(version_of=model, status="draft")
        cto = draft.rules.get(name="CTO")
        edited = client.post(
            reverse("studio-rule", args=[draft.pk, cto.pk]),
            {f"rule-{cto.pk}-points": "60", f"rule-{cto.pk}-active": "on"},
        )
        client.post(
            reverse("studio-thresholds", args=[draft.pk]),
            {"mql_threshold": 40, "sql_threshold": 90, "hot_from": 60, "warm_from": 30},
        )
        client.post(
            reverse("studio-thresholds", args=[draft.pk]),
            {
                "mql_threshold": 20,
                "sql_threshold": 90,
                "hot_from": 60,
                "warm_from": 30,
                "preview": 1,
            },
        )
        previewed = client.get(reverse("studio-preview", args=[draft.pk]))
        client.get(reverse("studio-reach", args=[draft.pk]))

    # Then the draft changed and no lead's score or stage did, and no hand-off opened
    assert made.status_code == 302
    assert made["Location"] == reverse("studio-model", args=[draft.pk])
    assert "Saved." in text(edited)
    assert "rescoring" not in text(edited)
    assert edited["HX-Trigger"] == "studio-changed"  # the page's preview loads again
    assert "0.750 → 1.000" in text(previewed)
    assert funnel() == before

    # When the marketer publishes it
    with django_capture_on_commit_callbacks(execute=True):
        published = client.post(reverse("studio-publish", args=[draft.pk]))

    # Then it is live in the old one's place, the open leads move to MQL and are handed
    # off, and the publication keeps the preview figures in the version history
    assert published.status_code == 302
    draft.refresh_from_db()
    model.refresh_from_db()
    assert (draft.status, draft.is_default, model.status) == ("active", True, "archived")
    assert Lead.objects.get(pk=world["open_de"].pk).stage == "mql"
    assert HandOff.objects.filter(lead__in=[world["open_de"], world["open_fr"]]).count() == 2
    entry = ChangeLog.objects.get(action="publish", object_id=draft.pk)
    assert entry.by == marketer
    assert entry.figures["auc"] == [0.75, 1.0]
    assert entry.figures["handoffs_now"] == 2
    history = text(client.get(reverse("studio-model", args=[draft.pk])))
    assert "published Standard (draft) ROC AUC 0.750 → 1.000 · 2 stage changes" in history

    # When the marketer rolls it back
    with django_capture_on_commit_callbacks(execute=True):
        rolled = client.post(reverse("studio-roll-back", args=[draft.pk]))

    # Then the old version is live again with its own scores
    assert rolled["Location"] == reverse("studio-model", args=[model.pk])
    model.refresh_from_db()
    assert (model.status, model.is_default) == ("active", True)
    assert Lead.objects.get(pk=world["open_de"].pk).score == 15
    assert "put back Standard" in text(client.get(reverse("studio-model", args=[model.pk])))


def test_publishing_what_is_not_a_draft_version_is_a_conflict_with_a_clear_message(
    client, marketer, live
):
    model, _ = live
    client.force_login(marketer)
    before = funnel()

    published = client.post(reverse("studio-publish", args=[model.pk]))
    rolled = client.post(reverse("studio-roll-back", args=[model.pk]))

    assert published.status_code == rolled.status_code == 409
    assert "“Standard” is not a draft version of a live model." in text(published)
    assert "“Standard” replaced no version that could be put back." in text(rolled)
    assert funnel() == before
    model.refresh_from_db()
    assert model.status == "active"


def test_publishing_a_draft_whose_live_model_was_replaced_meanwhile_is_a_conflict(
    client, marketer, live, candidate, django_capture_on_commit_callbacks
):
    model, _ = live
    other = model_duplicate(model=model, by=marketer)
    client.force_login(marketer)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("studio-publish", args=[other.pk]))

    response = client.post(reverse("studio-publish", args=[candidate.pk]))

    assert response.status_code == 409
    assert "is not a draft version of a live model" in text(response)
    candidate.refresh_from_db()
    assert candidate.status == "draft"


def test_a_history_entry_is_kept_for_archived_versions_and_they_cannot_be_edited(
    client, marketer, live, candidate, django_capture_on_commit_callbacks
):
    model, cto = live
    client.force_login(marketer)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("studio-publish", args=[candidate.pk]))

    response = client.post(
        reverse("studio-rule", args=[model.pk, cto.pk]), {f"rule-{cto.pk}-points": "7"}
    )

    assert response.status_code == 403
    cto.refresh_from_db()
    assert cto.points == 5

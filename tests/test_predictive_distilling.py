"""Rule weights from the live predictive model: points fitted so that the rule score follows
the model's log-odds move the way the model weighs what each rule tests, say how well the
rules can follow it and what no rule tests, and become a draft to preview; nothing live
changes until it is published."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.urls import reverse

from scoring import changes
from scoring.models import (
    ChangeLog,
    LeadScore,
    ModelStatus,
    PredictiveStatus,
    Rule,
    ScoreEntry,
    ScoringModel,
)
from scoring.predictive.distill_runs import model_distillation_request
from scoring.predictive.distilling import (
    DistillationError,
    distillation_basis,
    kept_distillation,
    model_distillation,
    model_draft_from_distillation,
    rule_features,
)
from scoring.predictive.services import predictive_train
from scoring.rescore_jobs import model_rescore_in_process
from scoring.tasks import predictive_distill_weights
from tests import predictive_world
from tests.api_client import error_of, token_client
from tests.factories import active_model, fit_rule, page_rule

N_LEADS = 800


@pytest.fixture
def model(db, settings) -> ScoringModel:
    settings.PREDICTIVE_MIN_CLOSED = 200
    model = active_model(mql_threshold=50, sql_threshold=90)
    fit_rule(model, 20, "seniority", "equals", "director", name="Director")
    # The world's model rewards software companies strongly: 2 points are far too few.
    fit_rule(model, 2, "company.industry", "equals", "software", name="Software")
    # The source says nothing of the outcome: 15 points are far too many.
    fit_rule(model, 15, "source", "equals", "referral", name="Referral")
    page_rule(model, 5, "/pricing", max_per_lead=3)
    return model


def trained(model: ScoringModel, n: int = N_LEADS):
    predictive_world.build(n)
    model_rescore_in_process(model=model, reason="test")
    card = predictive_train(model=model, by=None)
    assert card.status == PredictiveStatus.LIVE, card.verdict
    return card


def rows_by_name(distillation) -> dict[str, Any]:
    return {row.name: row for row in distillation.rules}


def rules_state() -> list[dict[str, Any]]:
    return list(Rule.objects.order_by("pk").values("pk", "model_id", "points", "active"))


def page_text(response) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", response.content.decode())).split())


# --- The fit ------------------------------------------------------------------------------


def test_points_move_the_way_the_model_weighs_what_each_rule_tests(model):
    card = trained(model)

    distillation = model_distillation(model=model)

    assert distillation.ready, distillation.message
    assert distillation.predictive_id == card.pk
    rows = rows_by_name(distillation)
    # The model rewards software more than its 2 points do: they rise
    assert rows["Software"].proposed_points > 2 * rows["Software"].current_points
    assert rows["Software"].log_odds > 0.5
    assert "more than the 2 it gives now" in rows["Software"].reason
    # It sees next to nothing in the source: the 15 points fall to half at most
    assert abs(rows["Referral"].proposed_points) <= 15 / 2
    assert abs(rows["Referral"].log_odds) < 0.5
    # And the proposed points follow the model better than the points now
    assert distillation.rank_correlation > distillation.live_rank_correlation + 0.1
    assert distillation.r_squared > 0.2
    assert distillation.proposed_auc > distillation.live_auc
    assert distillation.model_auc is not None
    assert distillation.holdout == card.n_holdout
    # The holdout is left out of the fit; a fifth of the rest checks it
    assert distillation.leads + distillation.checked + distillation.holdout == N_LEADS


def test_the_model_s_strong_features_no_rule_reads_are_named_as_hints(model):
    trained(model)

    hints = model_distillation(model=model).hints

    named = {hint.feature for hint in hints}
    assert named, "the world's model leans on interest and demo requests, which no rule reads"
    assert named & {"interest", "n_demo_request", "n_demo_request_90d", "n_demo_request_30d"}
    # What a rule reads is no hint
    assert not named & {"industry", "seniority", "source", "n_url_pricing"}
    assert all("no switched-on rule reads" in hint.text for hint in hints)


def test_what_a_rule_reads_is_mapped_onto_the_model_s_features(model):
    industry = Rule(kind="fit", field="company.industry", conditions=[{"field": "custom.fleet"}])
    pricing = Rule(kind="engagement", activity_type="page_view", pattern="/Pricing", recency_days=7)

    assert rule_features(industry, decay=False) == {"industry", "fleet"}
    read = rule_features(pricing, decay=False)
    assert {"n_page_view", "n_page_view_30d", "days_since_activity", "url:/pricing"} <= read
    assert "days_since_activity" in rule_features(
        Rule(kind="engagement", activity_type="email_open"), decay=True
    )


def test_without_a_live_predictive_model_it_says_why_and_fits_nothing(model):
    predictive_world.build(120)

    distillation = model_distillation(model=model)

    assert not distillation.ready
    assert "No predictive model is live" in distillation.message
    assert distillation_basis(model=model).key is None
    with pytest.raises(DistillationError, match="No predictive model is live"):
        model_draft_from_distillation(model=model, by=None, distillation=distillation)
    assert ScoringModel.objects.count() == 1


def test_the_draft_gets_the_proposed_points_and_nothing_live_changes(model, marketer):
    trained(model)
    distillation = model_distillation(model=model)
    live = rules_state()
    scores = sorted(LeadScore.objects.values_list("lead_id", "model_id", "score"))
    entries = ScoreEntry.objects.count()

    draft = model_draft_from_distillation(model=model, by=marketer, distillation=distillation)

    assert (draft.status, draft.version_of_id) == (ModelStatus.DRAFT, model.pk)
    copies = {rule.name: rule for rule in draft.rules.all()}
    for row in distillation.rules:
        copy = copies[row.name]
        if row.switched_off:
            assert not copy.active
        else:
            assert (copy.active, copy.points) == (True, row.proposed_points)
    assert copies["Software"].points > 2
    assert "from the live predictive model" in draft.description
    logged = ChangeLog.objects.filter(object_type="rule", action="change", by=marketer)
    assert logged.count() == sum(row.changed for row in distillation.rules)
    # Nothing live moved: the rules, the scores, the ledger
    assert [r for r in rules_state() if r["model_id"] == model.pk] == live
    assert sorted(LeadScore.objects.values_list("lead_id", "model_id", "score")) == scores
    assert ScoreEntry.objects.count() == entries
    model.refresh_from_db()
    assert model.status == ModelStatus.ACTIVE


def test_published_the_draft_scores_the_leads_with_the_proposed_points(
    model, marketer, django_capture_on_commit_callbacks
):
    trained(model, n=500)
    distillation = model_distillation(model=model)
    draft = model_draft_from_distillation(model=model, by=marketer, distillation=distillation)
    software = next(row for row in distillation.rules if row.name == "Software")

    with django_capture_on_commit_callbacks(execute=True):
        changes.model_publish(model=draft, by=marketer)

    draft.refresh_from_db()
    model.refresh_from_db()
    assert (draft.status, model.status) == (ModelStatus.ACTIVE, ModelStatus.ARCHIVED)
    lead = LeadScore.objects.filter(model=draft, lead__company__industry="software").first()
    awarded = ScoreEntry.objects.filter(lead=lead.lead, model=draft, rule__name="Software")
    assert sum(entry.points for entry in awarded) == software.proposed_points


def test_the_task_keeps_the_fit_and_a_missing_model_is_a_no_op(model):
    trained(model, n=500)
    key = distillation_basis(model=model).key

    predictive_distill_weights.delay(model.pk + 1000, key)
    assert kept_distillation(key=key) is None
    predictive_distill_weights.delay(model.pk, key)

    kept = kept_distillation(key=key)
    assert kept is not None
    assert kept.ready
    assert model_distillation_request(model=model).distillation == kept


# --- The studio ---------------------------------------------------------------------------


def weights_url(model: ScoringModel, tail: str = "") -> str:
    return reverse("studio-predictive-weights", args=[model.pk]) + tail


def test_the_studio_computes_in_the_background_then_shows_the_weights_and_makes_a_draft(
    client, model, marketer, django_capture_on_commit_callbacks
):
    trained(model, n=500)
    client.force_login(marketer)

    page = client.get(reverse("studio-predictive", args=[model.pk]))
    with django_capture_on_commit_callbacks(execute=False) as queued:
        computing = client.get(weights_url(model), HTTP_HX_REQUEST="true")
        early = client.post(weights_url(model, "draft/"), follow=True)
    assert len(queued) == 1  # one fit, however often it is asked for meanwhile
    queued[0]()  # the task runs (eagerly) as a bulk worker would
    ready = client.get(weights_url(model), HTTP_HX_REQUEST="true")
    made = client.post(weights_url(model, "draft/"))

    body = page.content.decode()
    assert "Rule weights from this model" in body
    assert f'hx-get="{weights_url(model)}" hx-trigger="load"' in body
    assert computing.status_code == 202
    assert "Computing… the rule weights are fitted" in page_text(computing)
    assert "still being computed" in page_text(early)
    assert ready.status_code == 200
    text = page_text(ready)
    assert model.rules.get(name="Software").describe() in text
    assert "times the odds of converting" in text
    assert "ROC AUC on the model's holdout" in text
    assert "What the model weighs that no rule tests" in text
    assert "Make a draft with these weights" in text
    draft = ScoringModel.objects.get(version_of=model)
    assert made.status_code == 302
    assert made["Location"] == reverse("studio-model", args=[draft.pk])
    assert draft.rules.get(name="Software").points > 2


def test_the_studio_says_why_without_a_live_predictive_model(client, model, marketer):
    predictive_world.build(120)
    client.force_login(marketer)

    page = client.get(reverse("studio-predictive", args=[model.pk]))
    part = client.get(weights_url(model))
    posted = client.post(weights_url(model, "draft/"), follow=True)

    assert "Rule weights from this model" not in page.content.decode()
    assert part.status_code == 200
    assert "No predictive model is live for this model" in page_text(part)
    assert "Make a draft" not in page_text(part)
    assert "No predictive model is live for this model" in page_text(posted)
    assert ScoringModel.objects.count() == 1


@pytest.mark.parametrize("role", ["rep", "manager", "outsider"])
def test_the_studio_refuses_who_may_not_change_models(request, client, model, role):
    trained(model, n=500)
    client.force_login(request.getfixturevalue(role))
    before = (rules_state(), ScoringModel.objects.count(), ChangeLog.objects.count())

    read = client.get(weights_url(model))
    made = client.post(weights_url(model, "draft/"))

    assert (read.status_code, made.status_code) == (403, 403)
    assert (rules_state(), ScoringModel.objects.count(), ChangeLog.objects.count()) == before


# --- The API ------------------------------------------------------------------------------


def api_url(model: ScoringModel, tail: str = "") -> str:
    return f"/api/v1/scoring-models/{model.pk}/predictive-weights/{tail}"


def test_the_api_answers_202_while_the_fit_runs_then_the_weights_and_makes_a_draft(
    model, marketer, django_capture_on_commit_callbacks
):
    card = trained(model, n=500)
    client = token_client(marketer)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        first = client.get(api_url(model))
        again = client.get(api_url(model))
        early = client.post(api_url(model, "draft/"))
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["status"] == "computing"
    assert first.json()["since"] == again.json()["since"]
    assert early.status_code == 409
    assert "still being computed" in error_of(early)["message"]
    assert len(queued) == 1
    queued[0]()
    response = client.get(api_url(model))
    made = client.post(api_url(model, "draft/"))

    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert body["predictive_model"] == card.pk
    assert body["holdout"] == card.n_holdout
    for figure in ("r_squared", "rank_correlation", "model_auc", "live_auc", "proposed_auc"):
        assert isinstance(body[figure], float), figure
    rules = {row["name"]: row for row in body["rules"]}
    assert rules["Software"]["proposed_points"] > rules["Software"]["current_points"]
    assert rules["Software"]["reason"]
    assert all(set(hint) == {"feature", "feature_label", "text"} for hint in body["hints"])
    assert made.status_code == 201
    assert made.json()["version_of"] == model.pk
    assert made.json()["status"] == "draft"
    draft = ScoringModel.objects.get(pk=made.json()["id"])
    assert draft.rules.get(name="Software").points == rules["Software"]["proposed_points"]


def test_the_api_says_why_without_a_live_predictive_model(model, marketer):
    predictive_world.build(120)
    client = token_client(marketer)

    read = client.get(api_url(model))
    made = client.post(api_url(model, "draft/"))

    assert read.status_code == 200
    assert read.json()["ready"] is False
    assert "No predictive model is live" in read.json()["message"]
    assert made.status_code == 409
    assert "No predictive model is live" in error_of(made)["message"]
    assert ScoringModel.objects.count() == 1


@pytest.mark.parametrize("role", ["rep", "manager", "outsider"])
def test_the_api_refuses_who_may_not_change_models(request, model, role):
    trained(model, n=500)
    client = token_client(request.getfixturevalue(role))
    before = (rules_state(), ScoringModel.objects.count(), ChangeLog.objects.count())

    read = client.get(api_url(model))
    made = client.post(api_url(model, "draft/"))

    assert (read.status_code, made.status_code) == (403, 403)
    assert (rules_state(), ScoringModel.objects.count(), ChangeLog.objects.count()) == before

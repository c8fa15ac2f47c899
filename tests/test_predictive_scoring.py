"""Predictive scoring: features read as of each lead's decision and never from fields set
after contact, a model trained on the closed leads that goes live only when it beats the
rules on the newest outcomes and is calibrated, a score per lead with its factors."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django.utils.html import escape as html_escape

from leads.models import Activity, ActivityType, CustomFieldDefinition, Lead
from scoring.lead_scoring import lead_score
from scoring.lead_sets import segment_leads
from scoring.models import LeadScore, PredictiveModel, PredictiveStatus
from scoring.predictive import training
from scoring.predictive.encoding import encode, fit_encoding
from scoring.predictive.features import (
    FieldSpec,
    LeakageError,
    RawFrame,
    decision_times,
    excluded_keys,
    feature_fields,
    feature_frame,
)
from scoring.predictive.services import (
    NotEnoughData,
    lead_predictive_explanation,
    predictive_scores,
    predictive_train,
)
from scoring.rescore_jobs import model_rescore_in_process
from scoring.rule_matrix import closed_outcomes
from tests import predictive_world
from tests.factories import active_model, fit_rule, page_rule


@pytest.fixture
def model(db, settings):
    settings.PREDICTIVE_MIN_CLOSED = 200
    model = active_model(mql_threshold=50, sql_threshold=90)
    fit_rule(model, 20, "seniority", "equals", "director", name="Director")
    page_rule(model, 5, "/pricing", max_per_lead=2)
    return model


def rescore(model) -> None:
    model_rescore_in_process(model=model, reason="test")


def trained_world(model, n: int = 1200):
    leads = predictive_world.build(n)
    rescore(model)
    return leads, predictive_train(model=model, by=None)


# --- Leakage ------------------------------------------------------------------------------


def test_a_field_set_after_contact_never_reaches_the_features(model):
    predictive_world.custom_fields()
    model.predictive_excluded_fields = ["budget"]
    model.save(update_fields=["predictive_excluded_fields"])

    keys = {spec.key for spec in feature_fields(model)}

    assert {"interest", "fleet_size", "industry", "n_page_view_7d"} <= keys
    assert "rep_rating" not in keys
    assert "budget" not in keys
    leaky = FieldSpec("rep_rating", "numeric", "Rep rating", custom=True)
    with pytest.raises(LeakageError, match="rep_rating"):
        feature_frame(
            lead_ids=[],
            as_of=[],
            specs=[leaky],
            excluded=excluded_keys(model),
        )


def test_features_are_read_as_of_the_decision_and_never_after_it(model):
    leads = predictive_world.build(60)
    lead_ids, _ = closed_outcomes(segment_leads(model))
    decided = decision_times(lead_ids).decided_at
    specs = feature_fields(model)

    frame = feature_frame(lead_ids=lead_ids, as_of=decided, specs=specs, decided_at=decided)

    # Only won leads have meetings, all after their decision: none is counted.
    assert any(won for _, won in leads)
    assert frame.numeric["n_meeting"].sum() == 0
    views = Activity.objects.filter(type="page_view").count()
    assert frame.numeric["n_page_view"].sum() == views
    assert frame.numeric["n_url_pricing"].sum() == views  # every view is of /pricing
    later = [at + timedelta(days=6) for at in decided]
    with pytest.raises(LeakageError, match="after it"):
        feature_frame(lead_ids=lead_ids, as_of=later, specs=specs, decided_at=decided)


def test_placeholders_count_as_missing_and_rare_levels_are_pooled():
    spec = FieldSpec("interest", "categorical", "Interest", custom=True)
    values = ["High"] * 30 + ["Low"] * 30 + ["Rare"] * 2 + [None] * 10
    frame = RawFrame(np.arange(len(values)), [], [spec], categorical={"interest": values})
    from scoring.predictive.features import clean_level

    encoding = fit_encoding(frame)
    x = encode(encoding, frame)

    assert [clean_level(v) for v in ("Select", " - ", "", "n/a", "High")] == [
        None,
        None,
        None,
        None,
        "High",
    ]
    names = [column.name for column in encoding.columns]
    assert names == ["interest=High", "interest=Low", "interest=(other)", "interest=(missing)"]
    assert x.sum(axis=0).tolist() == [30, 30, 2, 10]


# --- The minimum --------------------------------------------------------------------------


def test_training_below_the_minimum_is_refused_with_how_many_more_are_needed(model, settings):
    settings.PREDICTIVE_MIN_CLOSED = 500
    predictive_world.build(120)

    with pytest.raises(NotEnoughData, match="380 more closed leads needed"):
        predictive_train(model=model, by=None)
    with pytest.raises(CommandError, match="380 more closed leads needed"):
        call_command("predictive_train", "--model", model.name)
    assert not PredictiveModel.objects.exists()


# --- Training and the gate ----------------------------------------------------------------


def test_on_a_messy_world_the_model_beats_the_rules_and_goes_live(model):
    _, card = trained_world(model)

    assert card.status == PredictiveStatus.LIVE, card.verdict
    assert card.rule_auc is not None
    assert card.roc_auc > card.rule_auc + 0.05
    assert card.roc_auc > 0.75
    assert card.calibration_ok
    assert card.n_train + card.n_holdout == 1200
    assert card.data_from < card.data_to
    groups = {row["group"] for row in card.features}
    assert "rep_rating" not in groups
    assert len(card.lift) == 10
    assert card.lift[0]["lift"] > 1 > card.lift[-1]["lift"]
    scored = LeadScore.objects.filter(model=model)
    assert scored.exists()
    assert not scored.filter(predictive_score__isnull=True).exists()


def test_the_gate_keeps_the_live_model_when_a_retrain_does_worse_than_the_rules(model):
    _, first = trained_world(model, n=900)
    before = dict(LeadScore.objects.values_list("lead_id", "predictive_score"))
    # A rule on the rep's rating, written after the outcome: the rules now "know" it.
    fit_rule(model, 60, "custom.rep_rating", "gte", "5", name="Rated well")
    rescore(model)

    second = predictive_train(model=model, by=None)

    assert second.status == PredictiveStatus.REJECTED
    assert "below the rules'" in second.verdict
    first.refresh_from_db()
    assert first.status == PredictiveStatus.LIVE
    assert dict(LeadScore.objects.values_list("lead_id", "predictive_score")) == before


def test_the_gate_wants_the_rules_the_live_model_and_calibration_beaten():
    def card(**values):
        defaults = {"roc_auc": 0.8, "rule_auc": 0.7, "previous_auc": None, "calibration_ok": True}
        return PredictiveModel(**{**defaults, **values})

    assert training_gate(card())[0]
    assert not training_gate(card(rule_auc=0.81))[0]
    assert not training_gate(card(previous_auc=0.82))[0]
    assert training_gate(card(previous_auc=0.79))[0]
    assert not training_gate(card(calibration_ok=False))[0]
    assert training_gate(card(rule_auc=None, roc_auc=0.6))[0]


def training_gate(card):
    from scoring.predictive.services import gate

    return gate(card)


def test_probabilities_are_calibrated_on_a_synthetic_dataset():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 4))
    p = 1 / (1 + np.exp(-(0.3 + 1.2 * x[:, 0] - 0.8 * x[:, 1])))
    y = rng.random(3000) < p

    fitted = training.fit(x, y)
    table = training.calibration_table(fitted.probabilities, y[fitted.holdout], 0.05)

    assert all(row["ok"] for row in table), table
    gaps = [abs(row["observed"] - row["predicted"]) for row in table]
    assert np.mean(gaps) < 0.05
    assert training.auc_of(fitted.probabilities, y[fitted.holdout]) > 0.75


# --- Serving ------------------------------------------------------------------------------


def test_the_factors_and_the_baseline_sum_to_the_lead_score(model):
    leads, _ = trained_world(model)

    for lead, _ in leads[:20]:
        explanation = lead_predictive_explanation(lead_id=lead.pk, model=model)
        stored = LeadScore.objects.get(lead=lead, model=model).predictive_score
        assert explanation.score == stored
        assert explanation.baseline + sum(f.points for f in explanation.factors) == stored
    texts = [
        f.text
        for lead, _ in leads[:20]
        for f in lead_predictive_explanation(lead_id=lead.pk, model=model).factors
    ]
    assert any("visits to /pricing pages" in text for text in texts)


def test_one_lead_scored_in_real_time_gets_the_batch_score(model):
    leads, card = trained_world(model)
    lead = leads[5][0]
    Activity.objects.create(
        lead=lead, type=ActivityType.DEMO_REQUEST, occurred_at=timezone.now() - timedelta(hours=1)
    )

    lead_score(lead_id=lead.pk)

    stored = LeadScore.objects.get(lead=lead, model=model).predictive_score
    batch = predictive_scores(predictive=card, lead_ids=[lead.pk, leads[6][0].pk, leads[7][0].pk])
    assert stored == batch[lead.pk]
    assert predictive_scores(predictive=card, lead_ids=[lead.pk]) == {lead.pk: stored}


def test_the_command_trains_every_active_model(model):
    predictive_world.build(400)
    rescore(model)

    call_command("predictive_train")

    assert PredictiveModel.objects.filter(model=model).count() == 1


def test_a_custom_field_can_be_marked_set_after_contact_in_the_admin(admin_client, db):
    response = admin_client.post(
        "/admin/leads/customfielddefinition/add/",
        {
            "key": "quality",
            "label": "Quality",
            "field_type": "text",
            "choices": "[]",
            "set_after_contact": "on",
        },
    )

    assert response.status_code == 302
    assert CustomFieldDefinition.objects.get(key="quality").set_after_contact
    assert Lead.objects.count() == 0


# --- The studio ---------------------------------------------------------------------------


def test_the_studio_says_how_many_more_closed_leads_are_needed(client, marketer, model, settings):
    settings.PREDICTIVE_MIN_CLOSED = 500
    predictive_world.build(120)
    client.force_login(marketer)

    page = client.get(f"/studio/models/{model.pk}/predictive/")
    refused = client.post(f"/studio/models/{model.pk}/predictive/train/", follow=True)

    assert page.status_code == 200
    assert "380 more closed leads needed" in page.content.decode()
    assert "Train on the closed leads now" not in page.content.decode()
    assert "380 more closed leads needed" in refused.content.decode()
    assert not PredictiveModel.objects.exists()


def test_a_marketer_trains_from_the_studio_and_reads_the_model_card(
    client, marketer, model, django_capture_on_commit_callbacks
):
    predictive_world.build(500)
    rescore(model)
    client.force_login(marketer)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/studio/models/{model.pk}/predictive/train/")
    page = client.get(f"/studio/models/{model.pk}/predictive/").content.decode()

    assert response.status_code == 302
    card = PredictiveModel.objects.get(model=model)
    assert card.created_by == marketer
    assert "Calibration by decile" in page
    assert "Lift by decile" in page
    assert f"{card.roc_auc:.3f}" in page
    if card.status == PredictiveStatus.LIVE:
        assert "Where the rules and the model disagree" in page


@pytest.mark.parametrize("role", ["rep", "manager", "outsider"])
def test_only_those_who_change_models_train_or_read_predictive_models(request, client, model, role):
    predictive_world.build(300)
    client.force_login(request.getfixturevalue(role))

    page = client.get(f"/studio/models/{model.pk}/predictive/")
    train = client.post(f"/studio/models/{model.pk}/predictive/train/")

    assert (page.status_code, train.status_code) == (403, 403)
    assert not PredictiveModel.objects.exists()


# --- The lead page and the API ------------------------------------------------------------


def test_the_lead_page_and_the_api_show_the_predictive_score_and_its_factors(
    client, admin_user, model
):
    leads, _ = trained_world(model, n=500)
    lead = leads[0][0]
    stored = LeadScore.objects.get(lead=lead, model=model).predictive_score
    LeadScore.objects.filter(model=model).update(is_primary=True)
    explanation = lead_predictive_explanation(lead_id=lead.pk, model=model)
    client.force_login(admin_user)

    page = client.get(f"/leads/{lead.pk}/").content.decode()
    one = client.get(f"/api/v1/leads/{lead.pk}/").json()
    listed = client.get("/api/v1/leads/?page_size=500").json()

    assert f"Predictive score {stored}" in page
    shown = [*explanation.up, *explanation.down]
    assert shown
    for factor in shown:
        assert html_escape(factor.text) in page
    assert explanation.baseline + sum(f.points for f in shown) + explanation.others == stored
    assert one["predictive_score"] == stored
    by_id = {row["id"]: row["predictive_score"] for row in listed["results"]}
    assert by_id[lead.pk] == stored


def test_without_a_live_predictive_model_the_api_says_null(client, admin_user, model):
    predictive_world.build(30)
    rescore(model)
    client.force_login(admin_user)
    lead = Lead.objects.order_by("pk").first()

    assert client.get(f"/api/v1/leads/{lead.pk}/").json()["predictive_score"] is None
    assert "Predictive score" not in client.get(f"/leads/{lead.pk}/").content.decode()


# --- Weekly retraining --------------------------------------------------------------------


def test_beat_retrains_weekly_on_the_bulk_queue_the_models_with_enough_closed_leads(
    model, settings
):
    from crm.settings import CELERY_BEAT_SCHEDULE, CELERY_TASK_ROUTES
    from scoring.tasks import predictive_retrain, predictive_train_model

    predictive_world.build(300)
    rescore(model)
    thin = active_model(name="Thin", is_default=False)

    trained = predictive_retrain.delay().get()
    predictive_train_model.delay(thin.pk).get()  # too few: nothing, no error
    predictive_train_model.delay(10_000_000).get()  # gone: nothing

    entry = CELERY_BEAT_SCHEDULE["predictive-retrain"]
    assert entry["task"] == "scoring.tasks.predictive_retrain"
    assert entry["options"] == {"queue": "bulk"}
    assert CELERY_TASK_ROUTES["scoring.tasks.predictive_*"] == {"queue": "bulk"}
    assert trained == 1
    assert list(PredictiveModel.objects.values_list("model", flat=True)) == [model.pk]


# --- The demo world -----------------------------------------------------------------------


def test_on_the_demo_world_the_model_ranks_the_newest_outcomes_better_than_the_rules(db, settings):
    from io import StringIO

    from scoring.models import ScoringModel

    settings.PREDICTIVE_MIN_CLOSED = 150
    call_command("seed_demo", stdout=StringIO(), leads=2000, now="2025-06-01T00:00:00+00:00")
    model = ScoringModel.objects.active().get(is_default=True)

    card = predictive_train(model=model, by=None)

    assert card.n_won + card.n_lost >= 150
    assert card.roc_auc > card.rule_auc, card.verdict
    assert card.status == PredictiveStatus.LIVE, card.verdict


# --- The admin ----------------------------------------------------------------------------


def test_a_marketer_lists_fields_the_predictive_model_must_not_read_in_the_admin(
    client, marketer, model, django_capture_on_commit_callbacks
):
    from tests.admin_forms import changeform_data

    client.force_login(marketer)
    page = f"/admin/scoring/scoringmodel/{model.pk}/change/"
    data = changeform_data(client.get(page))

    bad = client.post(page, {**data, "predictive_excluded_fields": '{"budget": 1}'})
    with django_capture_on_commit_callbacks(execute=True):
        good = client.post(page, {**data, "predictive_excluded_fields": '["budget", " need "]'})

    assert bad.status_code == 200
    assert "Give the field keys as a list" in bad.content.decode()
    assert good.status_code == 302
    model.refresh_from_db()
    assert model.predictive_excluded_fields == ["budget", "need"]
    assert {"budget", "need"}.isdisjoint(spec.key for spec in feature_fields(model))

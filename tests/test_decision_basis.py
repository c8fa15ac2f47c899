"""Bands, the MQL and SQL thresholds and so stage moves on the score a model decides on:
the rule score, the predictive score, or a blend of both, the same in every scoring path
(real-time, set-based rescore, nightly decay, the predictive model's refresh) and in
``scoring_verify``."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse

from leads.activities import activities_record
from leads.models import Activity, Lead, Stage
from scoring.decay import scores_decay
from scoring.lead_scoring import lead_score
from scoring.models import LeadScore, ScoringModel
from scoring.predictive.services import predictive_scores_refresh
from scoring.rescore_jobs import model_rescore_in_process
from scoring.score_formula import Thresholds, decision_score, decision_sql, decision_text
from scoring.verification import scores_verify
from tests.admin_forms import changeform_data
from tests.api_client import error_of, token_client
from tests.factories import LeadFactory, active_model, fit_rule, page_rule
from tests.test_predictive_scoring import trained_world

# --- The formula --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "predictive", "decide_on", "share", "expected"),
    [
        (40, 90, "rules", 50, 40),
        (40, 90, "predictive", 50, 90),
        (40, None, "predictive", 50, 40),  # not scored by the predictive model yet
        (40, 90, "blend", 50, 65),
        (40, 91, "blend", 50, 66),  # 65.5 rounds half up
        (41, 90, "blend", 25, 53),  # 53.25
        (-20, 10, "blend", 50, -5),
        (-21, 10, "blend", 50, -5),  # -5.5 rounds up, as SQL's floor(x + 0.5)
        (40, 90, "blend", 0, 40),
        (40, 90, "blend", 100, 90),
        (40, None, "blend", 50, 40),
    ],
)
def test_the_decision_score_is_the_rule_score_the_predictive_one_or_a_blend(
    score, predictive, decide_on, share, expected
):
    thresholds = Thresholds(decide_on=decide_on, predictive_share=share)

    assert decision_score(score, predictive, thresholds) == expected


@pytest.mark.django_db
def test_the_decision_in_sql_is_the_one_in_python():
    cases = [
        (score, predictive, decide_on, share)
        for score in (-21, -20, 0, 37, 41, 100)
        for predictive in (None, 0, 10, 63, 91, 100)
        for decide_on in ("rules", "predictive", "blend")
        for share in (0, 25, 33, 50, 100)
    ]
    expression = decision_sql("%(s)s", "%(p)s", "%(d)s", "%(h)s")
    with connection.cursor() as cursor:
        for score, predictive, decide_on, share in cases:
            cursor.execute(
                f"SELECT {expression}", {"s": score, "p": predictive, "d": decide_on, "h": share}
            )
            (value,) = cursor.fetchone()
            expected = decision_score(
                score, predictive, Thresholds(decide_on=decide_on, predictive_share=share)
            )
            assert int(value) == expected, (score, predictive, decide_on, share)


def test_the_explanation_says_which_score_decides():
    blend = Thresholds(decide_on="blend", predictive_share=40)

    assert decision_text(30, 80, Thresholds()) == ""
    assert decision_text(30, 80, blend) == (
        "Banded on a blend of 60% rule score (30) and 40% predictive score (80): 50."
    )
    assert decision_text(30, None, blend).startswith("Banded on the rule score until")
    assert decision_text(30, 80, Thresholds(decide_on="predictive")) == (
        "Banded on the predictive score, 80."
    )


# --- The setting ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_deciding_on_the_predictive_score_needs_the_rule_score_on_0_to_100():
    model = ScoringModel(name="m", decide_on="blend", grade_a_from=50)

    with pytest.raises(ValidationError) as caught:
        model.full_clean()
    assert "decide_on" in caught.value.message_dict

    model.scale_to_100()
    model.full_clean()


@pytest.mark.django_db
def test_the_api_refuses_a_blend_off_the_0_to_100_scale_and_stores_nothing(admin_user):
    model = active_model()
    client = token_client(admin_user)

    response = client.patch(
        f"/api/v1/scoring-models/{model.pk}/", {"decide_on": "blend"}, format="json"
    )

    assert response.status_code == 400
    assert "0 to 100" in str(error_of(response)["fields"]["decide_on"])
    model.refresh_from_db()
    assert model.decide_on == "rules"

    response = client.patch(
        f"/api/v1/scoring-models/{model.pk}/",
        {"decide_on": "blend", "predictive_share": 101, "max_points": 100},
        format="json",
    )
    assert response.status_code == 400
    assert "predictive_share" in error_of(response)["fields"]


@pytest.mark.django_db
def test_the_admin_sets_the_basis_and_rescores_the_bands(
    admin_client, django_capture_on_commit_callbacks
):
    model = active_model(max_points=100, hot_from=60, warm_from=30)
    page_rule(model, 10, "/pricing")
    lead = LeadFactory()
    visit(lead, django_capture_on_commit_callbacks)
    LeadScore.objects.filter(lead=lead).update(predictive_score=90)
    url = reverse("admin:scoring_scoringmodel_change", args=[model.pk])
    data = changeform_data(admin_client.get(url))

    data.update(decide_on="blend", predictive_share="50")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, data)

    assert response.status_code == 302
    model.refresh_from_db()
    assert (model.decide_on, model.predictive_share) == ("blend", 50)
    lead.refresh_from_db()
    # 10 points of rules and 90 predictive: 50, warm (the rule score alone is cold).
    assert (lead.score, lead.band) == (10, "warm")
    assert list(scores_verify()) == []


@pytest.mark.django_db
def test_the_admin_shows_the_field_error_for_a_blend_off_scale(admin_client):
    model = active_model()
    url = reverse("admin:scoring_scoringmodel_change", args=[model.pk])
    data = changeform_data(admin_client.get(url))

    data.update(decide_on="predictive")
    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert "0 to 100" in response.content.decode()
    model.refresh_from_db()
    assert model.decide_on == "rules"


# --- Every scoring path bands on it ------------------------------------------------------------


def visit(lead: Lead, capture: Any, url: str = "/pricing") -> None:
    with capture(execute=True):
        activities_record(lead=lead, activities=[Activity(type="page_view", url=url)])


def deciding(decide_on: str, **fields: Any) -> ScoringModel:
    defaults = {
        "max_points": 100,
        "hot_from": 60,
        "warm_from": 30,
        "mql_threshold": 52,
        "sql_threshold": 90,
        "decide_on": decide_on,
    }
    return active_model(**{**defaults, **fields})


@pytest.mark.django_db
def test_real_time_scoring_bands_and_moves_the_stage_on_the_blend(
    django_capture_on_commit_callbacks,
):
    model = deciding("blend")
    page_rule(model, 15, "/pricing")
    lead = LeadFactory()
    visit(lead, django_capture_on_commit_callbacks)
    lead.refresh_from_db()
    assert (lead.score, lead.band, lead.stage) == (15, "cold", Stage.NEW)

    # The predictive model put the lead at 80: its blend is (15 + 80) / 2 = 47.5 → 48.
    LeadScore.objects.filter(lead=lead).update(predictive_score=80)
    with django_capture_on_commit_callbacks(execute=True):
        lead_score(lead_id=lead.pk)
    lead.refresh_from_db()
    assert (lead.score, lead.band, lead.stage) == (15, "warm", Stage.NEW)

    # A second visit: rules 30, blend 55, past the MQL threshold of 52.
    visit(lead, django_capture_on_commit_callbacks)
    lead.refresh_from_db()
    assert (lead.score, lead.band, lead.stage) == (30, "warm", Stage.MQL)
    change = lead.stage_changes.order_by("-pk").first()
    assert change is not None
    assert "Blended score 55 crossed the MQL threshold 52" in change.reason
    assert list(scores_verify()) == []


@pytest.mark.django_db
def test_a_rules_model_ignores_the_predictive_score(django_capture_on_commit_callbacks):
    model = active_model(max_points=100, hot_from=60, warm_from=30, mql_threshold=52)
    page_rule(model, 15, "/pricing")
    lead = LeadFactory()
    visit(lead, django_capture_on_commit_callbacks)
    LeadScore.objects.filter(lead=lead).update(predictive_score=99)

    visit(lead, django_capture_on_commit_callbacks)

    lead.refresh_from_db()
    assert (lead.score, lead.band, lead.stage) == (30, "warm", Stage.NEW)


@pytest.mark.django_db
def test_a_rescore_and_the_nightly_decay_band_on_the_predictive_score(
    django_capture_on_commit_callbacks,
):
    model = deciding("predictive", decay_half_life_days=30)
    fit_rule(model, 10, "seniority", "equals", "director")
    hot, cold = LeadFactory(seniority="director"), LeadFactory(seniority="director")
    model_rescore_in_process(model=model, reason="test")
    LeadScore.objects.filter(lead=hot).update(predictive_score=75)
    LeadScore.objects.filter(lead=cold).update(predictive_score=5)

    # A change to the model rescores its leads in full (set-based on PostgreSQL).
    model.hot_from = 70
    model.save()
    model_rescore_in_process(model=model, reason="test")

    rows = {hot.pk: "hot", cold.pk: "cold"}
    assert dict(Lead.objects.values_list("pk", "band")) == rows
    assert dict(Lead.objects.values_list("pk", "score")) == {hot.pk: 10, cold.pk: 10}
    assert list(scores_verify()) == []

    scores_decay()

    assert dict(Lead.objects.values_list("pk", "band")) == rows
    assert list(scores_verify()) == []


@pytest.mark.django_db
def test_the_lead_page_says_which_score_decides(
    client, admin_user, django_capture_on_commit_callbacks
):
    model = deciding("blend", predictive_share=40)
    page_rule(model, 20, "/pricing")
    lead = LeadFactory()
    visit(lead, django_capture_on_commit_callbacks)
    LeadScore.objects.filter(lead=lead).update(predictive_score=70)
    client.force_login(admin_user)

    page = client.get(lead.get_absolute_url()).content.decode()

    assert "Banded on a blend of 60% rule score (20) and 40% predictive score (70): 40." in page


# --- The predictive model's refresh --------------------------------------------------------


@pytest.mark.django_db
def test_publishing_a_predictive_model_bands_and_qualifies_on_it(
    settings, django_capture_on_commit_callbacks
):
    settings.PREDICTIVE_MIN_CLOSED = 200
    model = deciding("predictive", mql_threshold=50, sql_threshold=90, hot_from=80, warm_from=30)
    fit_rule(model, 20, "seniority", "equals", "director", name="Director")
    page_rule(model, 5, "/pricing", max_per_lead=2)
    _, card = trained_world(model)
    open_leads = [LeadFactory(seniority="director") for _ in range(40)]
    model_rescore_in_process(model=model, reason="test")
    LeadScore.objects.filter(lead__in=open_leads).update(predictive_score=None)
    Lead.objects.filter(pk__in=[lead.pk for lead in open_leads]).update(stage=Stage.NEW)

    with django_capture_on_commit_callbacks(execute=True):
        predictive_scores_refresh(predictive=card)

    rows = {
        row.lead_id: row
        for row in LeadScore.objects.filter(lead__in=open_leads).select_related("lead")
    }
    t = model.thresholds
    for row in rows.values():
        assert row.predictive_score is not None
        expected = (
            "hot"
            if row.predictive_score >= 80
            else "warm"
            if row.predictive_score >= 30
            else "cold"
        )
        assert (row.band, row.lead.band) == (expected, expected)
        decided = decision_score(row.lead.score, row.predictive_score, t)
        if decided >= 90:
            assert row.lead.stage == Stage.SQL
        elif decided >= 50:
            assert row.lead.stage == Stage.MQL
        else:
            assert row.lead.stage == Stage.NEW
    assert {row.band for row in rows.values()} != {"cold"}
    assert list(scores_verify()) == []


# --- A change of basis moves the leads already past a threshold on the new one -------------


@pytest.mark.django_db
def test_switching_to_the_predictive_score_qualifies_the_leads_already_past_a_threshold(
    admin_user, django_capture_on_commit_callbacks
):
    model = deciding("rules", mql_threshold=50, sql_threshold=90)
    page_rule(model, 20, "/pricing")
    likely, unlikely, sold = LeadFactory(), LeadFactory(), LeadFactory()
    for lead in (likely, unlikely, sold):
        visit(lead, django_capture_on_commit_callbacks)
    LeadScore.objects.filter(lead=likely).update(predictive_score=93)
    LeadScore.objects.filter(lead=unlikely).update(predictive_score=12)
    LeadScore.objects.filter(lead=sold).update(predictive_score=95)
    Lead.objects.filter(pk=sold.pk).update(stage=Stage.CUSTOMER)
    client = token_client(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.patch(
            f"/api/v1/scoring-models/{model.pk}/", {"decide_on": "predictive"}, format="json"
        )

    assert response.status_code == 200, response.content
    stages = dict(Lead.objects.values_list("pk", "stage"))
    assert stages == {likely.pk: Stage.SQL, unlikely.pk: Stage.NEW, sold.pk: Stage.CUSTOMER}
    bands = dict(Lead.objects.values_list("pk", "band"))
    assert bands == {likely.pk: "hot", unlikely.pk: "cold", sold.pk: "hot"}
    reason = likely.stage_changes.order_by("-pk").first().reason
    assert reason == (
        "Predictive score 93 is past the SQL threshold 90 of “Default”, "
        "now that it decides on the predictive score"
    )
    assert list(scores_verify()) == []


@pytest.mark.django_db
def test_a_lowered_threshold_of_a_blending_model_moves_on_the_blend(
    admin_user, django_capture_on_commit_callbacks
):
    model = deciding("blend", mql_threshold=60, sql_threshold=90)
    page_rule(model, 20, "/pricing")
    blended_55, blended_45 = LeadFactory(), LeadFactory()
    for lead in (blended_55, blended_45):
        visit(lead, django_capture_on_commit_callbacks)
    LeadScore.objects.filter(lead=blended_55).update(predictive_score=90)
    LeadScore.objects.filter(lead=blended_45).update(predictive_score=70)
    client = token_client(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.patch(
            f"/api/v1/scoring-models/{model.pk}/", {"mql_threshold": 50}, format="json"
        )

    assert response.status_code == 200, response.content
    stages = dict(Lead.objects.values_list("pk", "stage"))
    # Rule scores of 20 alone pass no threshold; blended, one lead is past the new 50.
    assert stages == {blended_55.pk: Stage.MQL, blended_45.pk: Stage.NEW}
    reason = blended_55.stage_changes.order_by("-pk").first().reason
    assert reason.startswith("Blended score 55 is past the MQL threshold 50")


# --- A new version keeps the predictive score ------------------------------------------------


@pytest.mark.django_db(transaction=False)
def test_a_published_version_takes_over_the_live_predictive_model_and_its_scores(
    settings, django_capture_on_commit_callbacks
):
    from scoring.changes import model_duplicate, model_publish, model_rollback
    from scoring.models import PredictiveModel, PredictiveStatus

    settings.PREDICTIVE_MIN_CLOSED = 200
    model = deciding("blend", mql_threshold=50, sql_threshold=90, hot_from=80, warm_from=30)
    fit_rule(model, 20, "seniority", "equals", "director", name="Director")
    page_rule(model, 5, "/pricing", max_per_lead=2)
    _, card = trained_world(model)
    before = dict(LeadScore.objects.filter(model=model).values_list("lead_id", "predictive_score"))
    assert None not in before.values()

    draft = model_duplicate(model=model)
    draft.rules.filter(name="Director").update(points=25)
    with django_capture_on_commit_callbacks(execute=True):
        model_publish(model=draft)

    card.refresh_from_db()
    assert (card.model_id, card.status) == (draft.pk, PredictiveStatus.LIVE)
    after = dict(LeadScore.objects.filter(model=draft).values_list("lead_id", "predictive_score"))
    # The predictive model reads fields and behaviour: a rule's points leave it alone.
    assert after == before
    rows = LeadScore.objects.filter(model=draft, is_primary=True).select_related("lead")
    t = ScoringModel.objects.get(pk=draft.pk).thresholds
    for row in rows[:50]:
        decided = decision_score(row.lead.score, row.predictive_score, t)
        band = "hot" if decided >= 80 else "warm" if decided >= 30 else "cold"
        assert row.lead.band == band
    assert list(scores_verify()) == []

    with django_capture_on_commit_callbacks(execute=True):
        model_rollback(model=ScoringModel.objects.get(pk=draft.pk))

    assert PredictiveModel.objects.get(pk=card.pk).model_id == model.pk
    assert not LeadScore.objects.filter(model=model, predictive_score__isnull=True).exists()
    assert list(scores_verify()) == []

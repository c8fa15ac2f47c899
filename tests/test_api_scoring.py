"""Scoring models and rules through the API: read by every role, written by marketers and admins."""

from __future__ import annotations

import pytest

from scoring.models import ChangeLog, RescoreJob, Rule, ScoringModel
from tests.api_client import error_of, ids, token_client
from tests.factories import active_model, fit_rule

MODELS = "/api/v1/scoring-models/"


@pytest.fixture
def model(db):
    model = active_model()
    fit_rule(model, 20, "seniority", "equals", "director")
    return model


@pytest.mark.parametrize(
    ("persona", "expected"),
    [("rep", 200), ("manager", 200), ("marketer", 200), ("admin_user", 200), ("outsider", 403)],
)
def test_every_role_reads_models_and_rules(request, model, persona, expected):
    client = token_client(request.getfixturevalue(persona))

    models = client.get(MODELS)
    rules = client.get(f"{MODELS}{model.pk}/rules/")

    assert (models.status_code, rules.status_code) == (expected, expected)
    if expected == 200:
        assert ids(models) == [model.pk]
        assert models.json()["results"][0]["rule_count"] == 1
        assert rules.json()["results"][0]["description"] == "+20 when seniority is Director"


@pytest.mark.parametrize("persona", ["rep", "manager", "outsider"])
def test_only_marketers_and_admins_write(request, model, persona):
    client = token_client(request.getfixturevalue(persona))

    created = client.post(MODELS, {"name": "New"}, format="json")
    changed = client.patch(f"{MODELS}{model.pk}/", {"hot_from": 99}, format="json")
    rule = client.post(
        f"{MODELS}{model.pk}/rules/",
        {
            "name": "CTO",
            "kind": "fit",
            "points": 5,
            "field": "job_title",
            "operator": "contains",
            "value": "CTO",
        },
        format="json",
    )

    assert [created.status_code, changed.status_code, rule.status_code] == [403] * 3
    model.refresh_from_db()
    assert (ScoringModel.objects.count(), model.hot_from, Rule.objects.count()) == (1, 80, 1)


@pytest.mark.parametrize("persona", ["marketer", "admin_user"])
def test_marketer_adds_a_rule_which_is_logged_and_rescored(
    request, model, persona, django_capture_on_commit_callbacks
):
    user = request.getfixturevalue(persona)
    client = token_client(user)

    with django_capture_on_commit_callbacks():
        response = client.post(
            f"{MODELS}{model.pk}/rules/",
            {
                "name": "CTO",
                "kind": "fit",
                "points": 5,
                "field": "job_title",
                "operator": "contains",
                "value": "CTO",
            },
            format="json",
        )

    assert response.status_code == 201, response.content
    rule = Rule.objects.get(pk=response.json()["id"])
    assert rule.model == model
    assert ChangeLog.objects.filter(object_type="rule", object_id=rule.pk, by=user).exists()
    assert RescoreJob.objects.filter(model=model, rule=rule).exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (
            {
                "kind": "fit",
                "points": 0,
                "field": "job_title",
                "operator": "contains",
                "value": "x",
            },
            "points",
        ),
        ({"kind": "fit", "points": 5, "field": "", "operator": "contains", "value": "x"}, "field"),
        (
            {"kind": "fit", "points": 5, "field": "shoe_size", "operator": "equals", "value": "x"},
            "field",
        ),
        (
            {
                "kind": "fit",
                "points": 5,
                "field": "job_title",
                "operator": "greater_than",
                "value": "x",
            },
            "operator",
        ),
        (
            {"kind": "fit", "points": 5, "field": "job_title", "operator": "contains", "value": ""},
            "value",
        ),
        (
            {"kind": "fit", "points": 5, "field": "job_title", "operator": "regex", "value": "(["},
            "value",
        ),
        ({"kind": "engagement", "points": 5}, "activity_type"),
        (
            {"kind": "engagement", "points": 5, "activity_type": "page_view", "target": "url"},
            "pattern",
        ),
        (
            {"kind": "engagement", "points": 5, "activity_type": "page_view", "target": "property"},
            "property_name",
        ),
        (
            {"kind": "engagement", "points": 5, "activity_type": "page_view", "bonus_points": 3},
            "bonus_count",
        ),
        ({"kind": "magic", "points": 5}, "kind"),
    ],
)
def test_rule_validation_errors_are_field_errors(marketer, model, payload, field):
    response = token_client(marketer).post(
        f"{MODELS}{model.pk}/rules/", {"name": "R", **payload}, format="json"
    )

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == [field]
    assert Rule.objects.count() == 1


def test_rule_update_is_validated_against_the_stored_rule(marketer, model):
    rule = model.rules.get()

    bad = token_client(marketer).patch(
        f"{MODELS}{model.pk}/rules/{rule.pk}/", {"operator": "greater_than"}, format="json"
    )
    good = token_client(marketer).patch(
        f"{MODELS}{model.pk}/rules/{rule.pk}/", {"points": 30}, format="json"
    )

    assert bad.status_code == 400
    assert list(error_of(bad)["fields"]) == ["operator"]
    assert good.status_code == 200
    rule.refresh_from_db()
    assert (rule.operator, rule.points) == ("equals", 30)


def test_a_marketer_deletes_a_rule_and_the_live_model_is_rescored_without_it(
    marketer, model, django_capture_on_commit_callbacks
):
    # Given a director scored 20 by the live model's one rule
    from scoring.lead_scoring import lead_score
    from tests.factories import LeadFactory

    lead = LeadFactory(seniority="director")
    lead_score(lead_id=lead.pk)
    lead.refresh_from_db()
    assert lead.score == 20
    rule = model.rules.get()

    # When a marketer deletes the rule (its rescore runs after commit)
    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(marketer).delete(f"{MODELS}{model.pk}/rules/{rule.pk}/")

    # Then it is gone, logged as it was, and the lead's score lost its points
    assert response.status_code == 204
    assert not Rule.objects.filter(pk=rule.pk).exists()
    logged = ChangeLog.objects.get(object_type="rule", action="delete")
    assert (logged.object_id, logged.before["points"], logged.by) == (rule.pk, 20, marketer)
    assert RescoreJob.objects.get(model=model).reason == f"Rule “{rule}” deleted"
    lead.refresh_from_db()
    assert lead.score == 0


@pytest.mark.parametrize("persona", ["rep", "manager"])
def test_only_marketers_and_admins_delete_rules(request, model, persona):
    rule = model.rules.get()

    response = token_client(request.getfixturevalue(persona)).delete(
        f"{MODELS}{model.pk}/rules/{rule.pk}/"
    )

    assert response.status_code == 403
    assert Rule.objects.filter(pk=rule.pk).exists()


def test_rules_of_an_unknown_model_are_404(marketer):
    assert token_client(marketer).get(f"{MODELS}999/rules/").status_code == 404


def test_rule_belongs_to_the_model_in_the_url(marketer, model):
    other = ScoringModel.objects.create(name="Other")
    rule = model.rules.get()

    assert token_client(marketer).get(f"{MODELS}{other.pk}/rules/{rule.pk}/").status_code == 404


def test_model_thresholds_are_checked_field_by_field(marketer, model):
    response = token_client(marketer).patch(
        f"{MODELS}{model.pk}/", {"mql_threshold": 95, "warm_from": 90}, format="json"
    )

    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == {"sql_threshold", "hot_from"}
    model.refresh_from_db()
    assert model.mql_threshold == 50


def test_model_change_is_logged_and_rescored(marketer, model, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        response = token_client(marketer).patch(
            f"{MODELS}{model.pk}/", {"hot_from": 85}, format="json"
        )

    assert response.status_code == 200
    assert ChangeLog.objects.filter(object_type="scoringmodel", action="change").exists()
    assert RescoreJob.objects.filter(model=model, rule=None).count() == 1


def test_second_default_model_is_refused(marketer, model):
    response = token_client(marketer).post(
        MODELS, {"name": "Another", "is_default": True}, format="json"
    )

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["is_default"]


def test_draft_model_is_created_without_a_rescore(marketer):
    response = token_client(marketer).post(MODELS, {"name": "Fleet"}, format="json")

    assert response.status_code == 201
    assert response.json()["status"] == "draft"
    assert not RescoreJob.objects.exists()


def test_a_draft_version_is_made_published_and_rolled_back_through_the_api(
    marketer, model, django_capture_on_commit_callbacks
):
    # Given the live default model (a director scores 20) and a scored director
    from scoring.lead_scoring import lead_score
    from tests.factories import LeadFactory

    lead = LeadFactory(seniority="director")
    lead_score(lead_id=lead.pk)
    api = token_client(marketer)

    # When a marketer makes a draft version, gives the rule 35 points and publishes it
    draft = api.post(f"{MODELS}{model.pk}/draft/")
    assert draft.status_code == 201
    assert (draft.json()["version_of"], draft.json()["status"]) == (model.pk, "draft")
    rule = Rule.objects.get(model_id=draft.json()["id"])
    api.patch(f"{MODELS}{rule.model_id}/rules/{rule.pk}/", {"points": 35}, format="json")
    lead.refresh_from_db()
    assert lead.score == 20  # the draft touched nobody
    with django_capture_on_commit_callbacks(execute=True):
        published = api.post(f"{MODELS}{rule.model_id}/publish/")

    # Then it is the live default in the model's place, and the lead has its score
    assert published.status_code == 200, published.content
    assert (published.json()["status"], published.json()["is_default"]) == ("active", True)
    assert api.get(f"{MODELS}{model.pk}/").json()["status"] == "archived"
    lead.refresh_from_db()
    assert lead.score == 35

    # And rolling back puts the old version back, with its score
    with django_capture_on_commit_callbacks(execute=True):
        back = api.post(f"{MODELS}{rule.model_id}/roll-back/")
    assert back.status_code == 200
    assert (back.json()["id"], back.json()["status"]) == (model.pk, "active")
    lead.refresh_from_db()
    assert lead.score == 20


def test_publishing_a_model_that_is_not_a_draft_version_is_a_conflict(marketer, model):
    response = token_client(marketer).post(f"{MODELS}{model.pk}/publish/")

    assert response.status_code == 409
    assert "is not a draft version of a live model" in str(error_of(response))
    model.refresh_from_db()
    assert model.status == "active"

"""Fit rules that say what marketers mean: several tests joined by all or any, and points
per unit of a number with a cap, the same in the rules' functions, the set-based rescore,
the explanation, the admin and the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from leads.activities import activities_record
from leads.models import Activity, ActivityType, CustomFieldDefinition, FieldType
from leads.profiles import lead_save_profile
from scoring.explanation import lead_explanation
from scoring.models import Rule, RuleKind, ScoreEntry
from scoring.rescore_jobs import rescore_job_start
from scoring.rule_fields import NUMBER
from scoring.rules import (
    ActivityFact,
    Condition,
    RuleSpec,
    engagement_awards,
    fit_awards,
    fit_matches,
    fit_points,
    window_matches,
)
from scoring.verification import scores_verify
from tests.api_client import error_of, token_client
from tests.factories import LeadFactory, active_model

NOW = datetime(2026, 12, 1, tzinfo=UTC)
MODELS = "/api/v1/scoring-models/"


def spec(**fields) -> RuleSpec:
    base = {"id": 1, "kind": "fit", "points": 5, "description": "", "field": "job_title"}
    return RuleSpec(**{**base, **fields})


# --- The rules' functions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("join", "facts", "expected"),
    [
        ("all", {"job_title": "Head of IT", "country": "DE"}, True),
        ("all", {"job_title": "Head of IT", "country": "FR"}, False),
        ("any", {"job_title": "Head of IT", "country": "FR"}, True),
        ("any", {"job_title": "Intern", "country": "DE"}, True),
        ("any", {"job_title": "Intern", "country": "FR"}, False),
    ],
)
def test_a_rules_tests_are_joined_by_all_or_any(join, facts, expected):
    rule = spec(
        operator="contains",
        value="head",
        conditions=(Condition("country", "in", "de, at"),),
        join=join,
    )

    assert fit_matches(rule, facts, {}) is expected


@pytest.mark.parametrize(
    ("points", "per_unit", "cap", "value", "expected"),
    [
        (1, 60.0, None, 600, 10.0),  # ten minutes, a point a minute
        (1, 60.0, 30, 3600, 30.0),  # an hour, capped at 30
        (1, 60.0, None, 59, 0.0),  # less than a unit earns nothing
        (1, 60.0, None, None, 0.0),  # nothing known earns nothing
        (1, 60.0, None, -120, 0.0),  # a negative amount counts no unit
        (-2, 10.0, 5, 100, -5.0),  # a negative rule is capped below zero
        (3, 0.5, None, 1.2, 6.0),  # fractional units
        (7, None, 4, 1, 4.0),  # a cap on a plain rule
    ],
)
def test_points_per_unit_with_a_cap(points, per_unit, cap, value, expected):
    rule = spec(
        field="custom.seconds",
        field_kind=NUMBER,
        operator="not_empty",
        points=points,
        per_unit=per_unit,
        points_cap=cap,
    )

    assert fit_points(rule, {"custom.seconds": value}) == expected


def test_a_matching_rule_that_earns_no_point_writes_no_award():
    rule = spec(field="custom.seconds", field_kind=NUMBER, operator="gte", value="0", per_unit=60.0)

    assert fit_awards([rule], {"custom.seconds": 30}, {}, NOW) == []
    assert [a.points for a in fit_awards([rule], {"custom.seconds": 130}, {}, NOW)] == [10.0]


# --- Scoring a lead, one at a time and set-based ------------------------------------------------


@pytest.fixture
def occupation_fields(db):
    for key, field_type in [("occupation", FieldType.TEXT), ("seconds_on_site", FieldType.INTEGER)]:
        CustomFieldDefinition.objects.create(
            key=key, label=key.replace("_", " "), field_type=field_type
        )


@pytest.fixture
def studio_model(occupation_fields):
    model = active_model()
    Rule.objects.create(
        model=model,
        name="Working professionals who stayed",
        kind=RuleKind.FIT,
        points=1,
        field="custom.seconds_on_site",
        operator="gte",
        value="600",
        conditions=[
            {"field": "custom.occupation", "operator": "equals", "value": "Working Professional"}
        ],
        per_unit=60,
        points_cap=30,
    )
    Rule.objects.create(
        model=model,
        name="Students or unemployed",
        kind=RuleKind.FIT,
        points=-15,
        field="custom.occupation",
        operator="equals",
        value="student",
        conditions=[{"field": "custom.occupation", "operator": "equals", "value": "unemployed"}],
        join="any",
    )
    return model


LEADS = [
    # (occupation, seconds on site) → fit points
    ("Working Professional", 900, 15),
    ("working professional", 7200, 30),
    ("Working Professional", 300, 0),
    ("Student", 5000, -15),
    ("Unemployed", None, -15),
    ("", 3000, 0),
]


def make_leads():
    leads = []
    for occupation, seconds, _ in LEADS:
        custom = {"occupation": occupation}
        if seconds is not None:
            custom["seconds_on_site"] = seconds
        leads.append(LeadFactory(company=None, custom_fields=custom))
    return leads


def test_leads_are_scored_by_conditions_and_units_one_at_a_time(
    studio_model, django_capture_on_commit_callbacks
):
    leads = make_leads()

    for lead in leads:
        with django_capture_on_commit_callbacks(execute=True):
            lead_save_profile(lead=lead, changed_fields=["custom_fields"])

    assert [_fit(lead) for lead in leads] == [fit for _, _, fit in LEADS]
    assert list(scores_verify()) == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the set-based rescore is SQL")
def test_the_set_based_rescore_gives_the_same_points(
    studio_model, django_capture_on_commit_callbacks
):
    leads = make_leads()

    with django_capture_on_commit_callbacks(execute=True):
        rescore_job_start(model=studio_model, reason="test")

    assert [_fit(lead) for lead in leads] == [fit for _, _, fit in LEADS]
    assert list(scores_verify()) == []


def test_the_explanation_names_the_rule_and_adds_up(
    studio_model, django_capture_on_commit_callbacks
):
    lead = make_leads()[1]
    with django_capture_on_commit_callbacks(execute=True):
        lead_save_profile(lead=lead, changed_fields=["custom_fields"])

    explanation = lead_explanation(lead=lead)
    [model] = explanation["models"]
    lines = model["positive"] + model["negative"]

    assert [(line["points"], line["reason"]) for line in lines] == [
        (
            30,
            "+1 per 60 of seconds on site (at most 30 points) when seconds on site is at "
            "least 600 and occupation is Working Professional",
        )
    ]
    lead.refresh_from_db()
    assert lead.fit_score == model["fit"] == sum(line["value_now"] for line in lines) == 30


def _fit(lead) -> int:
    lead.refresh_from_db()
    return lead.fit_score


# --- The API and the admin ---------------------------------------------------------------------


def test_the_api_takes_conditions_and_units_and_describes_the_rule(marketer, occupation_fields):
    model = active_model()

    response = token_client(marketer).post(
        f"{MODELS}{model.pk}/rules/",
        {
            "name": "Minutes on site",
            "kind": "fit",
            "points": 1,
            "field": "custom.seconds_on_site",
            "operator": "not_empty",
            "per_unit": 60,
            "points_cap": 30,
            "conditions": [
                {"field": "custom.occupation", "operator": "in", "value": "student, unemployed"}
            ],
            "join": "any",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["join"], body["per_unit"], body["points_cap"]) == ("any", 60.0, 30)
    assert body["description"] == (
        "+1 per 60 of seconds on site (at most 30 points) when seconds on site is not empty "
        "or occupation is one of student, unemployed"
    )


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"conditions": {"field": "country"}}, "conditions", "as a list"),
        ({"conditions": [{"field": "country"}]}, "conditions", "needs a field and an operator"),
        (
            {"conditions": [{"field": "shoe_size", "operator": "equals", "value": "x"}]},
            "conditions",
            "no lead field",
        ),
        (
            {"conditions": [{"field": "country", "operator": "gte", "value": "x"}]},
            "conditions",
            "does not fit a text field",
        ),
        (
            {"conditions": [{"field": "country", "operator": "in", "colour": "x"}]},
            "conditions",
            "unknown keys: colour",
        ),
        ({"per_unit": 60}, "per_unit", "need a number field"),
        (
            {"field": "company.employee_count", "operator": "gte", "value": "1", "per_unit": 0},
            "per_unit",
            "above zero",
        ),
        (
            {"field": "company.employee_count", "operator": "gte", "value": "1", "points_cap": 0},
            "points_cap",
            "greater than or equal to 1",
        ),
        (
            {
                "kind": "engagement",
                "activity_type": "page_view",
                "conditions": [{"field": "country", "operator": "equals", "value": "de"}],
            },
            "conditions",
            "for fit rules",
        ),
    ],
)
def test_bad_conditions_and_units_are_field_errors_and_store_nothing(
    marketer, payload, field, words
):
    model = active_model()
    rule = {"name": "R", "kind": "fit", "points": 5, "field": "job_title", "operator": "contains"}
    rule["value"] = "head"

    response = token_client(marketer).post(
        f"{MODELS}{model.pk}/rules/", {**rule, **payload}, format="json"
    )

    assert response.status_code == 400, response.content
    fields = error_of(response)["fields"]
    assert list(fields) == [field]
    assert words in str(fields[field])
    assert not Rule.objects.exists()


def test_the_admin_saves_a_rule_with_conditions_and_shows_its_sentence(
    client, marketer, occupation_fields
):
    from tests.test_scoring_admin import FIT_RULE, add_form, url

    client.force_login(marketer)
    rule = {
        **FIT_RULE,
        "conditions": '[{"field": "custom.occupation", "operator": "equals", "value": "cto"}]',
        "join": "any",
        "points_cap": "10",
    }
    response = client.post(url("add"), add_form(client, rule))

    assert response.status_code == 302, response.content[:2000]
    saved = Rule.objects.get()
    assert (saved.conditions, saved.join, saved.points_cap) == (
        [{"field": "custom.occupation", "operator": "equals", "value": "cto"}],
        "any",
        10,
    )
    page = client.get(url("change", saved.model_id)).content.decode()
    assert "+20 (at most 10 points) when job title contains head or occupation is cto" in page


def test_the_admin_refuses_a_bad_condition_with_its_message(client, marketer):
    from tests.test_scoring_admin import FIT_RULE, add_form, counts, url

    client.force_login(marketer)
    rule = {**FIT_RULE, "conditions": '[{"field": "nope", "operator": "equals", "value": "x"}]'}
    before = counts()

    response = client.post(url("add"), add_form(client, rule))

    assert response.status_code == 200
    assert "There is no lead field “nope”" in response.content.decode()
    assert counts() == before


# --- Engagement over a window -------------------------------------------------------------------


def visit(pk: int, hours: float, seconds: int | None = None) -> ActivityFact:
    return ActivityFact(
        id=pk, type="page_view", occurred_at=NOW + timedelta(hours=hours), duration_seconds=seconds
    )


def window_rule(**fields) -> RuleSpec:
    base = {"id": 2, "kind": "engagement", "points": 10, "description": ""}
    return RuleSpec(**{**base, "activity_type": "page_view", "window_days": 7, **fields})


def test_a_window_counts_the_matches_of_the_days_up_to_each_both_ends_included():
    rule = window_rule(window_min=3)
    visits = [visit(1, 0), visit(2, 24), visit(3, 7 * 24), visit(4, 7 * 24 + 1), visit(5, 30 * 24)]

    kept = window_matches(rule, visits)

    # 3: visits 1, 2 and 3 lie within 7 days up to it (1 exactly 7 days before);
    # 4: visits 2, 3 and 4; 5: alone.
    assert [a.id for a in kept] == [3, 4]


def test_matches_at_the_same_instant_count_for_each_other():
    rule = window_rule(window_min=2)

    assert [a.id for a in window_matches(rule, [visit(1, 5), visit(2, 5)])] == [1, 2]


def test_a_window_in_seconds_adds_durations_up():
    rule = window_rule(window_min=600, window_measure="seconds", window_days=1)
    visits = [visit(1, 0, 300), visit(2, 2, None), visit(3, 3, 300), visit(4, 40, 900)]

    assert [a.id for a in window_matches(rule, visits)] == [3, 4]


def test_engagement_awards_apply_the_window_before_the_caps():
    rule = window_rule(window_min=2, max_per_lead=1)
    visits = [visit(1, 0), visit(2, 200), visit(3, 201), visit(4, 202)]

    awards = engagement_awards([rule], visits, NOW + timedelta(days=30))

    assert [(a.activity_id, a.points) for a in awards] == [(3, 10.0)]


@pytest.fixture
def window_model(db):
    model = active_model()
    Rule.objects.create(
        model=model,
        name="Came back",
        kind=RuleKind.ENGAGEMENT,
        points=10,
        activity_type=ActivityType.PAGE_VIEW,
        window_days=7,
        window_min=3,
    )
    return model


def record_visits(lead, hours_ago, capture) -> None:
    now = timezone.now()
    for hours in hours_ago:
        with capture(execute=True):
            activities_record(
                lead=lead,
                activities=[
                    Activity(type=ActivityType.PAGE_VIEW, occurred_at=now - timedelta(hours=hours))
                ],
            )


def test_a_window_rule_scores_as_events_arrive_and_as_a_rescore_does(
    window_model, django_capture_on_commit_callbacks
):
    lead = LeadFactory(company=None)

    # Three visits in a week, then one alone a month earlier (arriving last)
    record_visits(lead, [50, 30, 10, 24 * 40], django_capture_on_commit_callbacks)

    lead.refresh_from_db()
    third = Activity.objects.order_by("-occurred_at").first()
    awards = list(ScoreEntry.objects.values_list("activity_id", "points", "reversal_of"))
    assert awards == [(third.pk, 10.0, None)]
    assert lead.engagement_score == pytest.approx(10)
    assert list(scores_verify()) == []

    # A rescore (set-based on PostgreSQL) finds the same award: it reverses and adds nothing
    with django_capture_on_commit_callbacks(execute=True):
        rescore_job_start(model=window_model, reason="test")
    assert list(ScoreEntry.objects.values_list("activity_id", "points", "reversal_of")) == awards
    assert list(scores_verify()) == []


def test_the_api_takes_a_window_and_describes_it(marketer):
    model = active_model()

    response = token_client(marketer).post(
        f"{MODELS}{model.pk}/rules/",
        {
            "name": "Came back",
            "kind": "engagement",
            "points": 10,
            "activity_type": "page_view",
            "window_days": 7,
            "window_min": 3,
        },
        format="json",
    )
    bad = token_client(marketer).post(
        f"{MODELS}{model.pk}/rules/",
        {"name": "B", "kind": "engagement", "points": 10, "activity_type": "page_view"}
        | {"window_days": 7},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["description"] == (
        "+10 when a page view, once there are at least 3 within 7 days"
    )
    assert bad.status_code == 400
    assert list(error_of(bad)["fields"]) == ["window_min"]

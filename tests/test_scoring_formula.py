"""The model's score formula besides its rules: the base score every lead starts from,
negative thresholds, and caps on fit and engagement; through the admin, the API, the
scoring paths, the explanation and the stage moves."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from leads.activities import activities_record
from leads.models import Activity, Lead, Stage
from leads.profiles import lead_save_profile
from scoring.lead_scoring import crossed, leads_score
from scoring.models import ChangeLog, RescoreJob, RescoreStatus, ScoringModel
from scoring.rescore_jobs import rescore_job_start
from scoring.verification import scores_verify
from tests.admin_forms import changeform_data
from tests.api_client import error_of, token_client
from tests.factories import LeadFactory, active_model, fit_rule, page_rule

MODELS = "/api/v1/scoring-models/"


def admin_url(view: str, *args: Any) -> str:
    return reverse(f"admin:scoring_scoringmodel_{view}", args=args)


def admin_save(client, model: ScoringModel, capture, **fields: str) -> Any:
    """Save the model's admin change form with ``fields`` changed; its rescore runs."""
    data = changeform_data(client.get(admin_url("change", model.pk)))
    data.update(fields)
    with capture(execute=True):
        return client.post(admin_url("change", model.pk), data)


def shown(lead: Lead) -> tuple[int, str, str]:
    lead.refresh_from_db()
    return lead.score, lead.band, lead.stage


def visit(lead: Lead, capture, url: str = "/pricing", **fields: Any) -> None:
    with capture(execute=True):
        activities_record(lead=lead, activities=[Activity(type="page_view", url=url, **fields)])


# --- The formula on plain values ------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "threshold", "expected"),
    [
        (None, -10, -15, True),  # a first score comes from minus infinity
        (None, -20, -15, False),
        (None, 0, 0, True),
        (-20, -15, -15, True),
        (-15, -10, -15, False),  # already past it
        (10, 5, -15, False),
    ],
)
def test_a_crossing_is_upward_and_a_first_score_crosses_every_threshold_it_reaches(
    before, after, threshold, expected
):
    assert crossed(before, after, threshold) is expected


# --- A. The base score and negative thresholds ----------------------------------------------


def test_a_base_score_set_in_the_admin_is_logged_and_rescores_every_lead(
    client, marketer, django_capture_on_commit_callbacks
):
    # Given a live model scoring a German lead 10 and a French one 0
    model = active_model(surge_points=0)
    fit_rule(model, 10, "country", "equals", "DE")
    german, french = LeadFactory(country="DE"), LeadFactory(country="FR")
    leads_score(lead_ids=[german.pk, french.pk])
    assert (shown(german)[0], shown(french)[0]) == (10, 0)
    client.force_login(marketer)

    # When the marketer gives the model a base score of -20
    response = admin_save(client, model, django_capture_on_commit_callbacks, base_score="-20")

    # Then the change is logged, a rescore of the whole model ran, and every lead has it
    assert response.status_code == 302
    change = ChangeLog.objects.filter(object_type="scoringmodel", action="change").get()
    assert (change.before["base_score"], change.after["base_score"]) == (0, -20)
    job = RescoreJob.objects.get(model=model)
    assert (job.rule, job.status) == (None, RescoreStatus.DONE)
    assert (shown(german)[0], shown(french)[0]) == (-10, -20)
    assert list(scores_verify()) == []


def test_base_score_and_negative_thresholds_through_the_api_with_field_errors(
    marketer, django_capture_on_commit_callbacks
):
    model = active_model(surge_points=0)
    fit_rule(model, 10, "country", "equals", "DE")
    lead = LeadFactory(country="FR")
    leads_score(lead_ids=[lead.pk])
    api = token_client(marketer)

    # A base score and thresholds below zero are accepted and rescore the model
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(
            f"{MODELS}{model.pk}/",
            {"base_score": -30, "mql_threshold": -25, "sql_threshold": -5},
            format="json",
        )
    assert response.status_code == 200, response.content
    assert response.json()["base_score"] == -30
    assert shown(lead)[0] == -30
    assert RescoreJob.objects.get(model=model).status == RescoreStatus.DONE

    # An SQL threshold below the MQL one, or a base score that is not a whole number,
    # is a field error, and nothing changes
    for payload, field in (
        ({"mql_threshold": 5, "sql_threshold": -5}, "sql_threshold"),
        ({"base_score": "sixty"}, "base_score"),
        ({"base_score": 2.5}, "base_score"),
    ):
        response = api.patch(f"{MODELS}{model.pk}/", payload, format="json")
        assert response.status_code == 400, payload
        assert field in error_of(response)["fields"], payload
    model.refresh_from_db()
    assert (model.base_score, model.mql_threshold, model.sql_threshold) == (-30, -25, -5)
    assert RescoreJob.objects.count() == 1


def test_the_admin_refuses_an_sql_threshold_below_a_negative_mql_and_stores_nothing(
    client, marketer, django_capture_on_commit_callbacks
):
    model = active_model()
    client.force_login(marketer)

    response = admin_save(
        client, model, django_capture_on_commit_callbacks, mql_threshold="-10", sql_threshold="-20"
    )

    assert response.status_code == 200
    assert "The SQL threshold cannot be below the MQL threshold." in response.content.decode()
    model.refresh_from_db()
    assert (model.mql_threshold, model.sql_threshold) == (50, 90)
    assert not RescoreJob.objects.exists()


def test_a_new_lead_whose_first_score_is_past_a_negative_threshold_moves_to_mql(
    db, django_capture_on_commit_callbacks
):
    # Given a model with a base score of -10, MQL from -15 and a -20 rule for students
    model = active_model(base_score=-10, mql_threshold=-15, sql_threshold=40, surge_points=0)
    fit_rule(model, -20, "job_title", "contains", "student")
    page_rule(model, 15, "/pricing")

    # When a new lead and a new student are scored for the first time
    lead, student = LeadFactory(job_title="Buyer"), LeadFactory(job_title="Student")
    for row in (lead, student):
        with django_capture_on_commit_callbacks(execute=True):
            lead_save_profile(lead=row, changed_fields=["job_title"])

    # Then the lead at -10 crossed from nothing to MQL, once; the student at -30 did not
    assert shown(lead) == (-10, "cold", Stage.MQL)
    assert shown(student) == (-30, "cold", Stage.NEW)
    assert lead.stage_changes.get().reason == (
        "Score -10 crossed the MQL threshold -15 in “Default”"
    )

    # And a later scoring that stays past the threshold moves nobody again, while the
    # student crosses it from below with a visit
    visit(lead, django_capture_on_commit_callbacks, url="/about")
    visit(student, django_capture_on_commit_callbacks)
    assert lead.stage_changes.count() == 1
    assert shown(student) == (-15, "cold", Stage.MQL)
    assert list(scores_verify()) == []


def test_a_rescore_scoring_leads_for_the_first_time_moves_those_past_a_negative_threshold(
    db, django_capture_on_commit_callbacks
):
    # Given leads never scored (they show 0) and a model whose base score puts them at -5
    past, below = LeadFactory(country="DE"), LeadFactory(country="FR")
    model = active_model(base_score=-5, mql_threshold=-8, sql_threshold=60, surge_points=0)
    fit_rule(model, -10, "country", "equals", "FR")
    assert shown(past)[0] == shown(below)[0] == 0

    # When the model is rescored (set-based on PostgreSQL, in chunks elsewhere)
    with django_capture_on_commit_callbacks(execute=True):
        job = rescore_job_start(model=model, reason="First scoring")

    # Then the lead whose first score is -5 is an MQL; the one at -15 stays new
    assert RescoreJob.objects.get(pk=job.pk).status == RescoreStatus.DONE
    assert shown(past) == (-5, "cold", Stage.MQL)
    assert shown(below) == (-15, "cold", Stage.NEW)
    assert list(scores_verify()) == []

    # And rescoring again moves nobody a second time
    with django_capture_on_commit_callbacks(execute=True):
        rescore_job_start(model=model, reason="Again")
    assert past.stage_changes.count() == 1


def test_the_explanation_has_a_base_score_line_and_its_lines_add_up_to_the_score(
    client, marketer, django_capture_on_commit_callbacks
):
    # Given a decaying model with a base score of 60, an idle penalty, fit and engagement
    model = active_model(
        base_score=60, decay_half_life_days=10, idle_week_penalty=3, surge_points=0
    )
    fit_rule(model, 20, "seniority", "equals", "director")
    fit_rule(model, -5, "country", "equals", "FR")
    page_rule(model, 25, "/pricing")
    lead = LeadFactory(seniority="director", country="FR")
    visit(
        lead,
        django_capture_on_commit_callbacks,
        occurred_at=timezone.now() - timedelta(days=15, hours=3),
    )
    client.force_login(marketer)

    # When the marketer reads why the lead has its score
    body = client.get(reverse("lead-score-json", args=[lead.pk])).json()

    # Then the base score is a line of its own, and all the lines add up to the score
    part = body["models"][0]
    lines = part["positive"] + part["negative"]
    assert {"reason": "Base score", "kind": "base", "value_now": 60.0}.items() <= (
        next(line for line in lines if line["kind"] == "base").items()
    )
    assert any(line["kind"] == "idle" and line["value_now"] == -6 for line in lines)
    assert part["base_score"] == 60
    assert body["score"] == part["score"] == round(60 + 20 - 5 + 25 * 0.5**1.5 - 6)
    assert abs(sum(line["value_now"] for line in lines) - part["score"]) <= 0.5

    # And the lead page shows the line
    page = client.get(reverse("lead-detail", args=[lead.pk])).content.decode()
    assert "+60</strong> Base score" in page


def test_the_base_score_is_in_the_score_history(marketer, django_capture_on_commit_callbacks):
    model = active_model(base_score=-20, surge_points=0)
    page_rule(model, 30, "/pricing")
    lead = LeadFactory()
    visit(lead, django_capture_on_commit_callbacks)

    body = token_client(marketer).get(f"/api/v1/leads/{lead.pk}/score/").json()

    assert body["score"] == 10
    assert body["models"][0]["history"][-1]["score"] == 10

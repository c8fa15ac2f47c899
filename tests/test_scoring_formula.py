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
from scoring.lead_scoring import leads_score
from scoring.models import ChangeLog, RescoreJob, RescoreStatus, ScoringModel
from scoring.reactions import crossed
from scoring.rescore_jobs import rescore_job_start
from scoring.score_formula import Thresholds, grade_for, quadrant_for, shown_parts, total_score
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


@pytest.mark.parametrize(
    ("fit", "engagement", "thresholds", "expected"),
    [
        (10, 5, Thresholds(base=-20), -5),
        (10, 5, Thresholds(base=60), 75),
        (35, 80.4, Thresholds(fit_cap=20, engagement_cap=50), 70),
        (-15, 80.4, Thresholds(base=5, fit_cap=20, engagement_cap=50), 40),  # no floor
        (35, 80, Thresholds(base=10, fit_cap=30, engagement_cap=50, max_points=75), 75),
        (19.6, 0.2, Thresholds(fit_cap=20), 20),
    ],
)
def test_the_score_is_the_base_plus_fit_and_engagement_each_up_to_its_cap(
    fit, engagement, thresholds, expected
):
    assert total_score(fit, engagement, thresholds) == expected


def test_grades_and_quadrants_read_fit_and_engagement_as_capped():
    thresholds = Thresholds(grade_a=60, grade_b=40, engaged=30, fit_cap=45, engagement_cap=25)

    assert grade_for(90, thresholds) == "B"
    assert quadrant_for(90, 200, thresholds) == "target"
    assert shown_parts(90, 200, thresholds) == (45, 25)
    assert shown_parts(-10, 3.5, thresholds) == (-10, 3.5)


@pytest.mark.parametrize(
    ("base", "fit_cap", "engagement_cap", "expected"),
    [(0, None, None, (50, 50)), (15, None, None, (42, 43)), (20, 30, None, (30, 50))],
)
def test_a_0_to_100_scale_shares_what_the_base_score_leaves_between_the_caps(
    base, fit_cap, engagement_cap, expected
):
    model = ScoringModel(base_score=base, fit_cap=fit_cap, engagement_cap=engagement_cap)

    model.scale_to_100()

    assert (model.fit_cap, model.engagement_cap, model.max_points) == (*expected, 100)
    assert model.highest_score() == 100


def test_a_model_without_both_caps_or_a_maximum_has_no_highest_score():
    assert ScoringModel(fit_cap=20).highest_score() is None
    assert ScoringModel(base_score=-5, fit_cap=20, engagement_cap=30).highest_score() == 45
    assert ScoringModel(fit_cap=20, engagement_cap=30, max_points=40).highest_score() == 40


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


# --- B. Caps on fit and engagement, the 0-100 scale, the quadrant's words --------------------


def capped_model(**fields: Any) -> ScoringModel:
    """+30 for Germany, +25 per pricing visit: a German lead with three visits earns 105."""
    model = active_model(surge_points=0, **fields)
    fit_rule(model, 30, "country", "equals", "DE")
    page_rule(model, 25, "/pricing")
    return model


def busy_lead(capture) -> Lead:
    lead = LeadFactory(country="DE")
    with capture(execute=True):
        activities_record(
            lead=lead,
            activities=[
                Activity(
                    type="page_view",
                    url="/pricing",
                    occurred_at=timezone.now() - timedelta(hours=h),
                )
                for h in (1, 2, 3)
            ],
        )
    lead.refresh_from_db()
    return lead


def test_caps_set_in_the_admin_bound_fit_and_engagement_and_rescore_the_model(
    client, marketer, django_capture_on_commit_callbacks
):
    # Given a lead scoring 30 fit + 75 engagement = 105, hot, grade A
    model = capped_model(
        hot_from=65, sql_threshold=70, grade_a_from=20, grade_b_from=15, grade_c_from=5
    )
    lead = busy_lead(django_capture_on_commit_callbacks)
    assert (lead.score, lead.fit_score, lead.engagement_score, lead.grade) == (105, 30, 75, "A")
    client.force_login(marketer)

    # When the marketer caps fit at 20 and engagement at 50
    response = admin_save(
        client, model, django_capture_on_commit_callbacks, fit_cap="20", engagement_cap="50"
    )

    # Then the model was rescored and the lead counts 20 + 50
    assert response.status_code == 302, response.context["adminform"].form.errors
    lead.refresh_from_db()
    assert (lead.score, lead.fit_score, lead.engagement_score) == (70, 20, 50)
    assert (lead.band, lead.grade) == ("hot", "A")
    assert RescoreJob.objects.get(model=model).status == RescoreStatus.DONE
    change = ChangeLog.objects.filter(object_type="scoringmodel").latest("pk")
    assert (change.before["engagement_cap"], change.after["engagement_cap"]) == (None, 50)
    assert list(scores_verify()) == []

    # And the explanation says so, its lines still adding up to the score
    body = client.get(reverse("lead-score-json", args=[lead.pk])).json()
    part = body["models"][0]
    lines = part["positive"] + part["negative"]
    caps = {line["reason"]: line["value_now"] for line in lines if line["kind"] == "cap"}
    assert caps == {"Fit capped at 20": -10, "Engagement capped at 50": -25}
    assert (part["fit"], part["engagement"]) == (20, 50)
    assert sum(line["value_now"] for line in lines) == part["score"] == 70


def test_thresholds_and_boundaries_beyond_the_caps_are_field_errors_in_the_api(marketer):
    model = capped_model()
    api = token_client(marketer)

    # Caps of 20 and 30 over a base of 5: no lead scores above 55
    response = api.patch(
        f"{MODELS}{model.pk}/",
        {"base_score": 5, "fit_cap": 20, "engagement_cap": 30},
        format="json",
    )

    assert response.status_code == 400
    fields = error_of(response)["fields"]
    # hot from 80 and SQL from 90 are out of reach; MQL 50 and warm 30 are not; grades A
    # to C (60/40/20) above the fit cap of 20, and "engaged" at 30 is within its cap
    assert set(fields) == {
        "hot_from",
        "sql_threshold",
        "grade_a_from",
        "grade_b_from",
    }
    assert "No lead can score 80: the highest score this model gives is 55" in str(
        fields["hot_from"]
    )
    model.refresh_from_db()
    assert (model.fit_cap, model.engagement_cap, model.base_score) == (None, None, 0)

    # With the boundaries brought within reach the same caps are saved
    response = api.patch(
        f"{MODELS}{model.pk}/",
        {
            "base_score": 5,
            "fit_cap": 20,
            "engagement_cap": 30,
            "hot_from": 45,
            "sql_threshold": 55,
            "grade_a_from": 20,
            "grade_b_from": 12,
            "grade_c_from": 5,
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert (response.json()["fit_cap"], response.json()["engagement_cap"]) == (20, 30)


def test_a_0_to_100_scale_through_the_api_and_the_admin(
    client, marketer, django_capture_on_commit_callbacks
):
    model = capped_model(grade_a_from=40, grade_b_from=30, grade_c_from=10)
    lead = busy_lead(django_capture_on_commit_callbacks)
    api = token_client(marketer)

    # A base score outside 0-100 cannot be put on the scale
    response = api.patch(
        f"{MODELS}{model.pk}/", {"scale_0_100": True, "base_score": -10}, format="json"
    )
    assert response.status_code == 400
    assert "base_score" in error_of(response)["fields"]

    # With a base score of 10 the caps share the other 90 and the score stops at 100
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(
            f"{MODELS}{model.pk}/", {"scale_0_100": True, "base_score": 10}, format="json"
        )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["fit_cap"], body["engagement_cap"], body["max_points"]) == (45, 45, 100)
    assert "scale_0_100" not in body
    lead.refresh_from_db()
    assert lead.score == 10 + 30 + 45

    # In the admin, a cap already set is kept and the other takes the rest
    client.force_login(marketer)
    other = capped_model(name="Other", is_default=False, grade_a_from=40, grade_b_from=30)
    response = admin_save(
        client,
        other,
        django_capture_on_commit_callbacks,
        scale_0_100="on",
        fit_cap="40",
        engagement_cap="",
    )
    assert response.status_code == 302
    other.refresh_from_db()
    assert (other.fit_cap, other.engagement_cap, other.max_points) == (40, 60, 100)


def test_the_admin_shows_a_threshold_beyond_the_caps_as_a_field_error_and_stores_nothing(
    client, marketer, django_capture_on_commit_callbacks
):
    model = capped_model()
    client.force_login(marketer)

    response = admin_save(
        client,
        model,
        django_capture_on_commit_callbacks,
        fit_cap="30",
        engagement_cap="30",
        grade_a_from="30",
        grade_b_from="20",
        grade_c_from="10",
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"hot_from", "sql_threshold"}
    model.refresh_from_db()
    assert model.fit_cap is None
    assert not RescoreJob.objects.exists()


def test_the_quadrant_is_shown_in_words_other_than_the_bands(
    client, marketer, django_capture_on_commit_callbacks
):
    # Given a good fit who is engaged (stored as the quadrant "hot")
    capped_model(grade_b_from=20)
    lead = busy_lead(django_capture_on_commit_callbacks)
    assert lead.quadrant == "hot"
    client.force_login(marketer)

    # When the lead page is shown, the quadrant reads "Prime", not "Hot"
    page = client.get(reverse("lead-detail", args=[lead.pk])).content.decode()
    assert "Prime (good fit, engaged)" in page
    assert "Hot (good fit" not in page


def test_rule_effectiveness_flags_a_points_for_everyone_rule_but_not_the_base_score(marketer):
    # Given twenty closed leads, half won, scored by a model that gives everyone +60 by a
    # rule, and by one that gives the same as its base score
    import datetime as dt

    from leads.deals import deal_save
    from leads.models import Deal
    from reports.queries import rule_effectiveness
    from reports.scope import ReportFilterForm, scope_from
    from scoring.models import LeadScore, ScoreEntry

    start = dt.datetime(2025, 5, 5, 9, 0, tzinfo=dt.UTC)
    by_rule = active_model(name="By rule")
    everyone = fit_rule(by_rule, 60, "email", "contains", "@", name="Everyone")
    by_base = active_model(name="By base", is_default=False, base_score=60)
    for n in range(20):
        lead = Lead.objects.create(
            email=f"l{n}@example.com", created_at=start + dt.timedelta(hours=n)
        )
        for model in (by_rule, by_base):
            LeadScore.objects.create(lead=lead, model=model, is_primary=model is by_rule)
        ScoreEntry.objects.create(
            lead=lead,
            model=by_rule,
            rule=everyone,
            kind="fit",
            points=60,
            reason="Everyone",
            at=lead.created_at,
        )
        deal_save(
            deal=Deal(
                lead=lead,
                name=f"L{n}",
                amount=100,
                status="won" if n % 2 else "lost",
                created_at=lead.created_at,
                closed_at=lead.created_at + dt.timedelta(days=3),
            )
        )
    form = ReportFilterForm({"date_from": "2025-05-01", "date_to": "2025-05-31"}, user=marketer)
    assert form.is_valid(), form.errors

    # When rule effectiveness weighs each model's rules
    rows = {
        model.name: rule_effectiveness.rule_rows(scope_from(form), model)["rules"]
        for model in (by_rule, by_base)
    }

    # Then the rule is to prune, as it sets nobody apart; the base score is no rule at all
    (rule_row,) = rows["By rule"]
    assert rule_row["verdict"] == "prune"
    assert rows["By base"] == []


def test_the_preview_of_a_draft_version_scores_with_its_base_score_and_caps(
    client, marketer, django_capture_on_commit_callbacks
):
    from scoring.changes import model_duplicate

    # Given a live model scoring three leads 0, 10 and 105 (MQL from 50, hot from 80)
    live = capped_model()
    leads = [LeadFactory(country="FR"), LeadFactory(country="DE")]
    leads_score(lead_ids=[lead.pk for lead in leads])
    busy = busy_lead(django_capture_on_commit_callbacks)
    assert [shown(lead)[0] for lead in (*leads, busy)] == [0, 30, 105]

    # And a draft version of it with a base score of 25 and engagement capped at 40
    draft = model_duplicate(model=live)
    ScoringModel.objects.filter(pk=draft.pk).update(base_score=25, engagement_cap=40)
    client.force_login(marketer)

    # When the marketer previews the draft
    response = client.get(admin_url("preview", draft.pk))

    # Then the 0 reaches 25 (still cold), the 30 reaches 55 (still warm, past MQL) and
    # the 105 counts 95 (an SQL already); the live scores are untouched
    text = " ".join(response.content.decode().split())
    assert "scored 3 leads without saving anything" in text
    assert "0 would change band and 1 would change stage" in text
    assert [shown(lead)[0] for lead in (*leads, busy)] == [0, 30, 105]

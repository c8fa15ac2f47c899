"""Suggested weights: a logistic fit on the closed leads proposes points, flags duplicate,
confounded and thinly matched rules in words, and turns into a draft to preview."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from leads.models import Activity, ActivityType, Deal, DealStatus, Lead
from scoring.lead_sets import segment_leads
from scoring.models import ChangeLog, LeadScore, ModelStatus, Rule, ScoreEntry, ScoringModel
from scoring.rule_matrix import closed_outcomes, rule_matrix
from scoring.suggestion_runs import model_suggestion_request
from scoring.suggestions import (
    CONFOUNDED,
    DUPLICATE,
    TOO_FEW,
    SuggestionError,
    candidate_rules,
    kept_suggestion,
    model_draft_from_suggestion,
    model_suggestion,
    suggestion_basis,
)
from scoring.tasks import suggest_weights
from tests.api_client import error_of, token_client
from tests.factories import active_model, fit_rule, page_rule

NOW = timezone.now()


def closed_lead(n: int, *, won: bool, **fields: Any) -> tuple[Lead, bool]:
    lead = Lead(email=f"lead{n}@world.example", first_name=f"F{n}", last_name=f"L{n}", **fields)
    return lead, won


def build_world(cells: list[tuple[dict[str, Any], int, int]], *, blog: bool = True) -> None:
    """Closed leads: for each cell (fields, won, lost) that many won and lost leads; each
    group reads the blog 0, 1, 2, 3, 0, … times, so reading it says nothing."""
    leads: list[tuple[Lead, bool]] = []
    for fields, won, lost in cells:
        for outcome, count in ((True, won), (False, lost)):
            start = len(leads)
            leads += [closed_lead(start + i, won=outcome, **fields) for i in range(count)]
    Lead.objects.bulk_create([lead for lead, _ in leads])
    Deal.objects.bulk_create(
        Deal(
            lead=lead,
            name="Deal",
            status=DealStatus.WON if won else DealStatus.LOST,
            closed_at=NOW,
        )
        for lead, won in leads
    )
    Lead.objects.all().refresh_facts()
    if blog:
        views, group = [], {}
        for lead, won in leads:
            key = (lead.job_title, lead.seniority, lead.country, won)
            group[key] = group.get(key, -1) + 1
            views += [
                Activity(
                    lead=lead,
                    type=ActivityType.PAGE_VIEW,
                    url="https://hotlist.example/blog/post",
                    occurred_at=NOW - timedelta(days=2, minutes=i),
                )
                for i in range(group[key] % 4)
            ]
        Activity.objects.bulk_create(views)


DIRECTOR = {"job_title": "Director of Sales", "seniority": "executive"}
OTHER = {"job_title": "Analyst", "seniority": "staff"}


def confounded_world() -> None:
    """Directors convert 70 %, everyone else 15 %, whatever else holds: the title is the
    one true signal. Executives are the directors but for 12 each way (a near duplicate);
    most leads in France are directors (its lift is the title's); the blog is noise."""
    build_world(
        [
            ({**DIRECTOR, "country": "FR"}, 196, 84),
            ({**DIRECTOR, "country": "DE"}, 75, 33),
            ({**DIRECTOR, "country": "DE", "seniority": "staff"}, 9, 3),
            ({**OTHER, "country": "FR"}, 15, 85),
            ({**OTHER, "country": "DE"}, 73, 415),
            ({**OTHER, "country": "DE", "seniority": "executive"}, 2, 10),
        ]
    )


@pytest.fixture
def model(db) -> ScoringModel:
    model = active_model(mql_threshold=50, sql_threshold=90)
    fit_rule(model, 20, "job_title", "contains", "director", name="Director")
    fit_rule(model, 20, "seniority", "equals", "executive", name="Executive")
    fit_rule(model, 20, "country", "equals", "FR", name="In France")
    blog = page_rule(model, 5, "/blog", max_per_lead=2)
    Rule.objects.filter(pk=blog.pk).update(name="Reads the blog")
    return model


def rows_by_name(suggestion) -> dict[str, Any]:
    return {row.name: row for row in suggestion.rules}


def test_the_true_rule_gets_the_most_points_and_the_others_are_named_in_words(model):
    confounded_world()

    suggestion = model_suggestion(model=model)

    rows = rows_by_name(suggestion)
    assert suggestion.ready, suggestion.message
    assert (suggestion.won, suggestion.lost) == (370, 630)
    ranked = [row.name for row in suggestion.rules]
    assert ranked[0] == "Director"
    assert rows["Director"].suggested_points >= 40
    executive = rows["Executive"]
    assert executive.suggested_points == 0
    assert [flag.code for flag in executive.flags] == [DUPLICATE]
    assert "“Director”" in executive.flags[0].text
    france = rows["In France"]
    assert [flag.code for flag in france.flags] == [CONFOUNDED]
    assert "“Director”" in france.flags[0].text
    assert france.lift.value > 2
    assert abs(france.suggested_points) <= 3
    blog = rows["Reads the blog"]
    assert abs(blog.suggested_points) <= 2
    assert not blog.flags
    assert not rows["Director"].flags


def test_the_single_rule_lift_stands_beside_each_suggestion(model):
    confounded_world()

    rows = rows_by_name(model_suggestion(model=model))

    # 280 of the 400 directors won, 90 of the 600 others.
    director = rows["Director"]
    assert (director.matched, director.won) == (400, 280)
    assert director.lift.value == pytest.approx((280 / 400) / (90 / 600))
    assert director.current_points == 20


def test_below_the_minimum_of_closed_leads_nothing_is_proposed(model, settings):
    settings.SCORING_SUGGEST_MIN_CLOSED = 30
    build_world([(DIRECTOR, 20, 10), (OTHER, 2, 45)], blog=False)

    suggestion = model_suggestion(model=model)

    assert not suggestion.ready
    assert suggestion.rules == []
    assert (suggestion.won, suggestion.lost, suggestion.needed_won) == (22, 55, 8)
    assert suggestion.needed_lost == 0
    assert "8 more won leads needed" in suggestion.message
    with pytest.raises(SuggestionError, match="8 more won leads"):
        model_draft_from_suggestion(model=model, by=None, suggestion=suggestion)
    assert ScoringModel.objects.count() == 1


def test_a_changed_rule_is_weighed_afresh(model):
    confounded_world()
    model_suggestion(model=model)
    rule = model.rules.get(name="In France")
    rule.points = 7
    rule.save()

    rows = rows_by_name(model_suggestion(model=model))

    assert rows["In France"].current_points == 7


def test_a_rule_matching_too_few_closed_leads_keeps_its_points(model):
    confounded_world()
    fit_rule(model, 15, "city", "equals", "Lyon", name="In Lyon")
    Lead.objects.filter(pk__in=Lead.objects.order_by("pk")[:3].values("pk")).update(city="Lyon")

    rows = rows_by_name(model_suggestion(model=model))

    lyon = rows["In Lyon"]
    assert lyon.suggested_points == 15
    assert [flag.code for flag in lyon.flags] == [TOO_FEW]
    assert "only 3 of the 1000 closed leads" in lyon.flags[0].text


def test_the_draft_gets_the_suggested_points_and_the_live_model_is_untouched(model, marketer):
    confounded_world()
    live_rules = list(model.rules.values("pk", "points", "active"))
    suggestion = model_suggestion(model=model)
    entries = ScoreEntry.objects.count()

    draft = model_draft_from_suggestion(model=model, by=marketer, suggestion=suggestion)

    assert draft.status == ModelStatus.DRAFT
    assert draft.version_of_id == model.pk
    rules = {rule.name: rule for rule in draft.rules.all()}
    for row in suggestion.rules:
        rule = rules[row.name]
        if row.switched_off:
            assert not rule.active
        else:
            assert (rule.active, rule.points) == (True, row.suggested_points)
    assert not rules["Executive"].active
    assert rules["Executive"].points == 20  # 0 is no rule's points: it is switched off
    assert list(model.rules.values("pk", "points", "active")) == live_rules
    assert ScoreEntry.objects.count() == entries
    assert not LeadScore.objects.filter(model=draft).exists()
    logged = ChangeLog.objects.filter(object_type="rule", action="change", by=marketer)
    assert logged.count() == sum(row.changed for row in suggestion.rules)
    assert "370 won and 630 lost" in draft.description


@pytest.mark.django_db
def test_the_python_matrix_equals_the_set_based_one(model):
    """The embedded database's path (the pure rule functions) gives the matrix that the
    set-based SQL gives on PostgreSQL."""
    from django.db import connection

    from scoring import rule_matrix as matrices

    if connection.vendor != "postgresql":
        pytest.skip("compares with the PostgreSQL statements")
    confounded_world()
    page_rule(model, 3, "/blog/", max_per_day=1, bonus_count=2, bonus_points=4)
    page_rule(model, 2, "/blog", recency_days=1)
    ruleset, _ = candidate_rules(model)
    lead_ids, won = closed_outcomes(segment_leads(model))
    sql = rule_matrix(lead_ids=lead_ids, won=won, ruleset=ruleset, now=timezone.now())
    python = np.zeros_like(sql.values)
    rules = sql.rules
    matrices._fill_python(python, lead_ids, rules, ruleset, timezone.now())

    assert np.array_equal(sql.values, python)
    counted = {rule.id: sql.values[:, i] for i, rule in enumerate(rules)}
    blog, daily, recent = (r.id for r in ruleset.models[0].engagement_rules)
    assert counted[blog].max() == 2  # at most 2 per lead
    assert counted[daily].max() == 1  # at most 1 a day, the views all on one day
    assert counted[recent].max() == 0  # the views are two days old


# --- The admin and the API -------------------------------------------------------------


def suggestions_url(model: ScoringModel) -> str:
    return reverse("admin:scoring_scoringmodel_suggested_weights", args=[model.pk])


def api_url(model: ScoringModel, tail: str = "") -> str:
    return f"/api/v1/scoring-models/{model.pk}/suggested-weights/{tail}"


def page_text(response) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", response.content.decode())).split())


def rules_state() -> list[dict[str, Any]]:
    return list(Rule.objects.order_by("pk").values("pk", "model_id", "points", "active"))


def test_the_admin_links_the_suggestion_and_shows_it_in_words(
    client, model, marketer, django_capture_on_commit_callbacks
):
    confounded_world()
    client.force_login(marketer)

    change = client.get(reverse("admin:scoring_scoringmodel_change", args=[model.pk]))
    # The fit runs on the bulk queue: the page says so and reloads itself meanwhile
    with django_capture_on_commit_callbacks(execute=True):
        computing = client.get(suggestions_url(model))
    page = client.get(suggestions_url(model))

    assert f'href="{suggestions_url(model)}"' in change.content.decode()
    assert computing.status_code == 202
    assert "Computing… the weights are fitted in the background" in page_text(computing)
    assert '<meta http-equiv="refresh" content="3">' in computing.content.decode()
    assert page.status_code == 200
    assert 'http-equiv="refresh"' not in page.content.decode()
    text = page_text(page)
    assert "370 won against 630 lost leads" in text
    assert Rule.objects.get(name="Director").describe() in text
    assert "Matches nearly the same closed leads as “Director”" in text
    assert "Its single-rule lift is confounded" in text
    assert "4.67 (3.82 to 5.71)" in text  # the director's single-rule lift beside it
    assert "Make a draft with these weights" in text


def test_the_admin_button_makes_a_draft_with_the_weights(
    client, model, marketer, django_capture_on_commit_callbacks
):
    confounded_world()
    client.force_login(marketer)
    live = rules_state()
    with django_capture_on_commit_callbacks(execute=True):
        client.get(suggestions_url(model))  # the weights fitted and shown

    response = client.post(suggestions_url(model))

    draft = ScoringModel.objects.get(version_of=model)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:scoring_scoringmodel_change", args=[draft.pk])
    director = draft.rules.get(name="Director")
    assert director.points >= 40
    assert not draft.rules.get(name="Executive").active
    assert [r for r in rules_state() if r["model_id"] == model.pk] == live


def test_the_admin_says_how_many_more_closed_leads_are_needed(client, model, marketer):
    build_world([(DIRECTOR, 20, 10), (OTHER, 2, 45)], blog=False)
    client.force_login(marketer)

    page = client.get(suggestions_url(model))
    posted = client.post(suggestions_url(model), follow=True)

    assert "8 more won leads needed" in page_text(page)
    assert "Make a draft" not in page_text(page)
    assert "8 more won leads needed" in page_text(posted)
    assert ScoringModel.objects.count() == 1


@pytest.mark.parametrize("role", ["rep", "manager", "outsider"])
def test_the_admin_page_refuses_who_may_not_change_models(request, client, model, role):
    confounded_world()
    user = request.getfixturevalue(role)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client.force_login(user)
    before = (rules_state(), ScoringModel.objects.count(), ChangeLog.objects.count())

    opened = client.get(suggestions_url(model))
    posted = client.post(suggestions_url(model))

    assert (opened.status_code, posted.status_code) == (403, 403)
    assert (rules_state(), ScoringModel.objects.count(), ChangeLog.objects.count()) == before


def test_the_api_answers_202_while_the_fit_runs_then_the_suggestion(
    model, marketer, django_capture_on_commit_callbacks
):
    confounded_world()
    client = token_client(marketer)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        first = client.get(api_url(model))
        again = client.get(api_url(model))

    # One fit queued on the bulk queue, however often it is asked for meanwhile
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["status"] == "computing"
    assert first.json()["since"] == again.json()["since"]
    assert len(queued) == 1
    queued[0]()  # the task runs (eagerly) as a bulk worker would

    response = client.get(api_url(model))

    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert (body["won"], body["lost"]) == (370, 630)
    rules = {row["name"]: row for row in body["rules"]}
    assert body["rules"][0]["name"] == "Director"
    assert rules["Director"]["lift"] == pytest.approx(280 / 400 / (90 / 600))
    assert [flag["code"] for flag in rules["Executive"]["flags"]] == ["duplicate"]
    assert [flag["code"] for flag in rules["In France"]["flags"]] == ["confounded"]
    assert rules["Executive"]["suggested_points"] == 0


def test_the_studio_says_computing_and_asks_again_until_the_fit_is_kept(
    client, model, marketer, django_capture_on_commit_callbacks
):
    confounded_world()
    client.force_login(marketer)
    url = reverse("studio-suggestions", args=[model.pk])

    with django_capture_on_commit_callbacks(execute=True):
        computing = client.get(url, HTTP_HX_REQUEST="true")
    ready = client.get(url, HTTP_HX_REQUEST="true")
    page = client.get(url)

    assert computing.status_code == 202
    assert "Computing… the weights are fitted in the background" in page_text(computing)
    body = computing.content.decode()
    assert f'hx-get="{url}" hx-trigger="load delay:2s" hx-target="#suggestions"' in body
    assert ready.status_code == 200
    assert "370 won against 630 lost leads" in page_text(ready)
    assert "Computing" not in page_text(ready)
    assert page.status_code == 200
    assert "Make a draft with these weights" in page_text(page)


def test_the_weights_task_keeps_the_fit_and_a_missing_model_is_a_no_op(model, marketer):
    confounded_world()
    basis = suggestion_basis(model=model)

    suggest_weights.delay(model.pk + 1000, basis.key)
    assert kept_suggestion(key=basis.key) is None
    suggest_weights.delay(model.pk, basis.key)

    kept = kept_suggestion(key=basis.key)
    assert kept is not None
    assert (kept.won, kept.lost) == (370, 630)
    assert model_suggestion_request(model=model).suggestion == kept


def test_a_failed_fit_is_told_on_the_next_request_which_queues_it_again(
    model, marketer, monkeypatch, django_capture_on_commit_callbacks
):
    confounded_world()
    client = token_client(marketer)

    def broken(**kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr("scoring.suggestions.rule_matrix", broken)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        client.get(api_url(model))
    with pytest.raises(MemoryError):
        queued[0]()
    with django_capture_on_commit_callbacks(execute=False) as queued_again:
        told = client.get(api_url(model))

    assert told.status_code == 202
    assert told.json()["error"] == "The fit failed: out of memory"
    assert len(queued_again) == 1


def test_the_api_makes_a_draft_with_the_weights(
    model, marketer, django_capture_on_commit_callbacks
):
    confounded_world()
    live = rules_state()
    client = token_client(marketer)
    with django_capture_on_commit_callbacks(execute=True):
        client.get(api_url(model))  # the weights fitted and read

    response = client.post(api_url(model, "draft/"))

    assert response.status_code == 201
    draft = ScoringModel.objects.get(pk=response.json()["id"])
    assert response.json()["version_of"] == model.pk
    assert response.json()["status"] == "draft"
    assert draft.rules.get(name="Director").points >= 40
    assert [r for r in rules_state() if r["model_id"] == model.pk] == live


def test_the_api_refuses_a_draft_without_enough_closed_leads(model, marketer):
    build_world([(DIRECTOR, 20, 10), (OTHER, 2, 45)], blog=False)
    client = token_client(marketer)

    read = client.get(api_url(model))
    made = client.post(api_url(model, "draft/"))

    assert read.status_code == 200
    assert read.json()["ready"] is False
    assert read.json()["needed_won"] == 8
    assert made.status_code == 409
    assert "8 more won leads" in error_of(made)["message"]
    assert ScoringModel.objects.count() == 1


@pytest.mark.parametrize("role", ["rep", "manager", "outsider"])
def test_the_api_refuses_who_may_not_change_models(request, model, role):
    confounded_world()
    client = token_client(request.getfixturevalue(role))
    before = (rules_state(), ScoringModel.objects.count(), ChangeLog.objects.count())

    read = client.get(api_url(model))
    made = client.post(api_url(model, "draft/"))

    assert (read.status_code, made.status_code) == (403, 403)
    assert (rules_state(), ScoringModel.objects.count(), ChangeLog.objects.count()) == before


# --- A draft asked for once the kept suggestion is gone ----------------------------------


@pytest.fixture
def fits(monkeypatch) -> list[int]:
    """The fits of suggested weights (each reads the rule matrix of the closed leads)."""
    counted: list[int] = []

    def counting(**kwargs):
        counted.append(kwargs["ruleset"].models[0].id)
        return rule_matrix(**kwargs)

    monkeypatch.setattr("scoring.suggestions.rule_matrix", counting)
    return counted


def shown_then_expired(client, url: str, model: ScoringModel, capture) -> None:
    """The weights fitted (by the task) and shown with the button; then, as
    ``CACHE_SECONDS`` after the fit, no longer kept."""
    with capture(execute=True):
        client.get(url)
    assert client.get(url).status_code == 200
    cache.delete(suggestion_basis(model=model).key)


def drafts_of(model: ScoringModel) -> int:
    return ScoringModel.objects.filter(version_of=model).count()


def test_the_studio_fits_expired_weights_again_in_the_background_then_drafts_them(
    client, model, marketer, fits, django_capture_on_commit_callbacks
):
    confounded_world()
    client.force_login(marketer)
    page = reverse("studio-suggestions", args=[model.pk])
    draft_url = reverse("studio-suggestions-draft", args=[model.pk])
    shown_then_expired(client, page, model, django_capture_on_commit_callbacks)
    fitted = len(fits)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        asked = client.post(draft_url)
        followed = client.get(asked["Location"])

    # No fit in the request and no draft: the fit queued once, and the page follows it
    assert len(fits) == fitted
    assert drafts_of(model) == 0
    assert asked.status_code == 302
    assert asked["Location"] == page
    assert followed.status_code == 202
    text = page_text(followed)
    assert "they are being fitted again on the closed leads as they are now" in text
    assert "Computing… the weights are fitted in the background" in text
    assert "Make a draft with these weights" not in text
    assert len(queued) == 1
    queued[0]()  # the bulk worker fits them
    assert len(fits) == fitted + 1
    shown = client.get(page)
    assert shown.status_code == 200
    assert "Make a draft with these weights" in page_text(shown)

    made = client.post(draft_url)

    draft = ScoringModel.objects.get(version_of=model)
    assert made["Location"] == reverse("studio-model", args=[draft.pk])
    assert len(fits) == fitted + 1


def test_the_admin_fits_expired_weights_again_in_the_background_then_drafts_them(
    client, model, marketer, fits, django_capture_on_commit_callbacks
):
    confounded_world()
    client.force_login(marketer)
    url = suggestions_url(model)
    shown_then_expired(client, url, model, django_capture_on_commit_callbacks)
    fitted = len(fits)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        asked = client.post(url)
        followed = client.get(asked["Location"])

    assert len(fits) == fitted
    assert drafts_of(model) == 0
    assert (asked.status_code, asked["Location"]) == (302, url)
    assert followed.status_code == 202
    assert '<meta http-equiv="refresh" content="3">' in followed.content.decode()
    assert "they are being fitted again on the closed leads as they are now" in page_text(followed)
    assert len(queued) == 1
    queued[0]()

    made = client.post(url)

    draft = ScoringModel.objects.get(version_of=model)
    assert made["Location"] == reverse("admin:scoring_scoringmodel_change", args=[draft.pk])
    assert len(fits) == fitted + 1


def test_the_api_answers_202_for_a_draft_of_expired_weights_then_makes_it(
    model, marketer, fits, django_capture_on_commit_callbacks
):
    confounded_world()
    client = token_client(marketer)
    with django_capture_on_commit_callbacks(execute=True):
        client.get(api_url(model))
    assert client.get(api_url(model)).status_code == 200
    cache.delete(suggestion_basis(model=model).key)
    fitted = len(fits)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        first = client.post(api_url(model, "draft/"))
        again = client.post(api_url(model, "draft/"))
        read = client.get(api_url(model))

    # One fit queued, joined by the second ask and by reading the weights meanwhile
    assert len(fits) == fitted
    assert drafts_of(model) == 0
    assert (first.status_code, again.status_code, read.status_code) == (202, 202, 202)
    assert first.json()["status"] == "computing"
    assert first.json()["since"] == again.json()["since"] == read.json()["since"]
    assert first["Location"] == f"http://testserver{api_url(model)}"
    assert len(queued) == 1
    queued[0]()

    made = client.post(api_url(model, "draft/"))

    assert made.status_code == 201
    assert made.json()["version_of"] == model.pk
    assert len(fits) == fitted + 1


def test_a_draft_asked_for_while_the_weights_are_fitted_joins_that_fit(
    client, model, marketer, fits, django_capture_on_commit_callbacks
):
    confounded_world()
    client.force_login(marketer)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        opened = client.get(reverse("studio-suggestions", args=[model.pk]))
        asked = client.post(reverse("studio-suggestions-draft", args=[model.pk]))

    assert opened.status_code == 202
    assert asked.status_code == 302
    assert len(queued) == 1
    assert fits == []
    assert drafts_of(model) == 0


def test_the_schema_documents_the_202_of_a_draft_of_expired_weights(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/api/v1/scoring-models/{id}/suggested-weights/draft/"]["post"]
    assert {"201", "202", "409"} <= set(operation["responses"])
    assert "no draft is made" in operation["description"]

"""The marketers' scoring admin: models with inline rules, rescoring, actions, preview, audit."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from leads.deals import deal_save
from leads.models import ActivityType, Deal, DealStatus, Lead, ProductLine
from scoring.lead_scoring import leads_score
from scoring.models import (
    ChangeLog,
    LeadScore,
    ModelStatus,
    RescoreJob,
    RescoreStatus,
    Rule,
    RuleKind,
    ScoreEntry,
    ScoringModel,
)
from scoring.verification import scores_verify
from tests.admin_forms import changeform_data, inline_key
from tests.factories import ActivityFactory, LeadFactory

PRICING = "https://hotlist.example/pricing"
# Two UTC days in the past, at an hour far from midnight, for the once-a-day cap.
DAY1 = (timezone.now() - timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
DAY2 = DAY1 + timedelta(days=1)


def url(view: str, *args: Any) -> str:
    return reverse(f"admin:scoring_scoringmodel_{view}", args=args)


def page_text(response) -> str:
    """The page as a person reads it: each tag a space, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", response.content.decode())).split())


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (ScoringModel, Rule, ChangeLog, RescoreJob, ScoreEntry, LeadScore)
    }


# --- Building models, rules and leads -----------------------------------------------------


def make_model(name: str, status: str = ModelStatus.ACTIVE, **fields: Any) -> ScoringModel:
    values = {"is_default": True, "surge_points": 0, **fields}
    return ScoringModel.objects.create(name=name, status=status, **values)


class Rules:
    """A model with a fit rule (+10 for Germany) and two engagement rules."""

    def __init__(self, model: ScoringModel) -> None:
        self.model = model
        self.country = Rule.objects.create(
            model=model,
            name="In Germany",
            kind=RuleKind.FIT,
            points=10,
            field="country",
            operator="equals",
            value="DE",
        )
        self.pricing = Rule.objects.create(
            model=model,
            name="Pricing page",
            kind=RuleKind.ENGAGEMENT,
            points=25,
            activity_type=ActivityType.PAGE_VIEW,
            target="url",
            pattern="/pricing",
            max_per_day=1,
        )
        self.demo = Rule.objects.create(
            model=model,
            name="Demo request",
            kind=RuleKind.ENGAGEMENT,
            points=40,
            activity_type=ActivityType.DEMO_REQUEST,
        )


def lead_with(*, country: str = "DE", pricing_days: int = 0, demo: bool = False) -> Lead:
    """A lead with pricing-page views on ``pricing_days`` days (twice on the first) and a demo."""
    lead = LeadFactory(country=country)
    for day in (DAY1, DAY2)[:pricing_days]:
        ActivityFactory(lead=lead, url=PRICING, occurred_at=day)
    if pricing_days:
        ActivityFactory(lead=lead, url=PRICING, occurred_at=DAY1 + timedelta(hours=2))
    if demo:
        ActivityFactory(lead=lead, type=ActivityType.DEMO_REQUEST, url="", occurred_at=DAY2)
    return lead


def scores(*leads: Lead) -> list[int]:
    return [Lead.objects.get(pk=lead.pk).score for lead in leads]


@pytest.fixture
def live(db) -> Rules:
    return Rules(make_model("Standard"))


# --- Posting the admin forms ----------------------------------------------------------------


RULE_DEFAULTS = {"active": "on", "match": "contains", "bonus_points": "0"}
FIT_RULE = {
    "name": "Heads of department",
    "kind": RuleKind.FIT,
    "points": "20",
    "field": "job_title",
    "operator": "contains",
    "value": "head",
}
PRICING_RULE = {
    "name": "Pricing page",
    "kind": RuleKind.ENGAGEMENT,
    "points": "25",
    "activity_type": ActivityType.PAGE_VIEW,
    "target": "url",
    "match": "contains",
    "pattern": "/pricing",
    "max_per_day": "1",
}


_EMPTY_ADD_FORM: dict[str, Any] = {}


def add_form(client, *rules: dict[str, str], **fields: str) -> dict[str, Any]:
    """The add form as the page renders it, filled in with ``fields`` and inline ``rules``.

    The empty add page is the same for every test, so it is rendered once.
    """
    if not _EMPTY_ADD_FORM:
        _EMPTY_ADD_FORM.update(changeform_data(client.get(url("add"))))
    data = {**_EMPTY_ADD_FORM, "name": "Inbound", **fields}
    data["rules-TOTAL_FORMS"] = str(len(rules))
    for i, rule in enumerate(rules):
        data.update({f"rules-{i}-{key}": value for key, value in {**RULE_DEFAULTS, **rule}.items()})
    return data


def change_form(client, model: ScoringModel) -> dict[str, Any]:
    return changeform_data(client.get(url("change", model.pk)))


def rule_key(data: dict[str, Any], rule: Rule, name: str) -> str:
    """The POST key of one field of ``rule``'s row on its model's page."""
    return inline_key(data, "rules-", rule.pk, name)


def post_change(client, model: ScoringModel, data: dict[str, Any], capture) -> Any:
    """Save the change form; the rescore queued for after commit runs (Celery is eager)."""
    with capture(execute=True):
        return client.post(url("change", model.pk), data)


def run_action(client, action: str, models: list[ScoringModel], capture) -> Any:
    with capture(execute=True):
        return client.post(
            url("changelist"),
            {"action": action, "_selected_action": [str(m.pk) for m in models]},
        )


# --- 1. Creating a model with its rules -------------------------------------------------------


def test_marketer_creates_a_model_with_inline_rules_shown_as_sentences(client, marketer):
    # Given a marketer on the add form
    client.force_login(marketer)

    # When they save a model with one fit rule and one engagement rule
    response = client.post(url("add"), add_form(client, FIT_RULE, PRICING_RULE))

    # Then the model and both rules exist as entered
    assert response.status_code == 302, response.context and response.context["errors"]
    model = ScoringModel.objects.get(name="Inbound")
    assert model.status == ModelStatus.DRAFT
    rules = {rule.name: rule for rule in model.rules.all()}
    assert set(rules) == {"Heads of department", "Pricing page"}
    fit, pricing = rules["Heads of department"], rules["Pricing page"]
    assert (fit.kind, fit.points, fit.field, fit.operator, fit.value) == (
        "fit",
        20,
        "job_title",
        "contains",
        "head",
    )
    assert (pricing.activity_type, pricing.target, pricing.pattern, pricing.max_per_day) == (
        "page_view",
        "url",
        "/pricing",
        1,
    )
    # And a draft queues no rescore
    assert not RescoreJob.objects.exists()

    # And the change page reads each rule as a sentence
    page = client.get(url("change", model.pk))
    assert page.status_code == 200
    assert "+20 when job title contains head" in page_text(page)
    assert "+25 when a page view URL contains /pricing, at most once a day" in page_text(page)


# --- 2. Bad rules and thresholds are refused ----------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {**FIT_RULE, "operator": "regex", "value": "([a-z"},
            "“([a-z” is not a valid regular expression",
        ),
        (
            {**FIT_RULE, "operator": "gt", "value": "5"},
            "“is more than” does not fit a text field",
        ),
        (
            {**FIT_RULE, "field": "favourite_colour"},
            "Select a valid choice. favourite_colour is not one of the available choices.",
        ),
        ({**PRICING_RULE, "pattern": ""}, "Give the text to look for."),
        (
            {**PRICING_RULE, "bonus_points": "10", "bonus_count": ""},
            "Say how many matches in one day earn the bonus.",
        ),
    ],
    ids=["bad-regex", "operator-for-another-type", "unknown-field", "no-pattern", "no-bonus-count"],
)
def test_admin_refuses_a_bad_rule_with_its_message_and_stores_nothing(
    client, marketer, rule, message
):
    # Given a marketer on the add form
    client.force_login(marketer)
    data = add_form(client, FIT_RULE, rule)
    before = counts()

    # When they save a model with one good and one bad rule
    response = client.post(url("add"), data)

    # Then the form comes back with the message, and nothing was stored
    assert response.status_code == 200
    assert message in page_text(response)
    assert counts() == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"mql_threshold": "60", "sql_threshold": "40"},
            "The SQL threshold cannot be below the MQL threshold.",
        ),
        ({"hot_from": "20", "warm_from": "30"}, "Hot must start above warm."),
    ],
    ids=["sql-below-mql", "hot-below-warm"],
)
def test_admin_refuses_thresholds_out_of_order_and_stores_nothing(
    client, marketer, fields, message
):
    client.force_login(marketer)
    data = add_form(client, FIT_RULE, **fields)
    before = counts()

    response = client.post(url("add"), data)

    assert response.status_code == 200
    assert message in page_text(response)
    assert counts() == before


def test_bad_rule_on_a_live_model_changes_nothing_and_queues_nothing(
    client, marketer, live, django_capture_on_commit_callbacks
):
    # Given a live model whose pricing rule a marketer edits on the rule's page
    client.force_login(marketer)
    rule_page = reverse("admin:scoring_rule_change", args=[live.pricing.pk])
    data = changeform_data(client.get(rule_page))
    data.update(match="regex", pattern="([a-z", points="99")
    rule_before = Rule.objects.values().get(pk=live.pricing.pk)
    before = counts()

    # When they save an invalid regular expression
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(rule_page, data)

    # Then the message shows and neither the rule nor the jobs changed
    assert response.status_code == 200
    assert "is not a valid regular expression" in page_text(response)
    assert Rule.objects.values().get(pk=live.pricing.pk) == rule_before
    assert counts() == before


def test_a_rule_without_points_on_the_model_page_changes_nothing_and_queues_nothing(
    client, marketer, live, django_capture_on_commit_callbacks
):
    # Given the model page, with a rule's points emptied to 0 and a threshold changed
    client.force_login(marketer)
    data = change_form(client, live.model)
    data[rule_key(data, live.pricing, "points")] = "0"
    data["hot_from"] = "70"
    model_before = ScoringModel.objects.values().get(pk=live.model.pk)
    before = counts()

    # When they save
    response = post_change(client, live.model, data, django_capture_on_commit_callbacks)

    # Then the row says why, and neither the rule, the model nor the jobs changed
    assert response.status_code == 200
    assert "A rule needs points" in page_text(response)
    assert Rule.objects.get(pk=live.pricing.pk).points == 25
    assert ScoringModel.objects.values().get(pk=live.model.pk) == model_before
    assert counts() == before


# --- 3. Saving a live model rescores -----------------------------------------------------------


def test_changing_one_rules_points_rescores_only_that_rule_and_moves_scores(
    client, marketer, live, django_capture_on_commit_callbacks
):
    # Given scored leads: pricing on two days (capped once a day), pricing and a demo, a demo
    two_days = lead_with(pricing_days=2)
    one_day_demo = lead_with(pricing_days=1, demo=True)
    demo_only = lead_with(country="FR", demo=True)
    leads = (two_days, one_day_demo, demo_only)
    leads_score(lead_ids=[lead.pk for lead in leads])
    assert scores(*leads) == [10 + 2 * 25, 10 + 25 + 40, 40]
    client.force_login(marketer)

    # When the marketer raises the pricing rule from 25 to 35 points
    data = change_form(client, live.model)
    data[rule_key(data, live.pricing, "points")] = "35"
    response = post_change(client, live.model, data, django_capture_on_commit_callbacks)

    # Then one job restricted to that rule ran to the end
    assert response.status_code == 302
    job = RescoreJob.objects.get()
    assert (job.rule, job.status, job.requested_by) == (live.pricing, RescoreStatus.DONE, marketer)
    # And each lead moved by 10 per counted pricing view, and the ledger agrees
    assert scores(*leads) == [10 + 2 * 35, 10 + 35 + 40, 40]
    assert list(scores_verify()) == []

    # And the change page shows the job's progress
    page = client.get(url("change", live.model.pk))
    source = page.content.decode()
    assert '<progress max="100" value="100"' in source
    assert "3 / 3 leads" in page_text(page)


@pytest.mark.postgres
def test_changing_only_an_uncapped_rules_points_revalues_its_awards(
    client, marketer, live, django_capture_on_commit_callbacks
):
    # Given leads scored with a demo request (40 points, no cap)
    leads = (lead_with(demo=True), lead_with(country="FR", demo=True), lead_with(pricing_days=1))
    leads_score(lead_ids=[lead.pk for lead in leads])
    assert scores(*leads) == [10 + 40, 40, 10 + 25]
    entries = ScoreEntry.objects.count()
    client.force_login(marketer)

    # When the marketer raises it to 55 points on the model page
    data = change_form(client, live.model)
    data[rule_key(data, live.demo, "points")] = "55"
    response = post_change(client, live.model, data, django_capture_on_commit_callbacks)

    # Then the job knew the points before, and each lead with a demo got one revaluation
    assert response.status_code == 302
    job = RescoreJob.objects.get()
    assert (job.rule, job.points_before, job.status) == (live.demo, 40, RescoreStatus.DONE)
    added = ScoreEntry.objects.order_by("pk")[entries:]
    assert [(e.lead_id, e.revalued_to) for e in added] == [(leads[0].pk, 55), (leads[1].pk, 55)]
    # And the scores moved by 15 where there was a demo, and the ledger agrees
    assert scores(*leads) == [10 + 55, 55, 10 + 25]
    assert list(scores_verify()) == []


def test_changing_a_model_field_queues_a_full_rescore(
    client, marketer, live, django_capture_on_commit_callbacks
):
    # Given a scored warm lead at 75
    lead = lead_with(pricing_days=1, demo=True)
    leads_score(lead_ids=[lead.pk])
    assert (Lead.objects.get(pk=lead.pk).score, Lead.objects.get(pk=lead.pk).band) == (75, "warm")
    client.force_login(marketer)

    # When the marketer lowers "hot from" to 70
    data = change_form(client, live.model)
    data["hot_from"] = "70"
    response = post_change(client, live.model, data, django_capture_on_commit_callbacks)

    # Then a job over the whole model ran and the lead is hot now
    assert response.status_code == 302
    job = RescoreJob.objects.get()
    assert (job.rule, job.status) == (None, RescoreStatus.DONE)
    assert Lead.objects.get(pk=lead.pk).band == "hot"
    assert list(scores_verify()) == []


def test_saving_a_draft_model_queues_no_rescore(
    client, marketer, live, django_capture_on_commit_callbacks
):
    # Given a draft beside the live model
    draft = Rules(make_model("Experiment", status=ModelStatus.DRAFT, is_default=False))
    lead = lead_with(pricing_days=1)
    leads_score(lead_ids=[lead.pk])
    client.force_login(marketer)

    # When the marketer changes the draft's rule and a threshold
    data = change_form(client, draft.model)
    data[rule_key(data, draft.pricing, "points")] = "50"
    data["hot_from"] = "70"
    response = post_change(client, draft.model, data, django_capture_on_commit_callbacks)

    # Then both are saved but nothing is rescored
    assert response.status_code == 302
    assert Rule.objects.get(pk=draft.pricing.pk).points == 50
    assert not RescoreJob.objects.exists()
    assert scores(lead) == [35]


# --- 4. Admin actions ----------------------------------------------------------------------


def test_duplicate_as_a_draft_copies_the_model_and_its_rules(
    client, marketer, live, django_capture_on_commit_callbacks
):
    client.force_login(marketer)

    response = run_action(
        client, "duplicate_as_draft", [live.model], django_capture_on_commit_callbacks
    )

    assert response.status_code == 302
    copy = ScoringModel.objects.get(name="Standard (draft)")
    assert (copy.status, copy.is_default) == (ModelStatus.DRAFT, False)

    def rule_rows(model: ScoringModel) -> set[tuple]:
        return set(
            model.rules.values_list(
                "name", "kind", "points", "field", "operator", "value", "activity_type", "pattern"
            )
        )

    assert rule_rows(copy) == rule_rows(live.model)
    assert len(rule_rows(copy)) == 3
    assert Rule.objects.filter(model=live.model).count() == 3  # the original keeps its rules
    assert not RescoreJob.objects.exists()
    logged = ChangeLog.objects.get(object_type="scoringmodel", object_id=copy.pk)
    assert (logged.action, logged.by, logged.before) == ("create", marketer, None)


def test_activate_and_rescore_makes_a_draft_live_and_scores_its_leads(
    client, marketer, django_capture_on_commit_callbacks
):
    # Given a draft and two leads it has never scored
    draft = Rules(make_model("Experiment", status=ModelStatus.DRAFT))
    hot, cold = lead_with(pricing_days=2, demo=True), lead_with(country="FR")
    assert not LeadScore.objects.exists()
    client.force_login(marketer)

    # When the marketer activates it
    response = run_action(client, "activate", [draft.model], django_capture_on_commit_callbacks)

    # Then it is live, its rescore ran, and each lead has a score row in it
    assert response.status_code == 302
    draft.model.refresh_from_db()
    assert draft.model.status == ModelStatus.ACTIVE
    assert RescoreJob.objects.get().status == RescoreStatus.DONE
    rows = dict(LeadScore.objects.filter(model=draft.model).values_list("lead_id", "score"))
    assert rows == {hot.pk: 10 + 2 * 25 + 40, cold.pk: 0}
    assert scores(hot, cold) == [100, 0]
    assert ChangeLog.objects.filter(action="activate", by=marketer).count() == 1
    assert list(scores_verify()) == []


def test_rescore_all_leads_now_runs_one_job_per_selected_model(
    client, marketer, live, django_capture_on_commit_callbacks
):
    # Given a second, segment model, and leads nobody has scored yet
    fleet = ProductLine.objects.create(name="Fleet", slug="fleet")
    segment = Rules(make_model("Fleet buyers", is_default=False, priority=200))
    segment.model.segment_product_lines.add(fleet)
    everyone = lead_with(pricing_days=1)
    fleet_lead = lead_with(demo=True)
    fleet_lead.product_interests.add(fleet)
    client.force_login(marketer)

    # When the marketer rescores both models
    response = run_action(
        client, "rescore", [live.model, segment.model], django_capture_on_commit_callbacks
    )

    # Then one job per model ran and the leads are scored in the models they belong to
    assert response.status_code == 302
    jobs = RescoreJob.objects.all()
    assert sorted(job.model_id for job in jobs) == sorted([live.model.pk, segment.model.pk])
    assert {job.status for job in jobs} == {RescoreStatus.DONE}
    assert set(LeadScore.objects.values_list("lead_id", "model_id")) == {
        (everyone.pk, live.model.pk),
        (fleet_lead.pk, live.model.pk),
        (fleet_lead.pk, segment.model.pk),
    }
    assert scores(everyone, fleet_lead) == [35, 50]
    assert list(scores_verify()) == []


# --- 5. Preview against history -------------------------------------------------------------


def close(lead: Lead, status: str) -> Lead:
    deal_save(deal=Deal(lead=lead, name=f"Deal {lead.pk}", status=status, closed_at=DAY2))
    return lead


def test_preview_shows_outcomes_by_band_the_lowest_converted_score_and_what_would_change(
    client, marketer, db
):
    # Given a draft and a history: strong leads won, weak ones lost, and two open leads
    draft = Rules(make_model("Experiment", status=ModelStatus.DRAFT))
    fit, pricing, demo = draft.country.points, draft.pricing.points, draft.demo.points
    close(lead_with(pricing_days=2, demo=True), DealStatus.WON)  # hot
    close(lead_with(demo=True), DealStatus.WON)  # warm
    close(lead_with(pricing_days=1), DealStatus.LOST)  # warm
    close(lead_with(), DealStatus.LOST)  # cold
    close(lead_with(country="FR", pricing_days=1), DealStatus.LOST)  # cold
    lead_with(pricing_days=1, demo=True)  # open: would be warm and MQL
    lead_with(pricing_days=1)  # open: would be warm
    lead_with(country="FR")  # open: stays cold
    before = counts()
    client.force_login(marketer)

    # When the marketer opens the preview
    response = client.get(url("preview", draft.model.pk))

    # Then it shows won, lost and conversion per band
    assert response.status_code == 200
    text = page_text(response)
    assert "Hot 1 0 100% Warm 1 1 50% Cold 0 2 0%" in text
    assert "Scores are backwards" not in text
    # And the lowest score among converted leads: the demo-only lead
    assert f"Lowest score among converted leads: {fit + demo}" in text
    assert fit + demo < fit + 2 * pricing + demo
    # And what going live would change for today's open leads
    assert "2 would change band and 1 would change stage" in text
    assert "scored 8 leads without saving anything" in text
    assert counts() == before


def test_preview_without_closed_leads_says_so(client, marketer, db):
    draft = Rules(make_model("Experiment", status=ModelStatus.DRAFT))
    lead_with(pricing_days=1, demo=True)
    deal_save(deal=Deal(lead=lead_with(), name="Still open"))
    client.force_login(marketer)

    response = client.get(url("preview", draft.model.pk))

    assert response.status_code == 200
    text = page_text(response)
    assert "No closed (won or lost) leads" in text
    assert "1 would change band and 1 would change stage" in text


def test_preview_warns_when_the_hot_band_converts_worse_than_cold(client, marketer, db):
    # Given a history where the strongest leads were lost and the weakest won
    draft = Rules(make_model("Experiment", status=ModelStatus.DRAFT))
    close(lead_with(pricing_days=2, demo=True), DealStatus.LOST)  # hot
    close(lead_with(country="FR"), DealStatus.WON)  # cold
    client.force_login(marketer)

    response = client.get(url("preview", draft.model.pk))

    text = page_text(response)
    assert "Hot 0 1 0%" in text
    assert "Cold 1 0 100%" in text
    assert "Scores are backwards" in text
    assert "Lowest score among converted leads: 0" in text


# --- 6. Audit history --------------------------------------------------------------------


def test_every_model_and_rule_change_through_the_admin_is_in_the_change_history(
    client, marketer, django_capture_on_commit_callbacks
):
    # Given a model created through the admin
    client.force_login(marketer)
    client.post(url("add"), add_form(client, FIT_RULE, PRICING_RULE))
    model = ScoringModel.objects.get(name="Inbound")
    pricing = model.rules.get(name="Pricing page")
    created = ChangeLog.objects.filter(action="create", by=marketer)
    assert set(created.values_list("object_type", "object_repr")) == {
        ("scoringmodel", "Inbound"),
        ("rule", "Heads of department"),
        ("rule", "Pricing page"),
    }
    assert created.get(object_type="rule", object_id=pricing.pk).before is None

    # When the marketer changes the pricing rule's points and a threshold
    data = change_form(client, model)
    data[rule_key(data, pricing, "points")] = "30"
    data["hot_from"] = "75"
    post_change(client, model, data, django_capture_on_commit_callbacks)

    # Then the rule's change is recorded with who and its points before and after
    change = ChangeLog.objects.get(object_type="rule", object_id=pricing.pk, action="change")
    assert change.by == marketer
    assert (change.before["points"], change.after["points"]) == (25, 30)
    # And the model's change with its threshold before and after
    model_change = ChangeLog.objects.get(object_type="scoringmodel", action="change")
    assert (model_change.by, model_change.before["hot_from"], model_change.after["hot_from"]) == (
        marketer,
        80,
        75,
    )
    # The untouched rule has no change row
    assert not ChangeLog.objects.filter(
        object_type="rule", object_repr="Heads of department", action="change"
    ).exists()

    # When a rule is deleted, that too is recorded
    data = change_form(client, model)
    data[rule_key(data, pricing, "DELETE")] = "on"
    post_change(client, model, data, django_capture_on_commit_callbacks)
    deleted = ChangeLog.objects.get(object_type="rule", object_id=pricing.pk, action="delete")
    assert (deleted.by, deleted.before["points"], deleted.after) == (marketer, 30, None)

    # And the model's change page shows that history, its rules' changes included
    text = page_text(client.get(url("change", model.pk)))
    assert "Change history" in text
    for row in (
        "marketer create Inbound",
        "marketer create Heads of department",
        "marketer change Inbound",
        "marketer change Pricing page",
        "marketer delete Pricing page",
    ):
        assert row in text
    assert "points: 25 → 30" in text
    assert "hot_from: 80 → 75" in text


def test_change_page_of_a_non_numeric_id_redirects_as_missing(client, marketer, live):
    client.force_login(marketer)

    response = client.get(url("change", "pricing"))

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")


# --- 7. Permissions ---------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["rep", "outsider"])
def test_user_who_is_not_staff_is_sent_to_login_and_changes_nothing(
    client, live, request, persona, django_capture_on_commit_callbacks
):
    # Given a signed-in user who is not staff
    client.force_login(request.getfixturevalue(persona))
    model_before = ScoringModel.objects.values().get(pk=live.model.pk)
    rule_before = Rule.objects.values().get(pk=live.pricing.pk)
    before = counts()

    # When they open the list, a change page and the preview, post a change and an action
    responses = [
        client.get(url("changelist")),
        client.get(url("change", live.model.pk)),
        client.get(url("preview", live.model.pk)),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        responses += [
            client.post(url("change", live.model.pk), {"name": "Hijacked", "hot_from": "1"}),
            client.post(
                url("changelist"), {"action": "rescore", "_selected_action": [live.model.pk]}
            ),
        ]

    # Then each is sent to the admin login and nothing changed
    login = reverse("admin:login")
    assert [(r.status_code, r["Location"].startswith(login)) for r in responses] == [
        (302, True)
    ] * len(responses)
    assert ScoringModel.objects.values().get(pk=live.model.pk) == model_before
    assert Rule.objects.values().get(pk=live.pricing.pk) == rule_before
    assert counts() == before


def test_marketer_holds_every_scoring_permission_and_can_view_and_change_models(
    client, marketer, live, django_capture_on_commit_callbacks
):
    scoring_perms = {
        f"scoring.{codename}"
        for codename in Permission.objects.filter(content_type__app_label="scoring").values_list(
            "codename", flat=True
        )
    }
    assert {"scoring.change_scoringmodel", "scoring.add_rule"} <= scoring_perms
    assert scoring_perms <= marketer.get_all_permissions()
    client.force_login(marketer)

    listing = client.get(url("changelist"))
    page = client.get(url("change", live.model.pk))
    preview = client.get(url("preview", live.model.pk))
    data = changeform_data(page)
    data["description"] = "Tuned by marketing"
    saved = post_change(client, live.model, data, django_capture_on_commit_callbacks)

    assert (listing.status_code, page.status_code, preview.status_code) == (200, 200, 200)
    assert list(listing.context["cl"].result_list) == [live.model]
    assert saved.status_code == 302
    assert ScoringModel.objects.get(pk=live.model.pk).description == "Tuned by marketing"


# --- Lowering a threshold moves the leads already past it -------------------------------------


@pytest.fixture
def staged(live):
    """Leads of the live model (MQL 50, SQL 90), scored: 40 (new), 60 (MQL), 75 (MQL),
    100 (SQL), and a 60 a rep recycled."""
    leads = {
        "forty": lead_with(country="FR", demo=True),
        "sixty": lead_with(pricing_days=2),
        "seventy_five": lead_with(pricing_days=1, demo=True),
        "hundred": lead_with(pricing_days=2, demo=True),
        "recycled": lead_with(pricing_days=2),
    }
    leads_score(lead_ids=[lead.pk for lead in leads.values()])
    Lead.objects.filter(pk=leads["recycled"].pk).update(stage="recycled")
    assert scores(*leads.values()) == [40, 60, 75, 100, 60]
    assert stages(leads) == {
        "forty": "new",
        "sixty": "mql",
        "seventy_five": "mql",
        "hundred": "sql",
        "recycled": "recycled",
    }
    return leads


def stages(leads: dict[str, Lead]) -> dict[str, str]:
    return {name: Lead.objects.get(pk=lead.pk).stage for name, lead in leads.items()}


def test_lowering_thresholds_says_how_many_move_and_saves_nothing_until_confirmed(
    client, marketer, live, staged, django_capture_on_commit_callbacks
):
    # Given a marketer lowering MQL 50 → 40 and SQL 90 → 70 on the live model
    client.force_login(marketer)
    data = change_form(client, live.model)
    data.update(mql_threshold="40", sql_threshold="70")
    before = counts()

    # When they save without confirming
    response = post_change(client, live.model, data, django_capture_on_commit_callbacks)

    # Then the form says who would move, and nothing is saved, queued or moved
    assert response.status_code == 200
    assert (
        "These thresholds and base score move 1 lead to MQL and 1 lead to SQL forward now"
        in page_text(response)
    )
    assert ScoringModel.objects.get(pk=live.model.pk).mql_threshold == 50
    assert counts() == before
    assert stages(staged)["forty"] == "new"


def test_a_raised_base_score_says_how_many_leads_move_and_moves_exactly_them_once_confirmed(
    client, marketer, live, staged, django_capture_on_commit_callbacks
):
    # Given a marketer raising the base score of the live model (MQL 50, SQL 90) by 20:
    # 40 → 60 past MQL, 75 → 95 past SQL; the 60s were past MQL already, the 100 past SQL
    client.force_login(marketer)
    data = change_form(client, live.model)
    data.update(base_score="20")
    before = counts()

    # When they save without confirming
    asked = post_change(client, live.model, data, django_capture_on_commit_callbacks)

    # Then the form says who would move, and nothing is saved, queued or moved
    assert asked.status_code == 200
    assert (
        "These thresholds and base score move 1 lead to MQL and 1 lead to SQL forward now"
        in page_text(asked)
    )
    assert ScoringModel.objects.get(pk=live.model.pk).base_score == 0
    assert counts() == before

    # When they confirm (the rescore runs)
    data["move_leads"] = "on"
    saved = post_change(client, live.model, data, django_capture_on_commit_callbacks)

    # Then exactly the leads the form named moved
    assert saved.status_code == 302
    assert scores(*staged.values()) == [60, 80, 95, 120, 80]
    assert stages(staged) == {
        "forty": "mql",
        "sixty": "mql",
        "seventy_five": "sql",
        "hundred": "sql",
        "recycled": "recycled",
    }


def test_a_lowered_base_score_moves_nobody_and_asks_nothing(
    client, marketer, live, staged, django_capture_on_commit_callbacks
):
    client.force_login(marketer)
    data = change_form(client, live.model)
    data.update(base_score="-20")

    response = post_change(client, live.model, data, django_capture_on_commit_callbacks)

    assert response.status_code == 302
    assert ScoringModel.objects.get(pk=live.model.pk).base_score == -20
    assert stages(staged)["forty"] == "new"


def test_a_confirmed_lowering_moves_exactly_the_leads_past_the_new_thresholds_once(
    client, marketer, live, staged, django_capture_on_commit_callbacks
):
    client.force_login(marketer)
    data = change_form(client, live.model)
    data.update(mql_threshold="40", sql_threshold="70", move_leads="on")

    # When the lowering is confirmed and saved (its rescore runs)
    response = post_change(client, live.model, data, django_capture_on_commit_callbacks)

    # Then the 40 is an MQL and the 75 an SQL; the 60 stays an MQL, the 100 an SQL, and
    # the lead a rep recycled (past the old threshold already) stays recycled
    assert response.status_code == 302
    assert stages(staged) == {
        "forty": "mql",
        "sixty": "mql",
        "seventy_five": "sql",
        "hundred": "sql",
        "recycled": "recycled",
    }
    job = RescoreJob.objects.get(model=live.model)
    assert (job.status, job.moved_to_mql, job.moved_to_sql) == (RescoreStatus.DONE, 1, 1)
    change = staged["seventy_five"].stage_changes.latest("pk")
    assert change.by is None
    assert change.reason == "Score 75 is past the SQL threshold 70 of “Standard”, lowered from 90"
    assert "1 lead to MQL and 1 lead to SQL" in page_text(client.get(url("change", live.model.pk)))

    # And a later save of the model moves nobody again; raising them moves nobody back
    moves = sum(lead.stage_changes.count() for lead in staged.values())
    for mql, sql in (("40", "70"), ("55", "95")):
        data = change_form(client, live.model)
        data.update(mql_threshold=mql, sql_threshold=sql, hot_from="81")
        post_change(client, live.model, data, django_capture_on_commit_callbacks)
    assert sum(lead.stage_changes.count() for lead in staged.values()) == moves
    assert stages(staged)["forty"] == "mql"
    assert list(scores_verify()) == []


def test_lowering_a_threshold_through_the_api_moves_the_leads_past_it(
    marketer, live, staged, django_capture_on_commit_callbacks
):
    from tests.api_client import token_client

    api = token_client(marketer)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(
            f"/api/v1/scoring-models/{live.model.pk}/", {"mql_threshold": 40}, format="json"
        )

    assert response.status_code == 200, response.content
    assert stages(staged)["forty"] == "mql"
    assert stages(staged)["seventy_five"] == "mql"
    assert RescoreJob.objects.get(model=live.model).moved_to_mql == 1


# --- A draft is a candidate version of its model: previewed, published, rolled back ---------


def test_a_draft_of_the_default_model_is_previewed_on_its_leads_and_touches_none(
    client, marketer, live, settings, django_capture_on_commit_callbacks
):
    # Given the live default model's leads, scored, and a marketer's draft of it
    settings.HANDOFF_STAGE = "mql"
    leads = [lead_with(pricing_days=1), lead_with(country="FR", demo=True), lead_with()]
    leads_score(lead_ids=[lead.pk for lead in leads])
    client.force_login(marketer)
    run_action(client, "duplicate_as_draft", [live.model], django_capture_on_commit_callbacks)
    draft = ScoringModel.objects.get(name="Standard (draft)")
    assert (draft.version_of, draft.is_default, draft.is_candidate) == (live.model, False, True)

    def funnel() -> tuple:
        return (
            ScoreEntry.objects.count(),
            sorted(LeadScore.objects.values_list("lead_id", "model_id", "score")),
            sorted(Lead.objects.values_list("pk", "score", "stage")),
            RescoreJob.objects.count(),
        )

    before = funnel()

    # When the marketer doubles the demo rule in the draft and previews it
    data = change_form(client, draft)
    data[rule_key(data, draft.rules.get(name="Demo request"), "points")] = "80"
    post_change(client, draft, data, django_capture_on_commit_callbacks)
    preview = client.get(reverse("admin:scoring_scoringmodel_preview", args=[draft.pk]))

    # Then the preview scored the live model's leads (every lead: it is the default), and
    # nothing of the live funnel moved: no score, stage, hand-off or rescore
    assert preview.context["preview"]["scored"] == 3
    assert funnel() == before
    assert not RescoreJob.objects.exists()


def test_publishing_a_draft_version_replaces_the_live_one_and_rolling_back_restores_it(
    client, marketer, live, django_capture_on_commit_callbacks
):
    # Given scored leads and a draft version that gives demo requests 80 points
    demo, pricing = lead_with(country="FR", demo=True), lead_with(pricing_days=1)
    leads_score(lead_ids=[demo.pk, pricing.pk])
    assert scores(demo, pricing) == [40, 35]
    draft = changes_duplicate(live.model, marketer)
    Rule.objects.filter(model=draft, name="Demo request").update(points=80)
    client.force_login(marketer)

    # When it is published (the "Activate" action on a draft version)
    response = run_action(client, "activate", [draft], django_capture_on_commit_callbacks)

    # Then it is the live default model in the old one's place, which is archived, and
    # the leads carry its scores; both changes are logged
    assert response.status_code == 302
    draft.refresh_from_db()
    live.model.refresh_from_db()
    assert (draft.status, draft.is_default, draft.version_of) == ("active", True, live.model)
    assert (live.model.status, live.model.is_default) == ("archived", False)
    assert scores(demo, pricing) == [80, 35]
    assert set(
        LeadScore.objects.filter(lead__in=[demo, pricing]).values_list("model_id", flat=True)
    ) == {draft.pk}
    assert {job.status for job in RescoreJob.objects.all()} == {RescoreStatus.DONE}
    assert ChangeLog.objects.filter(action="publish", object_id=draft.pk, by=marketer).exists()
    assert list(scores_verify()) == []

    # When the marketer rolls back
    run_action(client, "roll_back", [draft], django_capture_on_commit_callbacks)

    # Then the old version is live again and the scores are its own
    draft.refresh_from_db()
    live.model.refresh_from_db()
    assert (live.model.status, live.model.is_default) == ("active", True)
    assert (draft.status, draft.is_default) == ("archived", False)
    assert scores(demo, pricing) == [40, 35]
    assert ChangeLog.objects.filter(action="roll back", object_id=live.model.pk).exists()
    assert list(scores_verify()) == []


def test_only_a_draft_version_of_a_live_model_publishes_and_a_first_version_has_no_roll_back(
    client, marketer, live, django_capture_on_commit_callbacks
):
    client.force_login(marketer)

    response = run_action(client, "roll_back", [live.model], django_capture_on_commit_callbacks)

    assert "replaced no version that could be put back" in page_text(client.get(url("changelist")))
    assert response.status_code == 302
    live.model.refresh_from_db()
    assert live.model.status == "active"


def changes_duplicate(model: ScoringModel, by) -> ScoringModel:
    from scoring.changes import model_duplicate

    return model_duplicate(model=model, by=by)


def test_a_fit_rules_field_is_chosen_from_the_lead_company_and_custom_fields(
    client, marketer, live
):
    from leads.custom_fields import CustomFieldDefinition

    CustomFieldDefinition.objects.create(key="fleet_size", label="Fleet size", field_type="number")
    Rule.objects.filter(pk=live.country.pk).update(field="custom.gone")
    client.force_login(marketer)

    page = client.get(reverse("admin:scoring_rule_change", args=[live.country.pk]))
    page = page.content.decode()

    # The field is a list in words, grouped, with the custom fields defined now, and a
    # rule testing a field no longer offered keeps it
    assert '<optgroup label="Company">' in page
    assert '<option value="company.employee_count">Company size</option>' in page
    assert '<option value="custom.fleet_size">Fleet size</option>' in page
    assert '<option value="custom.gone" selected>custom.gone</option>' in page


def test_the_model_page_follows_its_rescores_without_a_reload(
    client, marketer, rep, live, django_capture_on_commit_callbacks
):
    # Given a rescore queued and not started (the broker holds it)
    from scoring.rescore_jobs import rescore_job_start

    job = rescore_job_start(model=live.model, reason="Requested")
    client.force_login(marketer)

    # The page shows its bar with the script that follows it, and the JSON it reads
    page = client.get(url("change", live.model.pk)).content.decode()
    assert f'data-rescore-job="{job.pk}" data-status="queued"' in page
    assert "js/rescore-progress.js" in page
    rescores = reverse("admin:scoring_scoringmodel_rescores", args=[live.model.pk])
    assert client.get(rescores).json()["jobs"] == [
        {"id": job.pk, "status": "queued", "percent": 0, "text": "0 / 0 leads · queued"}
    ]

    # Once the job has run, the same JSON says so
    from scoring.rescore_jobs import rescore_job_run

    lead_with(pricing_days=1)
    rescore_job_run(job_id=job.pk)
    [state] = client.get(rescores).json()["jobs"]
    assert (state["status"], state["percent"], state["text"]) == ("done", 100, "1 / 1 leads · done")

    # Someone who may not see scoring models gets no figures
    client.force_login(rep)
    assert client.get(rescores).status_code in (302, 403)


def test_publishing_a_version_with_lower_thresholds_moves_exactly_the_leads_past_them_once(
    client, marketer, live, staged, django_capture_on_commit_callbacks
):
    # Given a draft version with the same rules and MQL 50 -> 40, SQL 90 -> 70
    draft = changes_duplicate(live.model, marketer)
    ScoringModel.objects.filter(pk=draft.pk).update(mql_threshold=40, sql_threshold=70)
    client.force_login(marketer)

    # When it is published
    run_action(client, "activate", [draft], django_capture_on_commit_callbacks)

    # Then the leads between the new and the old thresholds moved, and only they
    assert stages(staged) == {
        "forty": "mql",
        "sixty": "mql",
        "seventy_five": "sql",
        "hundred": "sql",
        "recycled": "recycled",
    }
    job = RescoreJob.objects.get(model=draft)
    assert (job.moved_to_mql, job.moved_to_sql) == (1, 1)
    moves = sum(lead.stage_changes.count() for lead in staged.values())

    # And a later rescore of the live version moves nobody again
    run_action(client, "rescore", [draft], django_capture_on_commit_callbacks)
    assert sum(lead.stage_changes.count() for lead in staged.values()) == moves
    assert list(scores_verify()) == []

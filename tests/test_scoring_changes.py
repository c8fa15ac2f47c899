"""A model or rule change is logged and rescored the same way from the admin and the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from scoring.lead_scoring import leads_score
from scoring.models import ChangeLog, ModelStatus, RescoreJob, Rule, ScoreEntry, ScoringModel
from tests.admin_forms import changeform_data, inline_key
from tests.api_client import token_client
from tests.factories import LeadFactory, active_model, fit_rule

MODELS = "/api/v1/scoring-models/"


def make_world(status: str, *, scored: bool) -> tuple[ScoringModel, Rule]:
    """A model with one rule (+20 for directors); ``scored``: a director was scored while it
    was live, so the model has ledger entries."""
    model = active_model(name="Standard", surge_points=0)
    rule = fit_rule(model, 20, "seniority", "equals", "director", name="Directors")
    if scored:
        lead = LeadFactory(seniority="director")
        leads_score(lead_ids=[lead.pk])
        assert ScoreEntry.objects.filter(model=model).exists()
    ScoringModel.objects.filter(pk=model.pk).update(status=status)
    model.refresh_from_db()
    return model, rule


# --- The two surfaces -------------------------------------------------------------------


def admin_edit(client, model: ScoringModel, *, fields: dict[str, str], rule: dict[str, str]):
    """Save the model's page with ``fields`` changed, or the rule's own page with ``rule``
    changed; a ``rule`` with "new" adds a rule on the page the model's "Add" link opens,
    one with "DELETE" deletes it from the model's page."""
    model_page = reverse("admin:scoring_scoringmodel_change", args=[model.pk])
    if rule.get("new"):
        page = reverse("admin:scoring_rule_add")
        data = changeform_data(client.get(page, {"model": model.pk, "kind": rule["kind"]}))
        data.update({k: v for k, v in rule.items() if k != "new"})
    elif rule and not rule.get("DELETE"):
        page = reverse("admin:scoring_rule_change", args=[model.rules.get().pk])
        data = changeform_data(client.get(page))
        data.update(rule)
    else:
        page = model_page
        data = changeform_data(client.get(page))
        data.update(fields)
        if rule:
            data[inline_key(data, "rules-", model.rules.get().pk, "DELETE")] = "on"
    response = client.post(page, data)
    assert response.status_code == 302, response.context and response.context.get("errors")
    if page != model_page:
        assert response["Location"] == model_page  # a rule's page leads back to its model


def api_edit(client, model: ScoringModel, *, fields: dict[str, str], rule: dict[str, str]):
    if fields:
        response = client.patch(f"{MODELS}{model.pk}/", fields, format="json")
        assert response.status_code == 200, response.content
    if rule.get("new"):
        values = {k: v for k, v in rule.items() if k != "new"}
        response = client.post(f"{MODELS}{model.pk}/rules/", values, format="json")
        assert response.status_code == 201, response.content
    elif rule:
        only = model.rules.get()
        response = client.patch(f"{MODELS}{model.pk}/rules/{only.pk}/", rule, format="json")
        assert response.status_code == 200, response.content


def outcome() -> dict[str, Any]:
    """What a change left behind: its change log and the rescore jobs it queued."""
    return {
        "log": sorted(ChangeLog.objects.values_list("object_type", "action")),
        "jobs": sorted(
            (job.rule.name if job.rule else "whole model")
            for job in RescoreJob.objects.select_related("rule")
        ),
    }


NEW_RULE = {
    "new": "yes",
    "name": "Heads",
    "kind": "fit",
    "points": "5",
    "field": "job_title",
    "operator": "contains",
    "value": "head",
}

CASES = {
    "rule condition, model archived with ledger entries": (
        ModelStatus.ARCHIVED,
        True,
        {},
        {"value": "vp"},
        {"log": [("rule", "change")], "jobs": []},
    ),
    "rule points, model archived with ledger entries": (
        ModelStatus.ARCHIVED,
        True,
        {},
        {"points": "30"},
        {"log": [("rule", "change")], "jobs": []},
    ),
    "rule points, draft model": (
        ModelStatus.DRAFT,
        False,
        {},
        {"points": "30"},
        {"log": [("rule", "change")], "jobs": []},
    ),
    "rule points, live model": (
        ModelStatus.ACTIVE,
        True,
        {},
        {"points": "30"},
        {"log": [("rule", "change")], "jobs": ["Directors"]},
    ),
    "rule condition, live model": (
        ModelStatus.ACTIVE,
        True,
        {},
        {"value": "vp"},
        {"log": [("rule", "change")], "jobs": ["Directors"]},
    ),
    "rule created, live model": (
        ModelStatus.ACTIVE,
        True,
        {},
        NEW_RULE,
        {"log": [("rule", "create")], "jobs": ["Heads"]},
    ),
    "rule created, archived model": (
        ModelStatus.ARCHIVED,
        True,
        {},
        NEW_RULE,
        {"log": [("rule", "create")], "jobs": []},
    ),
    "model threshold, live model": (
        ModelStatus.ACTIVE,
        True,
        {"hot_from": "70"},
        {},
        {"log": [("scoringmodel", "change")], "jobs": ["whole model"]},
    ),
    "model threshold, draft model": (
        ModelStatus.DRAFT,
        False,
        {"hot_from": "70"},
        {},
        {"log": [("scoringmodel", "change")], "jobs": []},
    ),
    "model deactivated with ledger entries": (
        ModelStatus.ACTIVE,
        True,
        {"status": ModelStatus.ARCHIVED},
        {},
        {"log": [("scoringmodel", "change")], "jobs": ["whole model"]},
    ),
    "draft model activated": (
        ModelStatus.DRAFT,
        False,
        {"status": ModelStatus.ACTIVE},
        {},
        {"log": [("scoringmodel", "change")], "jobs": ["whole model"]},
    ),
}


@pytest.mark.parametrize(
    ("status", "scored", "fields", "rule", "expected"),
    list(CASES.values()),
    ids=list(CASES),
)
@pytest.mark.parametrize("surface", ["admin", "api"])
def test_admin_and_api_log_and_rescore_a_change_alike(
    client, marketer, surface, status, scored, fields, rule, expected
):
    # Given a model in that state, and nothing logged or queued yet
    model, _ = make_world(status, scored=scored)
    ChangeLog.objects.all().delete()
    RescoreJob.objects.all().delete()
    edit: Callable[..., None]
    if surface == "admin":
        client.force_login(marketer)
        edit = admin_edit
    else:
        client = token_client(marketer)
        edit = api_edit

    # When the marketer makes the change on that surface
    edit(client, model, fields=fields, rule=rule)

    # Then the same change log rows and the same rescore jobs
    assert outcome() == expected


def test_deleting_a_rule_in_the_admin_logs_it_and_rescores_the_live_model(client, marketer):
    # Given a live model with a scored director
    model, rule = make_world(ModelStatus.ACTIVE, scored=True)
    ChangeLog.objects.all().delete()
    client.force_login(marketer)

    # When the marketer deletes its rule
    admin_edit(client, model, fields={}, rule={"DELETE": "on"})

    # Then the deletion is logged and the whole model is rescored
    assert not Rule.objects.filter(pk=rule.pk).exists()
    assert outcome() == {"log": [("rule", "delete")], "jobs": ["whole model"]}


def test_deleting_a_rule_of_an_archived_model_queues_no_rescore(client, marketer):
    # Given an archived model that still holds ledger entries
    model, rule = make_world(ModelStatus.ARCHIVED, scored=True)
    ChangeLog.objects.all().delete()
    client.force_login(marketer)

    # When the marketer deletes its rule
    admin_edit(client, model, fields={}, rule={"DELETE": "on"})

    # Then the deletion is logged; no score depends on an archived model's rules
    assert not Rule.objects.filter(pk=rule.pk).exists()
    assert outcome() == {"log": [("rule", "delete")], "jobs": []}

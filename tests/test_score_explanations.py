"""The score explanation hand-off emails and webhooks show: leads asks, scoring provides."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from leads import score_explanations
from leads.score_explanations import lead_score_explanation, score_explanation_provider_set
from leads.webhooks import top_rules
from scoring.explanation import lead_explanation
from scoring.lead_scoring import lead_score
from tests.factories import LeadFactory, active_model, fit_rule

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored_lead():
    model = active_model()
    fit_rule(model, 30, "seniority", "equals", "director")
    fit_rule(model, -10, "job_title", "contains", "Intern")
    lead = LeadFactory(seniority="director", job_title="Intern Operations")
    lead_score(lead_id=lead.pk)
    lead.refresh_from_db()
    return lead


@pytest.fixture
def no_provider() -> Iterator[None]:
    installed = score_explanations._provider
    score_explanation_provider_set(None)
    yield
    score_explanation_provider_set(installed)


def test_scoring_provides_the_primary_models_explanation(scored_lead):
    (primary,) = lead_explanation(lead=scored_lead)["models"]

    assert lead_score_explanation(lead=scored_lead) == primary
    assert [line["points"] for line in primary["positive"] + primary["negative"]] == [30, -10]


def test_a_lead_no_model_scores_has_no_explanation():
    assert lead_score_explanation(lead=LeadFactory()) is None
    assert top_rules(LeadFactory()) == {"positive": [], "negative": []}


def test_without_a_provider_payloads_list_no_rules(scored_lead, no_provider):
    assert lead_score_explanation(lead=scored_lead) is None
    assert top_rules(scored_lead) == {"positive": [], "negative": []}

"""Rule weights from the live predictive model, in a real browser: the predictive page fits
the rules to the model in the background, shows the points now and proposed with how well
the rules follow the model and what no rule tests, and one click makes a draft whose
page previews it against the live version. The live rules stay as they are.

The section goes to docs/screenshots/studio-predictive-weights.png for the README.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from crm.models import Role, User
from scoring.models import PredictiveStatus, Rule, ScoringModel
from scoring.predictive.services import predictive_train
from scoring.rescore_jobs import model_rescore_in_process
from tests import predictive_world
from tests.browser.conftest import log_in
from tests.browser.test_accessibility import AXE, violations
from tests.conftest import IN_CI
from tests.factories import active_model, fit_rule, page_rule

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def live_predictive(settings) -> ScoringModel:
    """A live scoring model with a live predictive model trained on a messy world, and a
    marketer."""
    settings.PREDICTIVE_MIN_CLOSED = 200
    marketer = User.objects.create_user(username="marketer", password="hotlist", is_staff=True)
    marketer.groups.add(Group.objects.get(name=Role.MARKETER.label))
    model = active_model(name="Inbound", mql_threshold=50, sql_threshold=90, is_default=True)
    fit_rule(model, 20, "seniority", "equals", "director", name="Director")
    fit_rule(model, 2, "company.industry", "equals", "software", name="Software")
    fit_rule(model, 15, "source", "equals", "referral", name="Referral")
    page_rule(model, 5, "/pricing", max_per_lead=3)
    predictive_world.build(600)
    model_rescore_in_process(model=model, reason="test")
    card = predictive_train(model=model, by=None)
    assert card.status == PredictiveStatus.LIVE, card.verdict
    return model


@pytest.fixture
def axe() -> str:
    if not AXE.exists():
        if IN_CI:
            pytest.fail(f"axe-core is missing at {AXE}: run npm ci (CI=true)")
        pytest.skip("needs axe-core from npm ci")
    return AXE.read_text()


def rules_state(model: ScoringModel) -> list[tuple]:
    return list(model.rules.order_by("pk").values_list("pk", "points", "active"))


def test_see_the_rule_weights_from_the_model_and_make_a_draft(page, live_predictive, axe):
    model = live_predictive
    live = rules_state(model)
    log_in(page, "marketer")

    # When the marketer opens the model's predictive page
    page.goto(f"/studio/models/{model.pk}/predictive/")
    section = page.locator("#predictive-weights")
    expect(page.get_by_role("heading", name="Rule weights from this model")).to_be_visible()

    # Then the fit, done in the background, shows each rule's points now and from the model
    table = section.get_by_role("table", name="Points per rule: now and from the model")
    expect(table).to_be_visible(timeout=30_000)
    software = table.get_by_role("row", name=re.compile(r"industry is Software"))
    expect(software).to_contain_text("times the odds of converting")
    expect(section.locator('[data-figure="rank-correlation"]')).to_contain_text(
        re.compile(r"0\.\d\d → 0\.\d\d")
    )
    expect(section.locator('[data-figure="holdout-auc"]')).to_contain_text(
        re.compile(r"0\.\d{3} → 0\.\d{3}")
    )
    expect(section.locator('[data-figure="model-auc"]')).to_contain_text(re.compile(r"0\.\d{3}"))
    expect(section).to_contain_text("What the model weighs that no rule tests")
    section.screenshot(path=SCREENSHOTS / "studio-predictive-weights.png")
    # And the page with the section has no serious accessibility violation
    assert violations(page, axe) == []

    # When the marketer makes a draft with these weights
    section.get_by_role("button", name="Make a draft with these weights").click()

    # Then the draft's page previews it against the live version
    page.wait_for_url(re.compile(r"/studio/models/\d+/$"))
    draft = ScoringModel.objects.get(version_of=model, status="draft")
    expect(page.locator(".messages")).to_contain_text("rule weights from the predictive model")
    expect(page.get_by_role("heading", level=1)).to_contain_text(draft.name)
    expect(page.locator('svg[data-chart="histogram"]')).to_be_visible(timeout=30_000)
    assert draft.rules.get(name="Software").points > 2
    # And the live rules are as they were
    assert rules_state(model) == live
    assert Rule.objects.filter(model=model).count() == len(live)

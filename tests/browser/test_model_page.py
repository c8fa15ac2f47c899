"""A scoring model with many rules, in a real browser: its page stays short, a line per
rule, and a rule's own page shows the fields of the kind chosen."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from crm.models import Role, User
from leads.models import ActivityType
from scoring import changes
from scoring.models import ModelStatus, RescoreJob, Rule, RuleKind, ScoringModel
from tests.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RULES = 75
# The page's height at 1280 px wide: a line per rule, not a form per rule.
MAX_HEIGHT = 5_000


@pytest.fixture
def many_rules() -> ScoringModel:
    """A live model with 75 rules: fit, engagement and negative ones; and a marketer."""
    marketer = User.objects.create_user(username="marketer", password="hotlist", is_staff=True)
    marketer.groups.add(Group.objects.get(name=Role.MARKETER.label))
    model = ScoringModel.objects.create(name="Tuned", status=ModelStatus.ACTIVE, is_default=True)
    types = [value for value, _ in ActivityType.choices]
    rules = []
    for n in range(RULES):
        points = -(5 + n % 10) if n % 7 == 6 else 5 + n % 30
        if n % 2:
            rules.append(
                Rule(
                    model=model,
                    name=f"Title {n}",
                    kind=RuleKind.FIT,
                    points=points,
                    field="job_title",
                    operator="contains",
                    value=f"title {n}",
                )
            )
        else:
            rules.append(
                Rule(
                    model=model,
                    name=f"Visit {n}",
                    kind=RuleKind.ENGAGEMENT,
                    points=points,
                    activity_type=types[n % 12],
                    target="url",
                    pattern=f"/page-{n}",
                    max_per_day=1,
                )
            )
    Rule.objects.bulk_create(rules)
    # A history, as tuning leaves it: changed rules, and rescores done and under way.
    for rule in model.rules.all()[:20]:
        before = changes.snapshot(rule)
        rule.points += 1
        rule.save()
        changes.rule_change_record(rule=rule, before=before, by=marketer)
    for n in range(12):
        RescoreJob.objects.create(model=model, reason=f"Rule changed {n}", status="done")
    RescoreJob.objects.create(model=model, reason="Rule changed", status="queued")
    return model


def test_a_model_with_many_rules_fits_a_short_page_and_a_rule_shows_its_kinds_fields(
    page, many_rules
):
    # Given a marketer on the page of a model with 75 rules
    log_in(page, "marketer")
    page.goto(f"/admin/scoring/scoringmodel/{many_rules.pk}/change/")

    # Then every rule is a line, grouped by kind, and the page stays short
    assert page.locator("tr.rule-row").count() == RULES
    for group in ("Fit rules", "Engagement rules", "Negative rules"):
        expect(page.get_by_role("heading", name=group)).to_be_visible()
    height = page.evaluate("document.body.scrollHeight")
    assert height < MAX_HEIGHT, height

    # When they open a fit rule
    rule = many_rules.rules.filter(kind=RuleKind.FIT, points__gt=0).first()
    page.get_by_role("link", name=rule.name, exact=True).click()
    expect(page.get_by_role("heading", name="Change rule")).to_be_visible()

    # Then its fit fields show and the engagement fields do not
    fit = page.locator("fieldset.rule-kind-fit")
    engagement = page.locator("fieldset.rule-kind-engagement")
    expect(fit.get_by_label("Operator")).to_be_visible()
    expect(engagement).to_be_hidden()

    # When they make it an engagement rule, the engagement fields show instead
    page.get_by_label("Kind").select_option(RuleKind.ENGAGEMENT)
    expect(engagement.get_by_label("Activity type")).to_be_visible()
    expect(fit).to_be_hidden()

    # And saving it as a page view of /pricing brings them back to the model, the rule
    # reading as its new sentence
    engagement.get_by_label("Activity type").select_option(ActivityType.PAGE_VIEW)
    engagement.get_by_label("Target").select_option("url")
    engagement.get_by_label("Pattern").fill("/pricing")
    page.get_by_role("button", name="Save", exact=True).click()
    row = page.locator("tr", has=page.get_by_role("link", name=rule.name, exact=True))
    expect(row).to_contain_text(f"+{rule.points} when a page view URL contains /pricing")
    assert Rule.objects.get(pk=rule.pk).kind == RuleKind.ENGAGEMENT

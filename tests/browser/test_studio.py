"""The scoring studio in a real browser: duplicate the live model as a candidate, edit a
rule in place, read the preview (histogram and ROC AUC), publish, roll back. The live
funnel stays as it was until the candidate is published. And a fit rule added with an
extra condition through the editor, its matches counted as it is typed, beside the
suggested weights.

The draft's preview goes to docs/screenshots/studio-preview.png for the README.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from leads.handoff_models import HandOff
from leads.models import Lead
from scoring.changes import model_duplicate
from scoring.models import Rule, ScoringModel
from scoring.rule_count import rule_match_count
from tests.browser.conftest import log_in

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def funnel() -> tuple:
    return sorted(Lead.objects.values_list("pk", "score", "stage")), HandOff.objects.count()


def test_duplicate_edit_preview_publish_and_roll_back(page, demo_world):
    live = ScoringModel.objects.active().get(is_default=True)
    before = funnel()
    log_in(page, "marketer")

    # When the marketer opens the studio and duplicates the live model as a candidate
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Studio").click()
    page.wait_for_url(re.compile(r"/studio/$"))
    card = page.locator("section.studio-model", has_text=live.name)
    card.get_by_role("button", name="Duplicate as candidate").click()
    page.wait_for_url(re.compile(r"/studio/models/\d+/$"))
    draft = ScoringModel.objects.get(version_of=live, status="draft")
    expect(page.get_by_role("heading", level=1)).to_contain_text(draft.name)

    # And gives its strongest fit rule ten points more, in place
    rule = draft.rules.filter(kind="fit", points__gt=0).order_by("-points").first()
    line = page.locator(f"#rule-{rule.pk}")
    line.get_by_label("Points").fill(str(rule.points + 10))
    line.get_by_role("button", name="Save").click()
    expect(page.locator(f"#rule-{rule.pk}")).to_contain_text("Saved.")
    expect(page.locator(f"#rule-{rule.pk} .rule-sentence")).to_contain_text(
        f"+{rule.points + 10} when"
    )
    expect(page.locator(f"#reach-{rule.pk}")).to_contain_text(re.compile(r"\d+ leads? · "))
    page.wait_for_load_state("networkidle")  # the preview, loaded again for the change

    # Then the preview against the live version shows both histograms and the ROC AUC
    histogram = page.locator('svg[data-chart="histogram"]')
    expect(histogram).to_be_visible(timeout=30_000)
    assert (
        histogram.locator("rect.tone-live").count()
        == histogram.locator("rect.tone-candidate").count()
    )
    expect(page.locator('[data-figure="auc"]')).to_contain_text(re.compile(r"0\.\d{3} → 0\.\d{3}"))
    # And, once the preview is done, the live thresholds and the draft's side by side
    compare = page.locator("#threshold-compare")
    expect(compare).to_contain_text("Live thresholds of", timeout=30_000)
    expect(compare.locator('[data-figure="threshold-hint"]')).to_contain_text(
        "the lowest score of a won lead is"
    )
    page.screenshot(path=SCREENSHOTS / "studio-preview.png", full_page=True)

    # When the marketer raises the draft's base score and saves, a confirmation comes first
    base = draft.base_score
    page.get_by_label("Base score").fill(str(base + 5))
    page.get_by_role("button", name="Save thresholds").click()
    expect(page.get_by_role("button", name="Confirm and save")).to_be_visible(timeout=30_000)
    expect(page.locator(".studio-tried")).to_contain_text("Nothing is saved yet.")
    draft.refresh_from_db()
    assert draft.base_score == base
    page.get_by_role("link", name="Keep the saved ones").click()
    page.wait_for_url(re.compile(rf"/studio/models/{draft.pk}/$"))

    # And nothing of the live funnel moved
    assert funnel() == before

    # When the marketer publishes the candidate
    page.get_by_role("button", name=f"Publish in place of {live.name}").click()
    expect(page.locator(".messages")).to_contain_text(f"“{draft.name}” is live in place of")
    expect(page.locator(".studio-history")).to_contain_text("published")
    draft.refresh_from_db()
    assert draft.status == "active"

    # And rolls it back
    page.get_by_role("button", name=f"Roll back to {live.name}").click()
    expect(page.locator(".messages")).to_contain_text(f"“{live.name}” is live again")
    live.refresh_from_db()
    assert (live.status, live.is_default) == ("active", True)


def test_add_a_fit_rule_with_a_condition_see_its_count_and_the_suggestions(page, demo_world):
    live = ScoringModel.objects.active().get(is_default=True)
    draft = model_duplicate(model=live, by=None)
    log_in(page, "marketer")
    page.goto(f"/studio/models/{draft.pk}/")
    # The draft's preview and its rules' reach, loaded after the page
    expect(page.locator('svg[data-chart="histogram"]')).to_be_visible(timeout=30_000)
    expect(page.locator("#reach-status")).to_contain_text("Matches counted", timeout=30_000)

    def redrawn(action) -> None:
        """Run ``action``, wait for the editor drawn again and htmx wired to it: its
        count is asked for once the new form is processed."""
        with (
            page.expect_response(lambda r: "/rules/count/fit/" in r.url),
            page.expect_response(lambda r: "/rules/new/fit/" in r.url),
        ):
            action()
        expect(editor.locator(".rule-count")).not_to_contain_text("Counting")

    # When the marketer adds a fit rule: seniority is one of C-level or VP, in words
    editor = page.locator("#new-fit-rule")
    redrawn(lambda: page.get_by_role("link", name="Add a fit rule").click())
    redrawn(lambda: editor.get_by_label("Field", exact=True).select_option("seniority"))
    redrawn(lambda: editor.get_by_label("Test", exact=True).select_option("in"))
    editor.get_by_label("C-level").check()
    editor.get_by_label("VP").check()
    editor.get_by_label("Points:", exact=True).fill("12")

    # And an extra condition: the country is DE
    redrawn(lambda: editor.get_by_role("button", name="Add a condition").click())
    condition = editor.get_by_role("group", name="Condition 1")
    redrawn(lambda: condition.get_by_label("Field of condition 1").select_option("country"))
    redrawn(lambda: condition.get_by_label("Test of condition 1").select_option("equals"))
    condition.get_by_label("Value").fill("DE")

    # Then the editor counts the leads the rule matches, as typed
    expected = rule_match_count(
        model=draft,
        rule=Rule(
            model=draft,
            kind="fit",
            points=12,
            field="seniority",
            operator="in",
            value="c_level,vp",
            conditions=[{"field": "country", "operator": "equals", "value": "DE"}],
        ),
    ).leads
    expect(editor.locator(".rule-count")).to_contain_text(
        f"Matches {expected} lead", timeout=15_000
    )

    # And saved, its line reads the new sentence
    # (saved, the draft's preview runs again, then each rule's reach)
    with (
        page.expect_response(lambda r: "/reach/" in r.url, timeout=60_000),
        page.expect_response(lambda r: "/preview/" in r.url, timeout=60_000),
    ):
        editor.get_by_role("button", name="Save rule").click()
    sentence = "+12 when seniority is one of C-level, VP and country is DE"
    expect(page.locator("#rules-fit .rule-sentence", has_text=sentence)).to_have_count(1)
    rule = draft.rules.latest("pk")
    expect(page.locator(f"#rule-{rule.pk} .rule-sentence")).to_have_text(sentence)
    assert rule.conditions == [{"field": "country", "operator": "equals", "value": "DE"}]

    # And the suggested weights section answers, with a table or what it still needs
    section = page.locator("#suggestions")
    expect(page.get_by_role("heading", name="Suggested weights")).to_be_visible()
    expect(section).to_contain_text(
        re.compile(r"Suggested points per rule|won and \d+ lost so far"), timeout=30_000
    )

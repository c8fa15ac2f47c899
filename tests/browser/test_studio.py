"""The scoring studio in a real browser: duplicate the live model as a candidate, edit a
rule in place, read the preview (histogram and ROC AUC), publish, roll back. The live
funnel stays as it was until the candidate is published.

The draft's preview goes to docs/screenshots/studio-preview.png for the README.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from leads.handoff_models import HandOff
from leads.models import Lead
from scoring.models import ScoringModel
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
    page.screenshot(path=SCREENSHOTS / "studio-preview.png", full_page=True)
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

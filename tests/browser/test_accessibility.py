"""Accessibility: axe-core (from the npm registry) on every workspace page, as each role
meets it; no serious or critical violation."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm.models import User
from leads.models import ExportJob, Lead
from scoring.changes import model_duplicate
from scoring.models import ScoringModel
from tests.browser.conftest import log_in
from tests.conftest import IN_CI
from workspace.models import SavedView

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


@pytest.fixture
def axe():
    if not AXE.exists():
        if IN_CI:
            pytest.fail(f"axe-core is missing at {AXE}: run npm ci (CI=true)")
        pytest.skip("needs axe-core from npm ci")
    return AXE.read_text()


def violations(page, axe: str) -> list[str]:
    page.add_script_tag(content=axe)
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(v['nodes'])}"
        for v in found
        if v["impact"] in BLOCKING
    ]


@pytest.mark.parametrize(
    ("username", "paths"),
    [
        (
            "rep1",
            [
                "/",
                "/next/",
                "/leads/",
                "{lead}",
                "{company}",
                "/pipeline/",
                "/tasks/",
                "/notifications/",
            ],
        ),
        (
            "manager",
            [
                "/",
                "/next/",
                "/leads/",
                "{view}",
                "{lead}",
                "{export}",
                "/leads/exports/",
                "/reports/",
                "/reports/funnel/",
                "/reports/score/",
            ],
        ),
        (
            "marketer",
            [
                "/imports/",
                "/imports/new/",
                "/reports/speed/",
                "/reports/rules/",
                "/studio/",
                "{draft}",
                "{new_rule}",
                "{suggestions}",
                "{confirm}",
                "{predictive}",
                "{predictive_weights}",
            ],
        ),
    ],
)
def test_workspace_pages_have_no_serious_accessibility_violation(
    page, demo_world, axe, username, paths
):
    log_in(page, username)
    user = User.objects.get(username=username)
    lead = Lead.objects.visible_to(user).order_by("pk").first()
    # A company page with its account score and people.
    company = Lead.objects.visible_to(user).filter(company__isnull=False).first().company
    # A saved view with extra columns: the list with its views bar, chooser and columns.
    view = SavedView.objects.create(
        owner=user,
        name="Hot callers",
        query="band=hot",
        columns=["phone", "next_task", "last_touch", "source"],
        shared=True,
    )
    # A draft version of the live model: the studio's page with its preview.
    draft = model_duplicate(model=ScoringModel.objects.active().get(is_default=True))
    # An export job's page, its file written: the progress panel with its download link.
    export = ExportJob.objects.create(
        requested_by=user,
        source="workspace",
        query="band=hot",
        file_format="xlsx",
        columns=["id", "email"],
        status="done",
        total_rows=120,
        rows_written=120,
        file_name="export-accessibility.xlsx",
    )
    found = {}
    for path in paths:
        page.goto(
            path.format(
                lead=f"/leads/{lead.pk}/",
                company=f"/companies/{company.pk}/",
                view=f"/leads/views/{view.pk}/",
                draft=f"/studio/models/{draft.pk}/",
                export=f"/leads/exports/{export.pk}/",
                new_rule=f"/studio/models/{draft.pk}/rules/new/fit/",
                suggestions=f"/studio/models/{draft.version_of_id}/suggestions/",
                confirm=f"/studio/models/{draft.pk}/",
                predictive=f"/studio/models/{draft.version_of_id}/predictive/",
                predictive_weights=f"/studio/models/{draft.version_of_id}/predictive/weights/",
            )
        )
        if path == "{confirm}":
            # A base score edit saved: the page that asks to confirm it, with its preview
            page.get_by_label("Base score").fill(str(draft.base_score + 5))
            page.get_by_role("button", name="Save thresholds").click()
            page.get_by_role("button", name="Confirm and save").wait_for(timeout=30_000)
        if path == "{draft}":
            page.locator('svg[data-chart="histogram"]').wait_for(timeout=30_000)
            # The thresholds side by side, loaded once the preview is done
            page.locator("#threshold-compare").wait_for(timeout=30_000)
        problems = violations(page, axe)
        if problems:
            found[path] = problems
    assert found == {}


def test_the_queue_with_its_panels_open_and_a_form_error_has_no_serious_violation(
    page, demo_world, axe
):
    log_in(page, "rep1")
    page.goto("/next/")
    page.keyboard.press("x")
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")  # "Other" without a note: the error shows in place
    page.get_by_text("Say why you skip this lead.").first.wait_for()
    page.keyboard.press("s")
    assert violations(page, axe) == []
    page.keyboard.press("?")
    page.get_by_role("dialog", name="Keyboard shortcuts").wait_for()
    assert violations(page, axe) == []

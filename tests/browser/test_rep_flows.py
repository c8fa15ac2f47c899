"""A rep's day in a real browser: from My day to the lead, why it is hot, logging a call,
finishing the task, accepting and rejecting hand-offs, on a laptop and on a phone.

Each test saves a screenshot to docs/screenshots/ for the README.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from crm.models import User
from leads.handoff_models import HandOff, HandOffStatus
from leads.models import Lead, Stage, Task
from leads.stages import stage_change_record
from tests.browser.conftest import SCREENSHOTS, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def rep1() -> User:
    return User.objects.get(username="rep1")


def hottest_of(user: User) -> list[Lead]:
    return list(Lead.objects.filter(owner=user).open().hottest()[:10])


def handoff_for(lead: Lead, owner: User, hours_left: float) -> HandOff:
    change = stage_change_record(lead=lead, from_stage=lead.stage, to_stage=Stage.SQL)
    Lead.objects.filter(pk=lead.pk).update(stage=Stage.SQL)
    return HandOff.objects.create(
        lead=lead,
        stage_change=change,
        stage=Stage.SQL,
        owner=owner,
        assigned_by="territory DE",
        sla_due_at=timezone.now() + dt.timedelta(hours=hours_left),
    )


def test_rep_reads_why_the_hottest_lead_is_hot_logs_a_call_and_completes_the_task(page, demo_world):
    # Given rep1's hottest open lead, with a follow-up task due today
    lead = hottest_of(rep1())[0]
    task = Task.objects.create(
        lead=lead, assignee=rep1(), title="Call about the pilot", due_at=timezone.now()
    )

    # When the rep logs in, opens the hottest lead from My day and reads why
    log_in(page, "rep1")
    hottest = page.get_by_role("region", name="Hottest leads")
    hottest.get_by_role("link").first.click()
    page.get_by_role("heading", name=f"Why {lead.score} in").wait_for()
    assert page.get_by_role("heading", level=1).inner_text() == str(lead)
    assert page.get_by_text("Adds points").first.is_visible()

    # And logs a call with notes
    page.evaluate("window.sameDocument = true")
    page.get_by_label("What happened").select_option("call")
    page.get_by_role("textbox", name="Notes").fill("Walked through pricing; wants a pilot")
    page.get_by_role("button", name="Log it").click()

    # Then the page updates in place: the message, and the call at the top of the timeline
    page.get_by_role("status").get_by_text("Call logged.").wait_for()
    page.wait_for_function("document.activeElement.classList.contains('notice')")
    first = page.locator("#timeline li").first
    assert "Walked through pricing; wants a pilot" in first.inner_text()
    notes = {"notes": "Walked through pricing; wants a pilot"}
    assert lead.activities.filter(type="call", created_by=rep1(), properties=notes).count() == 1

    # And the timeline filters to calls in place
    page.get_by_label("Show").select_option("call")
    page.wait_for_function(
        "[...document.querySelectorAll('#timeline li.event')]"
        ".every(li => li.classList.contains('event-call'))"
    )
    assert page.locator("#timeline li.event-call").count() >= 1

    # And completing the task takes it off the list
    page.get_by_role("button", name=f"Done: {task.title}").click()
    page.get_by_role("status").get_by_text(f"Done: {task.title}.").wait_for()
    assert page.get_by_role("button", name=f"Done: {task.title}").count() == 0
    task.refresh_from_db()
    assert task.done_at is not None
    assert page.evaluate("window.sameDocument") is True  # htmx updated the page in place


def test_rep_accepts_one_hand_off_and_rejects_another_with_a_reason(page, demo_world):
    # Given two more hand-offs waiting for rep1, on leads the demo world did not hand off
    waiting = HandOff.objects.filter(status=HandOffStatus.PENDING).values("lead")
    fresh = [
        lead
        for lead in hottest_of(rep1())
        if not Lead.objects.filter(pk=lead.pk, pk__in=waiting).exists()
    ]
    first, second = fresh[1:3]
    accepted = handoff_for(first, rep1(), hours_left=3)
    rejected = handoff_for(second, rep1(), hours_left=20)

    # When the rep accepts the first from My day
    log_in(page, "rep1")
    handoffs = page.get_by_role("region", name="New hand-offs")
    handoffs.get_by_text("left to accept").first.wait_for()
    page.screenshot(path=SCREENSHOTS / "handoff.png", full_page=True)
    handoffs.get_by_role("button", name=f"Accept {first}").click()

    # Then it leaves the list in place, and the other is still waiting
    page.get_by_role("status").get_by_text(f"Hand-off of {first} accepted.").wait_for()
    region = page.get_by_role("region", name="New hand-offs")
    assert region.get_by_role("button", name=f"Accept {first}").count() == 0
    assert region.get_by_role("button", name=f"Accept {second}").is_visible()
    assert HandOff.objects.get(pk=accepted.pk).status == HandOffStatus.ACCEPTED

    # When the rep opens the second lead and rejects its hand-off with a reason
    region.get_by_role("link", name=str(second)).click()
    why = page.get_by_label("Why are you rejecting this lead?")
    why.select_option(label="Not a fit for what we sell")
    page.get_by_label("Note for marketing").fill("Student project, no budget")
    page.get_by_role("button", name="Reject and return to marketing").click()

    # Then the lead goes back to marketing
    page.get_by_role("status").get_by_text("back with marketing").wait_for()
    handoff = HandOff.objects.get(pk=rejected.pk)
    assert handoff.status == HandOffStatus.REJECTED
    assert handoff.reject_reason == "Not a fit for what we sell: Student project, no budget"
    assert Lead.objects.get(pk=second.pk).stage == Stage.RECYCLED


def test_the_lead_page_fits_a_phone(browser, live_server, demo_world):
    # Given a phone-sized screen
    context = browser.new_context(
        viewport={"width": 375, "height": 812}, base_url=live_server.url, is_mobile=True
    )
    page = context.new_page()
    lead = hottest_of(rep1())[0]

    # When the rep opens their hottest lead
    log_in(page, "rep1")
    page.goto(lead.get_absolute_url())
    page.get_by_role("heading", name=f"Why {lead.score} in").wait_for()

    # Then nothing is wider than the screen, and the actions are within reach
    width = page.evaluate("document.documentElement.scrollWidth")
    page.screenshot(path=SCREENSHOTS / "lead-page-phone.png")
    log_call = page.get_by_role("button", name="Log it")
    log_call.scroll_into_view_if_needed()
    reachable = log_call.is_visible()
    context.close()
    assert width <= 375
    assert reachable


def test_actions_work_without_javascript(browser, live_server, demo_world):
    # Given a browser with JavaScript off
    context = browser.new_context(java_script_enabled=False, base_url=live_server.url)
    page = context.new_page()
    lead = hottest_of(rep1())[0]

    # When the rep adds a note
    log_in(page, "rep1")
    page.goto(lead.get_absolute_url())
    page.get_by_label("Note", exact=True).fill("Prefers calls before 10")
    page.get_by_role("button", name="Add note").click()

    # Then the page reloads with the message and the note
    page.get_by_text("Note added.").wait_for()
    assert page.get_by_text("Prefers calls before 10").is_visible()
    assert lead.notes.filter(body="Prefers calls before 10").exists()
    context.close()


def test_a_script_in_a_note_shows_as_text(page, demo_world):
    lead = hottest_of(rep1())[0]
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, "rep1")
    page.goto(lead.get_absolute_url())

    page.get_by_label("Note", exact=True).fill("<script>alert(1)</script>")
    page.get_by_role("button", name="Add note").click()

    page.get_by_role("status").get_by_text("Note added.").wait_for()
    assert page.get_by_text("<script>alert(1)</script>").first.is_visible()
    assert dialogs == []

"""Next up in a real browser: a rep works five items of the queue from the keyboard alone
(log outcomes, move up and down, snooze, skip with a reason after a form error), reads
the shortcuts' help and opens the next lead.

Saves docs/screenshots/next-up.png for the README.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from crm.models import User
from leads.handoff_models import HandOff
from leads.models import Activity, Lead, QueueDeferral, Stage, Task
from leads.stages import stage_change_record
from leads.work_queue import work_queue_for
from tests.browser.conftest import SCREENSHOTS, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def current(page) -> int:
    return int(page.locator(".queue-current").get_attribute("data-lead"))


def wait_for_current(page, lead_id: int) -> None:
    page.wait_for_function(
        "id => document.querySelector('.queue-current')?.dataset.lead === String(id)",
        arg=lead_id,
    )


def wait_for_notice(page, text: str) -> None:
    """The message after an action, once htmx has swapped and settled it in (and moved
    the focus to it: keys pressed before would open a panel that then loses the focus)."""
    page.get_by_role("status").get_by_text(text).wait_for()
    page.wait_for_function(
        "!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    )


def test_rep_works_five_items_of_the_queue_from_the_keyboard(page, demo_world):
    # Given rep1's queue, with a hand-off past its SLA and a task due on top of the demo's
    rep = User.objects.get(username="rep1")
    mine = Lead.objects.filter(owner=rep).open().exclude(stage=Stage.SQL)
    leads = list(mine.order_by("pk")[:2])
    # What the lead did lately, which the queue says as why
    now = timezone.now()
    Activity.objects.bulk_create(
        [Activity(lead=leads[0], type="demo_request", occurred_at=now - dt.timedelta(days=1))]
        + [
            Activity(
                lead=leads[0],
                type="page_view",
                url="https://hotlist.example/pricing",
                occurred_at=now - dt.timedelta(days=days, hours=1),
            )
            for days in (0, 2, 3)
        ]
    )
    change = stage_change_record(lead=leads[0], from_stage=leads[0].stage, to_stage=Stage.SQL)
    Lead.objects.filter(pk=leads[0].pk).update(stage=Stage.SQL)
    handoff = HandOff.objects.create(
        lead=leads[0],
        stage_change=change,
        stage=Stage.SQL,
        owner=rep,
        created_at=timezone.now() - dt.timedelta(hours=2),
        sla_due_at=timezone.now() - dt.timedelta(minutes=30),
    )
    Task.objects.create(
        lead=leads[1], assignee=rep, title="Call about the pilot", due_at=timezone.now()
    )
    started = timezone.now()
    queue = [item.lead.pk for item in work_queue_for(rep, now=started)]
    assert len(queue) >= 6
    assert queue[0] == leads[0].pk

    log_in(page, "rep1")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Next up").click()
    page.get_by_role("heading", level=1, name="Next up").wait_for()
    assert current(page) == queue[0]
    assert page.get_by_text("Hand-off past its SLA").first.is_visible()
    page.screenshot(path=str(SCREENSHOTS / "next-up.png"), full_page=True)

    # 1. Connected: logged, the first touch of the hand-off, and the next item is current
    page.keyboard.press("1")
    wait_for_notice(page, "Connected: logged")
    wait_for_current(page, queue[1])
    handoff.refresh_from_db()
    assert handoff.first_touch_at is not None
    logged = Activity.objects.filter(lead_id=queue[0], occurred_at__gte=started)
    assert logged.get().properties == {"outcome": "connected"}

    # 2. Down and back up, then no answer
    page.keyboard.press("j")
    wait_for_current(page, queue[2])
    page.keyboard.press("k")
    wait_for_current(page, queue[1])
    page.keyboard.press("3")
    wait_for_notice(page, "No answer: logged")
    wait_for_current(page, queue[2])

    # 3. Snooze for an hour: s, then Enter
    page.keyboard.press("s")
    page.keyboard.press("Enter")
    wait_for_notice(page, "snoozed until")
    wait_for_current(page, queue[3])

    # 4. Skip as "Other" without a note: the error shows in place; then with a note
    page.keyboard.press("x")
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.get_by_text("Say why you skip this lead.").first.wait_for()
    assert current(page) == queue[3]
    assert not QueueDeferral.objects.filter(reason="other").exists()
    note = page.get_by_role("textbox", name="Note (needed for")
    note.fill("Moved to the Berlin office")
    note.press("Enter")
    wait_for_notice(page, "skipped (other)")
    wait_for_current(page, queue[4])

    # 5. Meeting booked
    page.keyboard.press("4")
    wait_for_notice(page, "Meeting booked: logged")
    wait_for_current(page, queue[5])

    # The help lists the keys; Escape closes it; o opens the current lead
    page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    help_dialog.wait_for()
    assert "Log the call: not interested" in help_dialog.inner_text()
    page.keyboard.press("Escape")
    help_dialog.wait_for(state="hidden")
    page.keyboard.press("o")
    page.wait_for_url(f"**/leads/{queue[5]}/")

    outcomes = dict(
        Activity.objects.filter(type="call", occurred_at__gte=started).values_list(
            "lead_id", "properties__outcome"
        )
    )
    assert outcomes == {
        queue[0]: "connected",
        queue[1]: "no_answer",
        queue[4]: "meeting_booked",
    }
    deferrals = dict(QueueDeferral.objects.filter(user=rep).values_list("lead_id", "reason"))
    assert deferrals == {
        queue[0]: "worked",
        queue[1]: "worked",
        queue[2]: "snoozed",
        queue[3]: "other",
        queue[4]: "worked",
    }

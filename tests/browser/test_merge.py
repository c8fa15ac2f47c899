"""Merging duplicate leads as a manager meets it, in a real browser: the possible
duplicate on the lead page and in the admin's review queue, the merge page with a
choice per conflicting field, the survivor with everything of both, the merged lead's
old address, the undo, and "not a duplicate" surviving the nightly scan.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from crm.models import User
from leads.activities import activities_record
from leads.deals import deal_save
from leads.duplicates import duplicates_scan
from leads.models import (
    Activity,
    ActivityType,
    Company,
    Deal,
    DuplicatePair,
    Lead,
    LeadMerge,
    Note,
    PairStatus,
)
from leads.profiles import lead_save_profile
from tests.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUEUE = "/admin/leads/duplicatepair/"


def rep1() -> User:
    return User.objects.get(username="rep1")


def ago(days: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


def pair_of(a: Lead, b: Lead) -> DuplicatePair:
    low, high = sorted((a.pk, b.pk))
    return DuplicatePair.objects.get(lead_a=low, lead_b=high)


def run_action(page, name: str) -> None:
    """Run the admin action on the rows ticked, as a person does: choose it, press Go."""
    page.get_by_role("combobox", name="Action").select_option(label=name)
    page.get_by_role("button", name="Go").click()


@pytest.fixture
def twins(demo_world) -> tuple[Lead, Lead]:
    """Two records of one person in rep1's book. The second came from a webinar sign-up,
    its address typed with capitals and a +tag: one address differing only in case is
    one lead (addresses are unique regardless of case), but the tag makes a second
    record of the same mailbox. It has another phone and job title, and the history:
    activities, a deal, a note. The nightly scan has run."""
    company = Company.objects.create(name="Analytical Engines Ltd", domain="engines.example")
    kept = Lead.objects.create(
        first_name="Ada",
        last_name="Lovelace",
        email="ada.lovelace@engines.example",
        phone="+44 20 7946 0018",
        job_title="CTO",
        company=company,
        country="GB",
        city="London",
        owner=rep1(),
        created_at=ago(30),
    )
    twin = Lead.objects.create(
        first_name="Ada",
        last_name="Lovelace",
        email="Ada.Lovelace+Webinar@Engines.EXAMPLE",
        phone="+44 20 7946 0975",
        job_title="Head of Engineering",
        company=company,
        country="GB",
        owner=rep1(),
        created_at=ago(3),
    )
    activities_record(
        lead=kept,
        activities=[Activity(type=ActivityType.PAGE_VIEW, url="/docs/", occurred_at=ago(20))],
    )
    activities_record(
        lead=twin,
        activities=[
            Activity(
                type=ActivityType.WEBINAR_REGISTRATION,
                url="/webinars/difference-engine/",
                occurred_at=ago(2),
            ),
            Activity(
                type=ActivityType.CALL,
                properties={"notes": "Wants a pilot for the analytics team"},
                created_by=rep1(),
                occurred_at=ago(1),
            ),
        ],
    )
    deal_save(deal=Deal(lead=twin, name="Engine pilot", amount=12000))
    Note.objects.create(lead=twin, body="Met at the webinar; prefers email", author=rep1())
    duplicates_scan()
    return kept, twin


def test_manager_merges_two_records_of_one_person_and_undoes_it(page, twins):
    kept, twin = twins
    assert twin.email == "ada.lovelace+webinar@engines.example"  # stored lower-cased
    pair = pair_of(kept, twin)
    assert pair.sure

    # When the manager opens the older record, its possible duplicate is named there
    log_in(page, "manager")
    page.goto(kept.get_absolute_url())
    card = page.get_by_role("region", name="Possible duplicates")
    assert card.get_by_role("link", name=str(twin)).get_attribute("href") == (
        twin.get_absolute_url()
    )
    assert "same mailbox" in card.inner_text()
    review_here = card.get_by_role("link", name="Review and merge").get_attribute("href")

    # And in the admin's review queue, with its evidence and the same merge page
    page.goto(QUEUE)
    row = page.locator("#result_list tbody tr", has=page.get_by_text(f"#{twin.pk}", exact=True))
    assert kept.email in row.inner_text()
    assert "same mailbox" in row.inner_text()
    review = row.get_by_role("link", name="Review and merge")
    assert review.get_attribute("href") == review_here
    review.click()

    # Then the merge page shows both records side by side, with their history
    page.get_by_role("heading", name="Merge duplicate leads").wait_for()
    table = page.get_by_role("table")
    history = table.locator("tr", has=page.get_by_role("rowheader", name="History"))
    assert "2 activities, 1 deals, 1 notes" in history.inner_text()

    # When they keep the older record, take the other's job title and merge
    page.get_by_label(f"keep lead {kept.pk}").check()
    job_title = table.locator("tr", has=page.get_by_role("rowheader", name="job_title"))
    job_title.get_by_label("Head of Engineering").check()
    phone = table.locator("tr", has=page.get_by_role("rowheader", name="phone"))
    assert phone.get_by_label(kept.phone).is_checked()
    page.get_by_role("button", name="Merge", exact=True).click()

    # Then the queue says so and offers the undo
    message = page.locator(".messagelist .success")
    message.wait_for()
    assert f"Merged lead {twin.pk} into lead {kept.pk}." in message.inner_text()
    undo_link = message.get_by_role("link", name="Undo it").get_attribute("href")

    # And the survivor keeps its id, the chosen job title, its own phone, and shows the
    # other record's activities, deal and note
    message.get_by_role("link", name=f"lead {kept.pk}").click()
    assert page.url.endswith(f"/admin/leads/lead/{kept.pk}/change/")
    assert page.get_by_label("Job title").input_value() == "Head of Engineering"
    page.goto(kept.get_absolute_url())
    profile = page.locator("#profile")
    assert "Head of Engineering" in profile.inner_text()
    assert kept.phone in profile.inner_text()
    assert twin.phone not in profile.inner_text()
    timeline = page.locator("#timeline").inner_text()
    assert "Wants a pilot for the analytics team" in timeline
    assert "Webinar registration" in timeline
    assert "Page view" in timeline
    assert "Met at the webinar; prefers email" in page.locator("#notes").inner_text()
    assert "Engine pilot" in page.locator("#deals").inner_text()
    assert page.get_by_role("region", name="Possible duplicates").count() == 0

    # And the other record's old address opens the survivor
    page.goto(twin.get_absolute_url())
    assert page.url.endswith(kept.get_absolute_url())
    assert page.get_by_role("heading", level=1).inner_text() == str(kept)

    # When the manager follows "Undo it" to the survivor's merges and undoes this one
    page.goto(undo_link)
    assert page.locator("#searchbar").input_value() == str(kept.pk)
    page.get_by_role("checkbox", name=re.compile(f"{twin.pk} into {kept.pk}")).check()
    run_action(page, "Undo the selected merges (latest first)")
    page.locator(".messagelist .success").get_by_text("Undid 1 merge(s).").wait_for()

    # Then both records are back with their own fields and their own history
    page.goto(twin.get_absolute_url())
    assert page.url.endswith(twin.get_absolute_url())
    profile = page.locator("#profile").inner_text()
    assert "Head of Engineering" in profile
    assert twin.phone in profile
    assert "Wants a pilot for the analytics team" in page.locator("#timeline").inner_text()
    assert "Met at the webinar; prefers email" in page.locator("#notes").inner_text()
    assert "Engine pilot" in page.locator("#deals").inner_text()

    page.goto(kept.get_absolute_url())
    profile = page.locator("#profile").inner_text()
    assert "CTO" in profile
    assert "Head of Engineering" not in profile
    assert kept.phone in profile
    timeline = page.locator("#timeline").inner_text()
    assert "Page view" in timeline
    assert "Wants a pilot for the analytics team" not in timeline
    assert "No notes yet." in page.locator("#notes").inner_text()
    assert "No deals yet." in page.locator("#deals").inner_text()

    # And the pair is back for review, named on the lead page again
    card = page.get_by_role("region", name="Possible duplicates")
    assert card.get_by_role("link", name=str(twin)).is_visible()
    merge = LeadMerge.objects.get()
    assert merge.undone_at is not None
    assert pair_of(kept, twin).status == PairStatus.OPEN


def test_not_a_duplicate_from_the_queue_stays_answered_after_the_nightly_scan(page, demo_world):
    # Given two colleagues who share the switchboard number, found by the scan
    company = Company.objects.create(name="Bletchley Park Ltd", domain="bletchley.example")
    grace, alan = (
        Lead.objects.create(
            first_name=first,
            last_name=last,
            email=f"{first.lower()}@bletchley.example",
            phone="+44 1908 640404",
            company=company,
            country="GB",
            owner=rep1(),
        )
        for first, last in (("Grace", "Hopper"), ("Alan", "Turing"))
    )
    duplicates_scan()
    pair = pair_of(grace, alan)
    assert pair.status == PairStatus.OPEN

    # And the manager sees it on the lead page
    log_in(page, "manager")
    page.goto(grace.get_absolute_url())
    card = page.get_by_role("region", name="Possible duplicates")
    assert card.get_by_role("link", name=str(alan)).is_visible()
    assert "same phone" in card.inner_text()

    # When they answer "not a duplicate" from the review queue's pairs to review
    page.goto(QUEUE)
    page.locator("#changelist-filter").get_by_role("link", name="To review").click()
    page.wait_for_url(re.compile(r"status__exact=open"))
    row = page.locator("#result_list tbody tr", has=page.get_by_text(f"#{alan.pk}", exact=True))
    assert "same phone" in row.inner_text()
    row.get_by_role("checkbox").check()
    run_action(page, "Not a duplicate: never suggest these pairs again")
    page.locator(".messagelist").get_by_text("1 pair(s) answered").wait_for()

    # Then the pair leaves the open queue and the lead page
    assert_pair_gone(page, grace, alan)

    # When one of them changes and the nightly scan compares them again
    grace.city = "Milton Keynes"
    lead_save_profile(lead=grace, changed_fields=["city"])
    scan = duplicates_scan()
    assert (scan.leads, scan.pairs, scan.new_pairs) == (1, 1, 0)  # found again, not new

    # Then the answer holds: still gone from the queue and the lead page
    assert pair_of(grace, alan).status == PairStatus.NOT_DUPLICATE
    assert_pair_gone(page, grace, alan)


def assert_pair_gone(page, grace: Lead, alan: Lead) -> None:
    page.goto(f"{QUEUE}?status__exact=open")
    listed = (
        page.locator("#result_list").inner_text() if page.locator("#result_list").count() else ""
    )
    assert f"#{alan.pk}" not in listed
    assert f"#{grace.pk}" not in listed
    page.goto(grace.get_absolute_url())
    page.get_by_role("heading", level=1).wait_for()
    assert page.get_by_role("region", name="Possible duplicates").count() == 0

"""The duplicates' admin: the review queue, the merge page, bulk merges of sure pairs,
"not a duplicate", the undo of merges, the warning on adding a lead, and who may."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from crm.models import Role, Team
from leads.duplicates import duplicates_scan
from leads.merging import leads_merge
from leads.models import DuplicatePair, DuplicateSettings, Lead, LeadMerge, Note, PairStatus
from tests.admin_forms import changeform_data
from tests.conftest import make_user
from tests.factories import LeadFactory

QUEUE = "admin:leads_duplicatepair_changelist"


@pytest.fixture
def staff(client):
    def sign_in(user):
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        client.force_login(user)
        return client

    return sign_in


def pair_of(a: Lead, b: Lead) -> DuplicatePair:
    low, high = sorted((a.pk, b.pk))
    return DuplicatePair.objects.get(lead_a=low, lead_b=high)


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def phone_twins(rep):
    a = LeadFactory(owner=rep, phone="+49 30 1234567", job_title="CTO", last_name="Lovelace")
    b = LeadFactory(owner=rep, phone="030 1234567", country="DE", job_title="", last_name="King")
    Note.objects.create(lead=b, body="Prefers mornings")
    duplicates_scan()
    return a, b


def test_the_queue_shows_each_pair_with_its_evidence(staff, marketer, phone_twins):
    a, b = phone_twins
    response = staff(marketer).get(reverse(QUEUE))

    assert response.status_code == 200
    page = response.content.decode()
    assert "same phone" in page
    assert a.email in page
    assert b.email in page
    assert reverse("admin:leads_duplicatepair_merge", args=[pair_of(a, b).pk]) in page


def test_merge_page_lets_the_reviewer_choose_the_survivor_and_each_field(
    staff, marketer, phone_twins
):
    # Given the merge page of a pair that disagrees on the last name
    a, b = phone_twins
    client = staff(marketer)
    url = reverse("admin:leads_duplicatepair_merge", args=[pair_of(a, b).pk])
    page = client.get(url)
    assert page.status_code == 200
    conflicts = [row["field"] for row in page.context["conflicts"]]
    assert {"last_name", "email", "phone", "job_title"} <= set(conflicts)
    assert "owner" not in conflicts

    # When the reviewer keeps b and a's last name
    response = client.post(url, {"survivor": b.pk, "field_last_name": a.pk})

    # Then b stays with a's last name and everything of a, and the merge is recorded
    assert response.status_code == 302
    survivor = Lead.objects.get(pk=b.pk)
    assert survivor.last_name == "Lovelace"
    assert survivor.job_title == "CTO"  # b's was empty
    assert not Lead.objects.filter(pk=a.pk).exists()
    merge = LeadMerge.objects.get()
    assert (merge.survivor_id, merge.merged_ids, merge.by) == (b.pk, [a.pk], marketer)
    pair = DuplicatePair.objects.get(merge=merge)
    assert pair.status == PairStatus.MERGED
    assert any("Undo it" in text for text in texts(response))


def test_not_a_duplicate_is_remembered_and_the_pair_never_comes_back(staff, marketer, phone_twins):
    a, b = phone_twins
    url = reverse("admin:leads_duplicatepair_merge", args=[pair_of(a, b).pk])

    staff(marketer).post(url, {"not_duplicate": "1"})

    pair = pair_of(a, b)
    assert (pair.status, pair.decided_by) == (PairStatus.NOT_DUPLICATE, marketer)
    duplicates_scan(full=True)
    assert pair_of(a, b).status == PairStatus.NOT_DUPLICATE
    assert Lead.objects.filter(pk__in=[a.pk, b.pk]).count() == 2


def test_bulk_action_merges_the_sure_pairs_and_leaves_the_others(staff, admin_user):
    # Given three records of one mailbox, and a pair by phone only
    ada = [
        LeadFactory(email="ada@example.com"),
        LeadFactory(email="ada+news@example.com"),
        LeadFactory(email="ada+crm@example.com"),
    ]
    phone = [LeadFactory(phone="+49 30 7654321"), LeadFactory(phone="+49 30 7654321")]
    duplicates_scan()
    assert DuplicatePair.objects.filter(sure=True).count() == 3

    # When an admin selects every pair and merges the sure ones
    response = staff(admin_user).post(
        reverse(QUEUE),
        {
            "action": "merge_sure_pairs",
            "_selected_action": list(DuplicatePair.objects.values_list("pk", flat=True)),
        },
    )

    # Then the three Adas are one lead (one merge), and the phone pair waits for review
    assert response.status_code == 302
    assert Lead.objects.filter(pk__in=[x.pk for x in ada]).count() == 1
    assert LeadMerge.objects.count() == 1
    assert Lead.objects.filter(pk__in=[x.pk for x in phone]).count() == 2
    assert pair_of(*phone).status == PairStatus.OPEN
    assert any("1 merge(s): 2 lead(s)" in text for text in texts(response))


def test_undo_from_the_merges_list_brings_the_lead_back(staff, marketer, phone_twins):
    a, b = phone_twins
    client = staff(marketer)
    client.post(
        reverse("admin:leads_duplicatepair_merge", args=[pair_of(a, b).pk]), {"survivor": a.pk}
    )
    merge = LeadMerge.objects.get()
    assert client.get(reverse("admin:leads_leadmerge_change", args=[merge.pk])).status_code == 200

    response = client.post(
        reverse("admin:leads_leadmerge_changelist"),
        {"action": "undo", "_selected_action": [merge.pk]},
    )

    assert response.status_code == 302
    assert Lead.objects.get(pk=b.pk).notes.count() == 1
    merge.refresh_from_db()
    assert merge.undone_by == marketer
    assert pair_of(a, b).status == PairStatus.OPEN


def test_the_undo_link_after_a_merge_opens_the_merges_list_that_undoes_it(
    staff, manager, phone_twins
):
    # Given a manager who merged a pair of their team
    a, b = phone_twins
    client = staff(manager)
    response = client.post(
        reverse("admin:leads_duplicatepair_merge", args=[pair_of(a, b).pk]),
        {"survivor": a.pk},
        follow=True,
    )
    merge = LeadMerge.objects.get()

    # When they follow the message's "Undo it" link
    undo = re.search(r'<a href="([^"]+)">Undo it</a>', response.content.decode())
    assert undo is not None
    page = client.get(html.unescape(undo.group(1)))

    # Then it lists this merge with the undo action, which brings the lead back
    assert page.status_code == 200
    assert [m.pk for m in page.context["cl"].result_list] == [merge.pk]
    assert "undo" in dict(page.context["action_form"].fields["action"].choices)
    client.post(page.request["PATH_INFO"], {"action": "undo", "_selected_action": [merge.pk]})
    assert Lead.objects.get(pk=b.pk).notes.count() == 1


def test_a_manager_reviews_only_pairs_of_leads_in_view(staff, manager, rep, phone_twins):
    # Given a pair of the manager's team and a pair of another team
    south = make_user("south-rep", Role.REP, team=Team.objects.create(name="South"))
    far = [LeadFactory(owner=south, phone="+1 415 555 0100") for _ in range(2)]
    duplicates_scan()
    client = staff(manager)

    listed = client.get(reverse(QUEUE)).context["cl"].result_list
    far_url = reverse("admin:leads_duplicatepair_merge", args=[pair_of(*far).pk])

    assert [p.pk for p in listed] == [pair_of(*phone_twins).pk]
    assert client.get(far_url).status_code == 302
    assert client.post(far_url, {"survivor": far[0].pk}).status_code == 302
    assert Lead.objects.filter(pk__in=[x.pk for x in far]).count() == 2


def test_reps_cannot_open_the_queue_or_merge(staff, rep, phone_twins):
    client = staff(rep)
    url = reverse("admin:leads_duplicatepair_merge", args=[pair_of(*phone_twins).pk])

    assert client.get(reverse(QUEUE)).status_code == 403
    assert client.post(url, {"survivor": phone_twins[0].pk}).status_code in (302, 403)
    assert Lead.objects.filter(pk__in=[x.pk for x in phone_twins]).count() == 2
    assert not LeadMerge.objects.exists()


def test_adding_a_lead_in_the_admin_warns_of_a_likely_duplicate(staff, admin_user):
    known = LeadFactory(phone="+49 30 1234567")
    duplicates_scan()
    client = staff(admin_user)
    data = changeform_data(client.get(reverse("admin:leads_lead_add")))
    data.update({"email": "new@example.com", "phone": "030 1234567", "country": "DE"})

    response = client.post(reverse("admin:leads_lead_add"), data)

    assert response.status_code == 302
    created = Lead.objects.get(email="new@example.com")
    warnings = [t for t in texts(response) if "may be a duplicate" in t]
    assert warnings
    assert reverse("admin:leads_lead_change", args=[known.pk]) in warnings[0]
    assert "same phone" in warnings[0]
    assert DuplicatePair.objects.filter(
        lead_a=min(known.pk, created.pk), lead_b=max(known.pk, created.pk)
    ).exists()


def test_the_admin_sets_the_name_similarity_threshold(staff, marketer):
    client = staff(marketer)
    assert client.get(reverse("admin:leads_duplicatesettings_changelist")).status_code == 200
    url = reverse("admin:leads_duplicatesettings_change", args=[1])

    response = client.post(url, {"name_similarity": "0.8", "company_name_similarity": "0.7"})

    assert response.status_code == 302
    assert DuplicateSettings.load().name_similarity == 0.8


def test_the_merge_record_says_what_became_of_the_stage_its_rescore_moved(
    staff, marketer, threshold_pair
):
    # Given a merge whose rescore made the survivor an MQL, undone from the admin
    a, b = threshold_pair
    client = staff(marketer)
    merge = leads_merge(survivor_id=a.pk, others=[b.pk], fields={}, by=marketer)
    page = reverse("admin:leads_leadmerge_change", args=[merge.pk])
    assert "stage: New → moved by the merge's rescore</div>" in client.get(page).text

    client.post(
        reverse("admin:leads_leadmerge_changelist"),
        {"action": "undo", "_selected_action": [merge.pk]},
    )

    # Then the record shows the move taken back, and the lead is new again
    assert "moved by the merge's rescore — taken back on undo" in client.get(page).text
    assert Lead.objects.get(pk=a.pk).stage == "new"

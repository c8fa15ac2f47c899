"""Duplicates and merges on the rep workspace's lead page."""

from __future__ import annotations

from django.urls import reverse

from crm.models import Role, Team
from leads.duplicates import duplicates_scan
from leads.merging import lead_merge_undo, leads_merge
from tests.conftest import make_user
from tests.factories import LeadFactory


def test_a_merged_leads_page_opens_the_survivor_until_the_merge_is_undone(client, rep, marketer):
    # Given a lead merged into another
    survivor, merged = LeadFactory(owner=rep), LeadFactory(owner=rep)
    merge = leads_merge(survivor_id=survivor.pk, others=[merged.pk], by=marketer)
    client.force_login(rep)

    # When the rep opens the merged lead's page, it sends them to the survivor's, with a
    # temporary redirect: a browser keeps a permanent one even after the merge is undone
    response = client.get(reverse("lead-detail", args=[merged.pk]))

    assert response.status_code == 302
    assert response["Location"] == reverse("lead-detail", args=[survivor.pk])

    # And once the merge is undone, the page is the lead's own again
    lead_merge_undo(merge_id=merge.pk, by=marketer)
    assert client.get(reverse("lead-detail", args=[merged.pk])).status_code == 200


def test_a_merged_lead_out_of_view_is_not_found(client, rep, marketer):
    south = make_user("south-rep", Role.REP, team=Team.objects.create(name="South"))
    survivor, merged = LeadFactory(owner=south), LeadFactory(owner=south)
    leads_merge(survivor_id=survivor.pk, others=[merged.pk], by=marketer)
    client.force_login(rep)

    assert client.get(reverse("lead-detail", args=[merged.pk])).status_code == 404


def test_the_lead_page_names_possible_duplicates_the_person_can_see(client, rep, manager):
    # Given a lead with a twin by phone in the rep's pool and one of another team
    south = make_user("south-rep", Role.REP, team=Team.objects.create(name="South"))
    lead = LeadFactory(owner=rep, phone="+49 30 1234567")
    twin = LeadFactory(owner=None, phone="030 1234567", country="DE")
    hidden = LeadFactory(owner=south, phone="+49 30 1234567", first_name="Zebedee")
    duplicates_scan()

    # When the rep opens the lead
    client.force_login(rep)
    page = client.get(reverse("lead-detail", args=[lead.pk])).content.decode()

    # Then the twin in view is named with the evidence, the other team's lead is not,
    # and the rep gets no merge link
    assert reverse("lead-detail", args=[twin.pk]) in page
    assert "same phone" in page
    assert reverse("lead-detail", args=[hidden.pk]) not in page
    assert "Review and merge" not in page

    # And a manager with admin access gets the link to the merge page
    manager.is_staff = True
    manager.save(update_fields=["is_staff"])
    client.force_login(manager)
    assert "Review and merge" in client.get(reverse("lead-detail", args=[lead.pk])).content.decode()

"""Duplicate companies in the admin: the review queue, the merge page from a pair and from
"merge selected companies", bulk merges, "not a duplicate", the undo, and who may."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from crm.models import Role, Team
from leads.company_duplicates import company_duplicates_scan
from leads.models import (
    Company,
    CompanyAlias,
    CompanyDuplicatePair,
    CompanyMerge,
    DuplicateSettings,
    Lead,
    PairStatus,
)
from tests.conftest import make_user
from tests.factories import CompanyFactory, LeadFactory

QUEUE = "admin:leads_companyduplicatepair_changelist"
COMPANIES = "admin:leads_company_changelist"


@pytest.fixture
def staff(client):
    def sign_in(user):
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        client.force_login(user)
        return client

    return sign_in


def pair_of(a: Company, b: Company) -> CompanyDuplicatePair:
    low, high = sorted((a.pk, b.pk))
    return CompanyDuplicatePair.objects.get(company_a=low, company_b=high)


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def twins(rep):
    """One company twice, by website, each with a lead of the rep's."""
    a = CompanyFactory(name="Initech", domain="initech.example", industry="software", city="")
    b = CompanyFactory(
        name="Initech LLC", domain="https://www.initech.example/", industry="finance", city="Austin"
    )
    LeadFactory(owner=rep, company=a)
    LeadFactory(owner=rep, company=b)
    company_duplicates_scan()
    return a, b


def test_the_queue_shows_each_pair_with_its_evidence(staff, marketer, twins):
    a, b = twins

    response = staff(marketer).get(reverse(QUEUE))

    assert response.status_code == 200
    page = response.content.decode()
    assert "same website initech.example" in page
    assert "Initech LLC" in page
    assert reverse("admin:leads_companyduplicatepair_merge", args=[pair_of(a, b).pk]) in page


def test_merge_page_lets_the_reviewer_choose_the_survivor_and_each_field(staff, marketer, twins):
    # Given the merge page of a pair that disagrees on name, website and industry
    a, b = twins
    client = staff(marketer)
    url = reverse("admin:leads_companyduplicatepair_merge", args=[pair_of(a, b).pk])
    page = client.get(url)
    assert page.status_code == 200
    conflicts = [row["field"] for row in page.context["conflicts"]]
    assert {"name", "domain", "industry", "city"} <= set(conflicts)
    assert "country" not in conflicts

    # When the reviewer keeps b with a's name
    response = client.post(url, {"survivor": b.pk, "field_name": a.pk})

    # Then b stays with a's name and b's own industry, a's lead is b's, and it is recorded
    assert response.status_code == 302
    survivor = Company.objects.get(pk=b.pk)
    assert (survivor.name, survivor.industry, survivor.city) == ("Initech", "finance", "Austin")
    assert not Company.objects.filter(pk=a.pk).exists()
    assert Lead.objects.filter(company=b).count() == 2
    merge = CompanyMerge.objects.get()
    assert (merge.survivor_id, merge.merged_ids, merge.by) == (b.pk, [a.pk], marketer)
    assert pair_of(a, b).status == PairStatus.MERGED
    assert any("Undo it" in text for text in texts(response))


def test_not_a_duplicate_is_remembered_and_the_pair_never_comes_back(staff, marketer, twins):
    a, b = twins
    url = reverse("admin:leads_companyduplicatepair_merge", args=[pair_of(a, b).pk])

    staff(marketer).post(url, {"not_duplicate": "1"})

    pair = pair_of(a, b)
    assert (pair.status, pair.decided_by) == (PairStatus.NOT_DUPLICATE, marketer)
    company_duplicates_scan(full=True)
    assert pair_of(a, b).status == PairStatus.NOT_DUPLICATE
    assert Company.objects.filter(pk__in=[a.pk, b.pk]).count() == 2


def test_merge_selected_companies_opens_the_merge_page_for_them(staff, admin_user):
    # Given three records of one company that no scan has paired
    records = [
        CompanyFactory(name="Vandelay", domain="", employee_count=None, city="New York"),
        CompanyFactory(name="Vandelay Industries", domain="vandelay.example"),
        CompanyFactory(name="Vandelay Imports", domain="", industry="retail"),
    ]
    for company in records:
        LeadFactory(company=company)
    client = staff(admin_user)

    # When an admin selects them in the companies list and asks to merge them
    chosen = client.post(
        reverse(COMPANIES),
        {"action": "merge_companies", "_selected_action": [c.pk for c in records]},
    )

    # Then the merge page shows the three side by side, the most complete to stay
    assert chosen.status_code == 302
    page = client.get(chosen["Location"])
    assert page.status_code == 200
    assert [c["company"] for c in page.context["columns"]] == [records[1], records[0], records[2]]
    assert len(page.context["columns"]) == 3

    # And merging keeps the second with the first's city, all leads on it
    response = client.post(
        chosen["Location"], {"survivor": records[1].pk, "field_city": records[0].pk}
    )
    assert response.status_code == 302
    survivor = Company.objects.get(pk=records[1].pk)
    assert survivor.city == "New York"
    assert Lead.objects.filter(company=survivor).count() == 3
    assert set(CompanyAlias.objects.values_list("alias_id", flat=True)) == {
        records[0].pk,
        records[2].pk,
    }


def test_merge_selected_needs_two_companies(staff, admin_user):
    one = CompanyFactory()

    response = staff(admin_user).post(
        reverse(COMPANIES), {"action": "merge_companies", "_selected_action": [one.pk]}
    )

    assert response.status_code == 302
    assert any("Select 2 to" in text for text in texts(response))
    assert not CompanyMerge.objects.exists()


def test_bulk_action_merges_the_sure_pairs_and_leaves_the_others(staff, admin_user):
    # Given three records of one website, and a pair by their leads' address only
    acme = [
        CompanyFactory(name="Acme", domain="acme.example"),
        CompanyFactory(name="Acme Inc", domain="www.acme.example"),
        CompanyFactory(name="ACME Europe", domain="http://acme.example/eu"),
    ]
    mail = [CompanyFactory(name="Globex", domain="globex.example"), CompanyFactory(domain="")]
    LeadFactory(company=mail[1], email="hank@globex.example")
    company_duplicates_scan()
    assert CompanyDuplicatePair.objects.filter(sure=True).count() == 3

    # When an admin selects every pair and merges the sure ones
    response = staff(admin_user).post(
        reverse(QUEUE),
        {
            "action": "merge_sure_pairs",
            "_selected_action": list(CompanyDuplicatePair.objects.values_list("pk", flat=True)),
        },
    )

    # Then the three are one company (one merge), and the other pair waits for review
    assert response.status_code == 302
    assert Company.objects.filter(pk__in=[c.pk for c in acme]).count() == 1
    assert CompanyMerge.objects.count() == 1
    assert pair_of(*mail).status == PairStatus.OPEN
    assert any("1 merge(s): 2 company(ies)" in text for text in texts(response))


def test_undo_from_the_merges_list_brings_the_company_back(staff, marketer, twins):
    a, b = twins
    client = staff(marketer)
    client.post(
        reverse("admin:leads_companyduplicatepair_merge", args=[pair_of(a, b).pk]),
        {"survivor": a.pk, "field_industry": b.pk},
    )
    merge = CompanyMerge.objects.get()
    detail = client.get(reverse("admin:leads_companymerge_change", args=[merge.pk]))
    assert detail.status_code == 200
    assert "industry: software → finance" in detail.content.decode()

    response = client.post(
        reverse("admin:leads_companymerge_changelist"),
        {"action": "undo", "_selected_action": [merge.pk]},
    )

    assert response.status_code == 302
    assert Company.objects.get(pk=a.pk).industry == "software"
    assert Company.objects.get(pk=b.pk).leads.count() == 1
    merge.refresh_from_db()
    assert merge.undone_by == marketer
    assert pair_of(a, b).status == PairStatus.OPEN


def test_a_manager_reviews_only_pairs_of_companies_whose_leads_are_in_view(staff, manager, twins):
    # Given a pair of the manager's team and a pair carrying another team's leads
    south = make_user("south-rep", Role.REP, team=Team.objects.create(name="South"))
    far = [
        CompanyFactory(name="Umbrella", domain="umbrella.example"),
        CompanyFactory(name="Umbrella Corp", domain="www.umbrella.example"),
    ]
    for company in far:
        LeadFactory(owner=south, company=company)
    company_duplicates_scan()
    client = staff(manager)

    listed = client.get(reverse(QUEUE)).context["cl"].result_list
    far_url = reverse("admin:leads_companyduplicatepair_merge", args=[pair_of(*far).pk])
    direct = f"{reverse('admin:leads_company_merge')}?ids={far[0].pk},{far[1].pk}"

    assert [p.pk for p in listed] == [pair_of(*twins).pk]
    assert client.get(far_url).status_code == 302
    assert client.post(far_url, {"survivor": far[0].pk}).status_code == 302
    assert client.post(direct, {"survivor": far[0].pk})["Location"] == reverse("admin:index")
    assert Company.objects.filter(pk__in=[c.pk for c in far]).count() == 2
    assert not CompanyMerge.objects.exists()


def test_reps_cannot_open_the_queue_or_merge(staff, rep, twins):
    a, b = twins
    client = staff(rep)
    url = reverse("admin:leads_companyduplicatepair_merge", args=[pair_of(a, b).pk])
    direct = f"{reverse('admin:leads_company_merge')}?ids={a.pk},{b.pk}"

    assert client.get(reverse(QUEUE)).status_code == 403
    assert client.post(url, {"survivor": a.pk}).status_code in (302, 403)
    assert client.post(direct, {"survivor": a.pk})["Location"] == reverse("admin:index")
    listing = client.get(reverse(COMPANIES))
    assert "merge_companies" not in listing.content.decode()
    chosen = client.post(
        reverse(COMPANIES), {"action": "merge_companies", "_selected_action": [a.pk, b.pk]}
    )
    assert "merge/" not in chosen.get("Location", "")
    assert Company.objects.filter(pk__in=[a.pk, b.pk]).count() == 2
    assert not CompanyMerge.objects.exists()


def test_the_admin_sets_the_company_name_threshold(staff, marketer):
    client = staff(marketer)
    url = reverse("admin:leads_duplicatesettings_change", args=[1])
    DuplicateSettings.load()

    refused = client.post(url, {"name_similarity": "0.6", "company_name_similarity": "1.5"})
    response = client.post(url, {"name_similarity": "0.6", "company_name_similarity": "0.8"})

    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors
    assert response.status_code == 302
    assert DuplicateSettings.load().company_name_similarity == 0.8

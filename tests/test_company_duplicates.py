"""Finding likely duplicate companies: the domains and names they compare by, the nightly
scan that includes them, and the review queue's remembered answers."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from leads.company_domains import free_mail_domains, web_domain
from leads.company_duplicates import (
    company_duplicates_scan,
    company_keys_compute,
    company_pair_not_duplicate,
    company_reason_text,
)
from leads.duplicates import CROWDED_KEY
from leads.models import Company, CompanyDuplicatePair, DuplicateSettings, PairStatus
from leads.tasks import scan_duplicates
from scoring.models import DomainList, DomainListKind
from tests.factories import CompanyFactory, LeadFactory


def pair_of(a: Company, b: Company) -> CompanyDuplicatePair:
    low, high = sorted((a.pk, b.pk))
    return CompanyDuplicatePair.objects.get(company_a=low, company_b=high)


def test_web_domains_name_the_host_without_scheme_path_or_www():
    assert web_domain(" https://WWW.Acme.com/about?x=1 ") == "acme.com"
    assert web_domain("acme.com.") == web_domain("//acme.com:8443") == "acme.com"
    assert web_domain("shop.acme.com") == "shop.acme.com"
    assert web_domain("localhost") == web_domain("not a domain") == web_domain("") == ""
    assert web_domain("http://[::1") == ""


def test_free_mail_is_the_built_in_providers_and_the_marketers_list(db):
    DomainList.objects.create(kind=DomainListKind.FREE_MAIL, domain="@Mailbox.Example")
    DomainList.objects.create(kind=DomainListKind.COMPETITOR, domain="rival.example")

    free = free_mail_domains()

    assert {"gmail.com", "web.de", "mailbox.example"} <= free
    assert "rival.example" not in free


def test_keys_leave_out_legal_forms_and_free_mail_domains(db):
    DomainList.objects.create(kind=DomainListKind.FREE_MAIL, domain="mailbox.example")
    acme = CompanyFactory(name="ACME, Inc.", domain="https://www.acme.com/")
    for email in ("ann@acme.com", "bob@acme-sales.com", "cy@gmail.com", "di@mailbox.example"):
        LeadFactory(company=acme, email=email)

    keys = company_keys_compute(company_ids=[acme.pk])[acme.pk]

    assert keys.name_key == "acme"
    assert keys.words == ["acme"]
    assert keys.domains == {("acme.com", True), ("acme-sales.com", False)}


def test_scan_finds_one_website_spelt_twice_and_a_website_the_others_leads_write_from(db):
    # Given one website spelt twice, a company without a website whose lead writes from
    # another's, two companies whose leads use Gmail, and a stranger
    acme = CompanyFactory(name="Acme", domain="acme.com")
    acme_www = CompanyFactory(name="Acme Europe", domain="https://www.acme.com/en")
    initech = CompanyFactory(name="Initech", domain="initech.example")
    unnamed = CompanyFactory(name="IT Department", domain="")
    LeadFactory(company=unnamed, email="bob@initech.example")
    for name in ("Ann Smith Consulting", "Bob Jones Design"):
        LeadFactory(company=CompanyFactory(name=name, domain=""), email=f"{name[:3]}@gmail.com")
    CompanyFactory(name="Umbrella", domain="umbrella.example")

    # When the nightly scan runs
    result = company_duplicates_scan()

    # Then the two pairs are in the queue with their evidence, and nothing else
    assert (result.companies, result.pairs, result.new_pairs) == (7, 2, 2)
    website = pair_of(acme, acme_www)
    assert (website.reasons, website.score, website.sure, website.status) == (
        [{"kind": "domain", "score": 1.0, "value": "acme.com"}],
        1.0,
        True,
        PairStatus.OPEN,
    )
    mail = pair_of(initech, unnamed)
    assert mail.reasons == [{"kind": "mail_domain", "score": 0.9, "value": "initech.example"}]
    assert not mail.sure
    assert CompanyDuplicatePair.objects.count() == 2


def test_a_domain_on_the_marketers_free_mail_list_matches_nobody(db):
    DomainList.objects.create(kind=DomainListKind.FREE_MAIL, domain="mailbox.example")
    for name in ("Alpha", "Beta"):
        LeadFactory(company=CompanyFactory(name=name, domain=""), email=f"{name}@mailbox.example")

    assert company_duplicates_scan().pairs == 0


def test_scan_is_incremental_and_keeps_the_not_a_duplicate_answer(db, marketer):
    # Given a pair by website answered "not a duplicate" after the first scan
    a = CompanyFactory(name="Globex", domain="globex.example")
    b = CompanyFactory(name="Globex Holdings", domain="www.globex.example")
    company_duplicates_scan()
    company_pair_not_duplicate(pair=pair_of(a, b), by=marketer)

    # When nothing changed, the next scan compares nobody
    assert company_duplicates_scan().companies == 0

    # And when one of them changes, it is compared again but the answer stays
    b.city = "Springfield"
    b.name = "Globex Holding Co"
    b.save()
    assert company_duplicates_scan().companies == 1
    pair = pair_of(a, b)
    assert (pair.status, pair.decided_by) == (PairStatus.NOT_DUPLICATE, marketer)

    # And a full scan compares everyone and keeps it too
    assert company_duplicates_scan(full=True).companies == 2
    assert pair_of(a, b).status == PairStatus.NOT_DUPLICATE


def test_a_new_lead_address_makes_its_company_compared_again(db):
    hooli = CompanyFactory(name="Hooli", domain="hooli.example")
    other = CompanyFactory(name="Gavin Belson Ventures", domain="")
    company_duplicates_scan()
    assert not CompanyDuplicatePair.objects.exists()

    LeadFactory(company=other, email="gavin@hooli.example")

    assert company_duplicates_scan().companies == 1
    assert pair_of(hooli, other).reasons[0]["kind"] == "mail_domain"


def test_an_open_pair_whose_evidence_is_gone_leaves_the_queue(db):
    a = CompanyFactory(name="Stark", domain="stark.example")
    b = CompanyFactory(name="Wayne", domain="www.stark.example")
    company_duplicates_scan()

    b.domain = "wayne.example"
    b.save()
    company_duplicates_scan()

    assert not CompanyDuplicatePair.objects.filter(company_a=min(a.pk, b.pk)).exists()


def test_scan_drops_open_pairs_of_deleted_companies(db):
    a = CompanyFactory(name="Soylent", domain="soylent.example")
    b = CompanyFactory(name="Soylent Green", domain="http://soylent.example")
    company_duplicates_scan()
    Company.objects.filter(pk=b.pk).delete()

    company_duplicates_scan()

    assert not CompanyDuplicatePair.objects.filter(company_a=min(a.pk, b.pk)).exists()


def test_a_domain_shared_by_a_crowd_is_a_host_not_a_company(db):
    for n in range(CROWDED_KEY + 1):
        tenant = CompanyFactory(name=f"Tenant {n}", domain="")
        LeadFactory(company=tenant, email=f"x{n}@isp.example")

    company_duplicates_scan()

    kinds = {r["kind"] for pair in CompanyDuplicatePair.objects.all() for r in pair.reasons}
    assert "mail_domain" not in kinds


def test_names_equal_but_for_their_legal_form_are_a_pair_on_any_database(db):
    gmbh = CompanyFactory(name="Müller GmbH & Co. KG", domain="")
    inc = CompanyFactory(name="MULLER, Inc.", domain="")
    CompanyFactory(name="Müller Bau", domain="")

    company_duplicates_scan()

    assert pair_of(gmbh, inc).reasons == [{"kind": "name", "score": 1.0}]
    assert CompanyDuplicatePair.objects.count() == 1


@pytest.mark.postgres
def test_similar_names_are_found_by_trigram_similarity_without_legal_forms(db):
    # Given one company under two legal forms, one misspelt, and a company merely alike
    gmbh = CompanyFactory(name="Initech Systems GmbH", domain="")
    inc = CompanyFactory(name="Initech Systems, Inc.", domain="")
    typo = CompanyFactory(name="Initech Sytems", domain="")
    CompanyFactory(name="Initrode", domain="")

    # When the scan runs at the default company threshold
    company_duplicates_scan()

    # Then the three spellings are pairs, scored by their names' similarity
    same = pair_of(gmbh, inc)
    assert same.reasons == [{"kind": "name", "score": 1.0}]
    alike = pair_of(gmbh, typo)
    assert [r["kind"] for r in alike.reasons] == ["name"]
    assert 0.7 <= alike.score < 1
    assert CompanyDuplicatePair.objects.count() == 3
    assert not pair_of(gmbh, inc).sure

    # And a stricter threshold set by the admin finds only the equal names
    DuplicateSettings.objects.filter(pk=1).update(company_name_similarity=0.95)
    CompanyDuplicatePair.objects.all().delete()
    company_duplicates_scan(full=True)
    assert list(CompanyDuplicatePair.objects.values_list("company_a", "company_b")) == [
        tuple(sorted((gmbh.pk, inc.pk)))
    ]


@pytest.mark.postgres
def test_the_scan_takes_as_many_statements_for_180_companies_as_for_60(db):
    DuplicateSettings.load()

    def scan_of(count: int, offset: int) -> tuple[int, int]:
        Company.objects.all().delete()
        CompanyDuplicatePair.objects.all().delete()
        for n in range(offset, offset + count):
            name = hashlib.md5(str(n % 30).encode()).hexdigest()[:10]  # alike only if equal
            company = CompanyFactory(name=name, domain="")
            LeadFactory(company=company, email=f"art{n}@vandelay.example")
        with CaptureQueriesContext(connection) as queries:
            result = company_duplicates_scan()
        assert result.companies == count
        return len(queries), result.pairs

    few, few_pairs = scan_of(60, 0)
    many, many_pairs = scan_of(180, 60)

    assert many == few
    assert (few_pairs, many_pairs) == (30, 30 * 15)
    # The domain every company's leads write from is a crowd's and says nothing
    kinds = {r["kind"] for pair in CompanyDuplicatePair.objects.all() for r in pair.reasons}
    assert kinds == {"name"}


def test_reasons_read_as_words():
    assert company_reason_text({"kind": "domain", "value": "acme.com"}) == "same website acme.com"
    assert company_reason_text({"kind": "mail_domain", "value": "acme.com"}) == (
        "same email domain acme.com"
    )
    assert company_reason_text({"kind": "name", "score": 0.82}) == "names 82% alike"


def test_the_nightly_task_scans_companies_after_leads(db):
    CompanyFactory(name="Acme", domain="acme.com")
    CompanyFactory(name="Acme US", domain="www.acme.com")

    result = scan_duplicates.delay().get()

    assert (result["companies"], result["company_pairs"], result["new_company_pairs"]) == (
        2,
        1,
        1,
    )
    settings_row = DuplicateSettings.load()
    assert (settings_row.last_scan_companies, settings_row.last_scan_company_pairs) == (2, 1)


def test_the_scan_command_reports_companies_too(db):
    CompanyFactory(name="Acme", domain="acme.com")
    CompanyFactory(name="Acme US", domain="www.acme.com")
    out = io.StringIO()

    call_command("duplicates_scan", stdout=out)

    assert "Compared 2 company record(s): 1 likely duplicate pair(s), 1 new." in out.getvalue()

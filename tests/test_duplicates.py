"""Finding likely duplicates: the keys leads compare by, the nightly scan and its queue."""

from __future__ import annotations

import io

import phonenumbers
import pytest
from django.conf import settings
from django.core.management import call_command

from leads import duplicates
from leads.duplicates import (
    CROWDED_KEY,
    company_key,
    duplicates_scan,
    email_key,
    lead_duplicates,
    pair_not_duplicate,
    phone_key,
    reason_text,
)
from leads.models import DuplicatePair, DuplicateSettings, Lead, LeadMatchKey, PairStatus
from leads.profiles import company_named
from leads.tasks import scan_duplicates
from tests.factories import CompanyFactory, LeadFactory


def test_email_keys_name_the_mailbox():
    assert email_key(" Ada+news@Example.COM ") == "ada@example.com"
    assert email_key("a.d.a@googlemail.com") == email_key("ada@gmail.com") == "ada@gmail.com"
    assert email_key("a.da@example.com") == "a.da@example.com"
    assert email_key("no-at-sign") == ""


def test_phone_keys_are_e164_read_in_the_leads_country():
    assert phone_key("030 1234567", "DE") == phone_key("+49 (30) 123-4567") == "+49301234567"
    assert phone_key("(415) 555-0100", "us") == "+14155550100"
    assert phone_key("12345") == ""
    assert phone_key("555 0100 999", "") == "5550100999"


def test_a_number_an_import_cleaned_has_the_key_it_has_when_parsed_again(monkeypatch):
    # Given every region's example numbers of every kind, written nationally
    from imports.normalize import clean_phone

    written = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in vars(phonenumbers.PhoneNumberType).values():
            example = isinstance(kind, int) and phonenumbers.example_number_for_type(region, kind)
            if example:
                national = phonenumbers.PhoneNumberFormat.NATIONAL
                written.append((phonenumbers.format_number(example, national), region))
    assert len(written) > 1000

    # When the import cleans each (noting it as its own key) and the keys are taken
    cleaned = [clean_phone(text, region=region) for text, region in written]
    keys = [phone_key(number, region) for number, (_, region) in zip(cleaned, written, strict=True)]

    # Then each key is the one the number has when it is parsed again
    monkeypatch.setattr(duplicates, "_OWN_KEYS", set())
    assert keys == [
        phone_key(number, region) for number, (_, region) in zip(cleaned, written, strict=True)
    ]
    assert all(key in (number, "") for key, number in zip(keys, cleaned, strict=True))


def test_company_keys_leave_out_case_punctuation_accents_and_legal_forms():
    assert company_key("ACME, Inc.") == company_key("Acme") == "acme"
    assert company_key("Müller GmbH & Co. KG") == "muller"


def test_reasons_read_as_words():
    assert reason_text({"kind": "email", "score": 1}) == "same mailbox"
    assert reason_text({"kind": "name_company", "score": 0.82}) == (
        "names 82% alike at one company"
    )


def pair_of(a: Lead, b: Lead) -> DuplicatePair:
    low, high = sorted((a.pk, b.pk))
    return DuplicatePair.objects.get(lead_a=low, lead_b=high)


def test_scan_finds_the_same_mailbox_and_the_same_phone(db):
    # Given one person twice by mailbox, another twice by phone, and a stranger
    ada = LeadFactory(email="ada@example.com")
    ada_tagged = LeadFactory(email="ada+crm@example.com")
    bob = LeadFactory(phone="030 1234567", country="DE")
    bob_again = LeadFactory(phone="+49 30 1234567", country="GB")
    LeadFactory(phone="+1 415 555 0100")

    # When the scan runs
    result = duplicates_scan()

    # Then both pairs are in the queue with their evidence, and nothing else
    assert (result.leads, result.pairs, result.new_pairs) == (5, 2, 2)
    mailbox = pair_of(ada, ada_tagged)
    assert (mailbox.reasons, mailbox.score, mailbox.status) == (
        [{"kind": "email", "score": 1.0}],
        1.0,
        PairStatus.OPEN,
    )
    assert pair_of(bob, bob_again).reasons == [{"kind": "phone", "score": 0.9}]
    assert DuplicatePair.objects.count() == 2
    assert list(DuplicatePair.objects.sure()) == [mailbox]


def test_scan_is_incremental_and_keeps_the_not_a_duplicate_answer(db, manager):
    # Given a pair answered "not a duplicate" after the first scan
    a = LeadFactory(phone="+49 30 1234567")
    b = LeadFactory(phone="+49 30 1234567")
    duplicates_scan()
    pair_not_duplicate(pair=pair_of(a, b), by=manager)

    # When nothing changed, the next scan compares nobody
    assert duplicates_scan().leads == 0

    # And when one of them changes, it is compared again but the answer stays
    b.job_title = "CEO"
    b.save()
    assert duplicates_scan().leads == 1
    pair = pair_of(a, b)
    assert (pair.status, pair.decided_by) == (PairStatus.NOT_DUPLICATE, manager)
    assert lead_duplicates(lead=b, user=manager) == []


def test_an_open_pair_whose_evidence_is_gone_leaves_the_queue(db):
    a = LeadFactory(phone="+49 30 1234567")
    b = LeadFactory(phone="+49 30 1234567")
    duplicates_scan()
    b.phone = "+49 40 7654321"
    b.save()

    duplicates_scan()

    assert not DuplicatePair.objects.filter(lead_a=min(a.pk, b.pk)).exists()


def test_a_key_shared_by_a_crowd_is_a_placeholder_not_a_person(db):
    LeadFactory.create_batch(CROWDED_KEY + 1, phone="+49 30 0000000")
    assert duplicates_scan().pairs == 0


def test_scan_drops_open_pairs_of_deleted_leads(db):
    a = LeadFactory(phone="+49 30 1234567")
    b = LeadFactory(phone="+49 30 1234567")
    duplicates_scan()
    Lead.objects.filter(pk=b.pk).delete()

    duplicates_scan()

    assert not DuplicatePair.objects.filter(lead_a=min(a.pk, b.pk)).exists()


@pytest.mark.postgres
def test_similar_names_at_one_company_are_found_by_trigram_similarity(db):
    # Given two spellings of one name at two records of one company, and a namesake elsewhere
    acme = CompanyFactory(name="ACME, Inc.")
    acme_again = CompanyFactory(name="Acme")
    jon = LeadFactory(first_name="Jonathan", last_name="Smithers", company=acme)
    john = LeadFactory(first_name="Jonathon", last_name="Smithers", company=acme_again)
    LeadFactory(first_name="Jonathan", last_name="Smithers", company=CompanyFactory(name="Other"))
    LeadFactory(first_name="Mary", last_name="Jones", company=acme)

    # When the scan runs at the default threshold
    duplicates_scan()

    # Then only the two at ACME are a pair, scored by their names' similarity
    pair = pair_of(jon, john)
    assert [r["kind"] for r in pair.reasons] == ["name_company"]
    assert 0.6 <= pair.score < 1
    assert DuplicatePair.objects.count() == 1

    # And a stricter threshold set by the admin finds none at the next full scan
    DuplicateSettings.objects.filter(pk=1).update(name_similarity=0.95)
    DuplicatePair.objects.all().delete()
    duplicates_scan(full=True)
    assert not DuplicatePair.objects.exists()


@pytest.mark.postgres
def test_the_scan_is_one_statement_per_step_not_a_query_per_pair(db, django_assert_max_num_queries):
    company = company_named("Initech")
    for n in range(60):
        LeadFactory(first_name="Peter", last_name=f"Gibbons{n % 30}", company=company)

    with django_assert_max_num_queries(20):
        result = duplicates_scan()

    assert result.leads == 60
    assert result.pairs >= 30


def test_likely_duplicates_of_a_new_lead_are_the_ones_its_creator_can_see(db, rep, other_rep):
    # Given a lead of another rep and one in the pool, both with the new lead's phone,
    # known to the last scan
    hidden = LeadFactory(phone="+49 30 1234567", owner=other_rep)
    pooled = LeadFactory(phone="+49 30 1234567", owner=None)
    duplicates_scan()
    new = LeadFactory(phone="030 1234567", country="DE", owner=rep)

    found = lead_duplicates(lead=new, user=rep)

    assert [d.lead for d in found] == [pooled]
    assert hidden.pk not in [d.lead.pk for d in found]
    assert LeadMatchKey.objects.filter(lead=new, scanned=False).exists()


def test_the_nightly_scan_is_on_beats_schedule_and_its_task_runs_the_scan(db):
    entry = settings.CELERY_BEAT_SCHEDULE["duplicates-scan"]
    assert entry["task"] == "leads.tasks.scan_duplicates"
    LeadFactory(phone="+49 30 1234567")
    LeadFactory(phone="+49 30 1234567")

    result = scan_duplicates.delay().get()
    assert {k: result[k] for k in ("leads", "pairs", "new_pairs")} == {
        "leads": 2,
        "pairs": 1,
        "new_pairs": 1,
    }
    assert DuplicateSettings.load().last_scan_pairs == 1


def test_a_new_lead_with_a_crowded_key_warns_of_nobody(db, admin_user):
    LeadFactory.create_batch(CROWDED_KEY + 1, phone="+49 30 0000000")
    duplicates_scan()
    new = LeadFactory(phone="030 0000000", country="DE")

    assert lead_duplicates(lead=new, user=admin_user) == []


def test_the_scan_command_reports_what_it_found(db):
    LeadFactory(email="ada@example.com")
    LeadFactory(email="ada+x@example.com")
    out = io.StringIO()

    call_command("duplicates_scan", stdout=out)

    assert out.getvalue().splitlines()[0] == (
        "Compared 2 lead(s): 1 likely duplicate pair(s), 1 new."
    )
    call_command("duplicates_scan", "--full", stdout=out)
    assert "Compared 2 lead(s): 1 likely duplicate pair(s), 0 new." in out.getvalue()

"""Merging duplicate companies keeps everything, records the merge, rescores the leads
whose company changed once, and undoes it exactly."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.db import models
from django.utils import timezone

from leads.company_duplicates import company_duplicates_scan
from leads.company_merging import (
    BOOKKEEPING,
    companies_merge,
    company_alias_target,
    company_merge_undo,
    company_references,
    company_survivor_pick,
)
from leads.merge_participants import (
    MergeParticipant,
    merge_participant_register,
    merge_participant_unregister,
)
from leads.merging import MergeError, lead_merge_undo, leads_merge
from leads.models import (
    Company,
    CompanyAlias,
    CompanyDuplicatePair,
    CompanyMerge,
    Deal,
    Lead,
    PairStatus,
)
from scoring import lead_merges, outbox
from scoring.lead_scoring import lead_score
from scoring.models import ProfileRescore
from scoring.tasks import sweep_unscored
from scoring.verification import scores_verify
from tests.factories import CompanyFactory, LeadFactory, active_model, fit_rule


def snapshot(company_ids: list[int]) -> dict[str, Any]:
    """Everything about these companies and the leads they carry that a merge and its
    undo touch, comparable."""
    companies = {
        c.pk: {f.attname: getattr(c, f.attname) for f in Company._meta.concrete_fields}
        for c in Company.objects.filter(pk__in=company_ids)
    }
    leads = sorted(
        Lead.objects.filter(company__in=company_ids).values_list(
            "pk", "company_id", "fit_score", "score"
        )
    )
    pairs = sorted(CompanyDuplicatePair.objects.values_list("company_a", "company_b", "status"))
    return {"companies": companies, "leads": leads, "pairs": pairs}


@pytest.fixture
def model(db):
    model = active_model()
    fit_rule(model, 20, "company.industry", "equals", "finance")
    fit_rule(model, 10, "company.employee_count", "gte", "1000")
    return model


@pytest.fixture
def twins(model):
    """One company twice: an older record with the website, a newer one that is bigger
    and in finance, each with leads of its own, all scored, and their pair in the queue."""
    old = CompanyFactory(
        name="Initech", domain="initech.example", industry="software", employee_count=120
    )
    new = CompanyFactory(
        name="Initech Inc.",
        domain="www.initech.example",
        industry="finance",
        employee_count=5000,
        annual_revenue=Decimal("1200000.50"),
        city="Austin",
    )
    Company.objects.filter(pk=new.pk).update(created_at=old.created_at + dt.timedelta(days=1))
    peter = LeadFactory(company=old, email="peter@initech.example")
    bill = LeadFactory(company=new, email="bill@initech.example")
    milton = LeadFactory(company=new, email="milton@initech.example")
    Deal.objects.create(lead=bill, name="Stapler fleet", amount=1000)
    for lead in (peter, bill, milton):
        lead_score(lead_id=lead.pk)
    company_duplicates_scan()
    return Company.objects.get(pk=old.pk), Company.objects.get(pk=new.pk)


@pytest.fixture
def settled():
    """The lead ids each settle of a merge or undo was given, in order."""
    calls: list[list[int]] = []
    merge_participant_register(
        MergeParticipant(
            name="test-settled",
            move=lambda **kwargs: {},
            restore=lambda **kwargs: None,
            settle=lambda *, lead_ids, now: calls.append(list(lead_ids)),
        )
    )
    yield calls
    merge_participant_unregister("test-settled")


def test_merge_moves_the_leads_and_keeps_the_others_id_as_an_alias(twins, manager):
    old, new = twins
    bill, milton = Lead.objects.filter(company=new).order_by("pk")

    merge = companies_merge(survivor_id=old.pk, others=[new.pk], by=manager)

    assert not Company.objects.filter(pk=new.pk).exists()
    peter = Lead.objects.get(email="peter@initech.example")
    assert set(Lead.objects.filter(company=old).values_list("pk", flat=True)) == {
        peter.pk,
        bill.pk,
        milton.pk,
    }
    assert Deal.objects.get(name="Stapler fleet").lead.company_id == old.pk
    assert company_alias_target(new.pk) == old.pk
    assert (merge.survivor_id, merge.merged_ids, merge.by) == (old.pk, [new.pk], manager)
    assert merge.moved["leads.lead"] == {str(new.pk): [bill.pk, milton.pk]}
    assert merge.snapshots[str(new.pk)]["industry"] == "finance"
    pair = CompanyDuplicatePair.objects.get()
    assert (pair.status, pair.merge, pair.decided_by) == (PairStatus.MERGED, merge, manager)


def test_merge_takes_empty_fields_from_the_other_and_keeps_its_own(twins, manager):
    old, new = twins

    merge = companies_merge(survivor_id=old.pk, others=[new.pk], by=manager)

    survivor = Company.objects.get(pk=old.pk)
    assert (survivor.name, survivor.domain, survivor.industry, survivor.employee_count) == (
        "Initech",
        "initech.example",
        "software",
        120,
    )
    assert (survivor.city, survivor.annual_revenue) == ("Austin", Decimal("1200000.50"))
    assert set(merge.fields) == {"city", "annual_revenue"}


def test_merge_with_conflicting_fields_rescores_then_undo_restores_everything(
    twins, manager, settled
):
    # Given two records that disagree on name, domain, industry and size
    old, new = twins
    peter = Lead.objects.get(company=old)
    assert peter.fit_score == 0
    lead_ids = sorted(Lead.objects.filter(company__in=[old, new]).values_list("pk", flat=True))
    before = snapshot([old.pk, new.pk])

    # When the newer's name, website, industry and size win
    merge = companies_merge(
        survivor_id=old.pk,
        others=[new.pk],
        fields={"name": new.pk, "domain": new.pk, "industry": new.pk, "employee_count": new.pk},
        by=manager,
    )

    # Then the survivor holds them, the record says where each came from ...
    survivor = Company.objects.get(pk=old.pk)
    assert (survivor.name, survivor.domain, survivor.industry, survivor.employee_count) == (
        "Initech Inc.",
        "www.initech.example",
        "finance",
        5000,
    )
    assert merge.fields["industry"] == {"from": new.pk, "before": "software", "after": "finance"}
    # ... and every lead whose company changed was rescored once, in the merge: the
    # survivor's own lead now earns the finance and size awards
    assert [sorted(call) for call in settled] == [lead_ids]
    peter.refresh_from_db()
    assert peter.fit_score == 30
    assert list(scores_verify()) == []

    # And when the merge is undone
    company_merge_undo(merge_id=merge.pk, by=manager)

    # Then both companies are back with their ids, fields, leads and scores
    assert snapshot([old.pk, new.pk]) == before
    assert not CompanyAlias.objects.exists()
    assert CompanyMerge.objects.get(pk=merge.pk).undone_by == manager
    assert CompanyDuplicatePair.objects.get().status == PairStatus.OPEN
    assert sorted(settled[1]) == lead_ids
    assert list(scores_verify()) == []


def test_a_merge_that_changes_no_field_of_the_survivor_rescores_only_the_moved_leads(
    model, manager, settled
):
    big = CompanyFactory(name="Hooli", domain="hooli.example", city="Palo Alto")
    small = CompanyFactory(name="Hooli XYZ", domain="", city="")
    stays = LeadFactory(company=big)
    moves = LeadFactory(company=small)

    companies_merge(survivor_id=big.pk, others=[small.pk], by=manager)

    assert settled == [[moves.pk]]
    assert stays.pk not in settled[0]


def test_undo_keeps_a_field_changed_since_the_merge_and_says_so(twins, manager):
    old, new = twins
    merge = companies_merge(
        survivor_id=old.pk, others=[new.pk], fields={"industry": new.pk}, by=manager
    )
    Company.objects.filter(pk=old.pk).update(industry="retail")

    undone = company_merge_undo(merge_id=merge.pk, by=manager)

    assert Company.objects.get(pk=old.pk).industry == "retail"
    assert Company.objects.get(pk=new.pk).industry == "finance"
    assert undone.fields["industry"]["kept"] is True


def test_a_lead_given_to_the_survivor_after_the_merge_stays_there_on_undo(twins, manager):
    old, new = twins
    merge = companies_merge(survivor_id=old.pk, others=[new.pk], by=manager)
    later = LeadFactory(company=old)

    company_merge_undo(merge_id=merge.pk, by=manager)

    assert Lead.objects.get(pk=later.pk).company_id == old.pk
    assert Lead.objects.filter(company=new).count() == 2


def test_merges_of_one_survivor_undo_latest_first_and_a_merged_survivor_comes_back(model, manager):
    a, b, c = (CompanyFactory(name=n, domain="") for n in ("Alpha", "Beta", "Gamma"))
    first = companies_merge(survivor_id=b.pk, others=[c.pk], by=manager)
    second = companies_merge(survivor_id=a.pk, others=[b.pk], by=manager)
    # C's id names A now, through B
    assert company_alias_target(c.pk) == a.pk
    with pytest.raises(MergeError, match="merged into another company"):
        company_merge_undo(merge_id=first.pk, by=manager)

    company_merge_undo(merge_id=second.pk, by=manager)
    assert company_alias_target(c.pk) == b.pk
    company_merge_undo(merge_id=first.pk, by=manager)

    assert Company.objects.filter(pk__in=[a.pk, b.pk, c.pk]).count() == 3
    with pytest.raises(MergeError, match="undone already"):
        company_merge_undo(merge_id=first.pk, by=manager)


def test_a_later_merge_into_the_survivor_is_undone_first(model, manager):
    a, b, c = (CompanyFactory(name=n, domain="") for n in ("Alpha", "Beta", "Gamma"))
    first = companies_merge(survivor_id=a.pk, others=[b.pk], by=manager)
    companies_merge(survivor_id=a.pk, others=[c.pk], by=manager)

    with pytest.raises(MergeError, match="later merge"):
        company_merge_undo(merge_id=first.pk, by=manager)
    assert not Company.objects.filter(pk=b.pk).exists()


def test_merge_refuses_bad_requests_and_changes_nothing(twins, manager):
    old, new = twins
    before = snapshot([old.pk, new.pk])
    for others, fields, message in [
        ([], {}, "at least one company"),
        ([old.pk], {}, "into itself"),
        ([new.pk, 999999], {}, "No company 999999"),
        ([new.pk], {"score": new.pk}, "does not choose: score"),
        ([new.pk], {"name": 999999}, "not 999999"),
    ]:
        with pytest.raises(MergeError, match=message):
            companies_merge(survivor_id=old.pk, others=others, fields=fields, by=manager)

    assert snapshot([old.pk, new.pk]) == before
    assert not CompanyMerge.objects.exists()


def test_undo_refuses_when_the_merged_domain_is_taken_meanwhile(model, manager):
    a = CompanyFactory(name="Alpha", domain="alpha.example")
    b = CompanyFactory(name="Beta", domain="beta.example")
    merge = companies_merge(survivor_id=a.pk, others=[b.pk], by=manager)
    CompanyFactory(name="Beta again", domain="beta.example")

    with pytest.raises(MergeError, match=r"beta\.example"):
        company_merge_undo(merge_id=merge.pk, by=manager)
    assert not Company.objects.filter(pk=b.pk).exists()
    assert CompanyMerge.objects.get(pk=merge.pk).undone_at is None


def test_the_most_complete_company_survives_and_the_oldest_among_equals(db):
    now = timezone.now()
    sparse = CompanyFactory(domain="", industry="", created_at=now - dt.timedelta(days=9))
    full = CompanyFactory(city="Berlin", created_at=now)
    older = CompanyFactory(city="Kiel", created_at=now - dt.timedelta(days=1))

    assert company_survivor_pick([sparse, full]) == full
    assert company_survivor_pick([full, older]) == older


def test_merge_hands_an_open_pair_with_a_third_company_to_the_survivor(model, manager):
    a = CompanyFactory(name="Acme", domain="acme.example")
    b = CompanyFactory(name="Acme Corp", domain="www.acme.example")
    c = CompanyFactory(name="Ajax", domain="http://acme.example/")
    company_duplicates_scan()
    assert CompanyDuplicatePair.objects.open().count() == 3

    companies_merge(survivor_id=c.pk, others=[b.pk], by=manager)

    open_pairs = list(CompanyDuplicatePair.objects.open().values_list("company_a", "company_b"))
    assert open_pairs == [tuple(sorted((a.pk, c.pk)))]


def test_every_row_naming_a_company_is_moved_by_a_merge_or_kept_by_its_books():
    """A model that names companies through a one-to-one or many-to-many relation would
    not be moved: the merge knows foreign keys only."""
    for rel in Company._meta.related_objects:
        related = rel.related_model
        assert isinstance(related, type)
        assert issubclass(related, models.Model)
        assert related is Lead or related in BOOKKEEPING or rel.one_to_many, related
    moved = {model for model, _ in company_references()}
    assert not moved & {Lead, *BOOKKEEPING}


def test_a_lead_merge_undone_after_its_leads_company_was_merged_lands_at_the_survivor(
    model, manager
):
    # Given a lead merged into another, then its company merged into a twin
    kept, merged = LeadFactory(), LeadFactory()
    company, twin = merged.company, CompanyFactory(name="Twin")
    lead_merge = leads_merge(survivor_id=kept.pk, others=[merged.pk], by=manager)
    companies_merge(survivor_id=twin.pk, others=[company.pk], by=manager)

    # When the lead merge is undone
    lead_merge_undo(merge_id=lead_merge.pk, by=manager)

    # Then the lead is back at the company its own was merged into
    assert Lead.objects.get(pk=merged.pk).company_id == twin.pk


def test_a_company_with_many_people_is_rescored_after_the_merge_commits(
    model, manager, monkeypatch, django_capture_on_commit_callbacks
):
    # Given a company whose people the merge moves, more than a merge rescores inline
    monkeypatch.setattr(lead_merges, "INLINE_RESCORE", 2)
    bank = CompanyFactory(name="Big Bank", domain="bigbank.example", industry="finance")
    twin = CompanyFactory(name="Big Bank Ltd", domain="", industry="")
    people = [LeadFactory(company=twin) for _ in range(5)]
    for lead in people:
        lead_score(lead_id=lead.pk)
    assert {lead.fit_score for lead in Lead.objects.filter(company=twin)} == {0}

    # When the twin is merged into the bank
    with django_capture_on_commit_callbacks() as callbacks:
        companies_merge(survivor_id=bank.pk, others=[twin.pk], by=manager)

        # Then inside the merge nobody was rescored yet, but each waits in the outbox
        assert {lead.fit_score for lead in Lead.objects.filter(pk__in=[p.pk for p in people])} == {
            0
        }
        assert set(ProfileRescore.objects.values_list("lead_id", flat=True)) == {
            p.pk for p in people
        }

    # And after commit one bulk rescore scores them all: the bank is in finance
    for callback in callbacks:
        callback()
    assert {lead.fit_score for lead in Lead.objects.filter(pk__in=[p.pk for p in people])} == {20}
    assert not ProfileRescore.objects.exists()
    assert list(scores_verify()) == []


def test_a_company_merge_whose_rescore_message_is_lost_is_rescored_by_the_sweeper(
    model, manager, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(lead_merges, "INLINE_RESCORE", 2)
    sent = []
    monkeypatch.setattr(outbox, "task_enqueue", lambda *args, **kwargs: sent.append(args) and False)
    bank = CompanyFactory(name="Big Bank", domain="bigbank.example", industry="finance")
    twin = CompanyFactory(name="Big Bank Ltd", domain="", industry="")
    people = [LeadFactory(company=twin) for _ in range(3)]

    with django_capture_on_commit_callbacks(execute=True):
        companies_merge(survivor_id=bank.pk, others=[twin.pk], by=manager)
    assert [args[0] for args in sent] == ["scoring.tasks.rescore_leads"]
    assert Lead.objects.filter(pk__in=[p.pk for p in people], fit_score=0).count() == 3

    # The broker is back; a minute later beat's sweeper finds the waiting leads
    monkeypatch.undo()
    ProfileRescore.objects.update(requested_at=timezone.now() - dt.timedelta(minutes=1))
    sweep_unscored.apply()
    assert Lead.objects.filter(pk__in=[p.pk for p in people], fit_score=20).count() == 3

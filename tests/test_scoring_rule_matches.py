"""The rules each lead matches (``scoring.models.RuleMatch``), kept by the database from
the ledger: whichever path writes, reverses, moves or deletes entries (real-time scoring,
the set-based rescore, a rule's deletion, a merge, a lead's deletion), the rows equal the
ledger's awards less their reversals, and ``scoring_verify`` says when they do not."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from leads.activities import activities_record
from leads.merging import leads_merge
from leads.models import Activity, ActivityType, Lead
from scoring.changes import rule_delete, rule_save, rule_snapshot
from scoring.lead_scoring import lead_score
from scoring.models import RuleMatch, ScoreEntry
from scoring.rescore_jobs import model_rescore_in_process
from scoring.verification import scores_verify
from tests.factories import LeadFactory, active_model, fit_rule, page_rule

pytestmark = pytest.mark.django_db(transaction=True)


def kept() -> dict[tuple[int, int, int], int]:
    return {(m.model_id, m.lead_id, m.rule_id): m.awards for m in RuleMatch.objects.all()}


def from_ledger() -> dict[tuple[int, int, int], int]:
    """The reference: per (model, lead, rule), the awards less the reversals (a
    revaluation is neither)."""
    counted: Counter[tuple[int, int, int]] = Counter()
    for model, lead, rule, reversal_of in ScoreEntry.objects.filter(
        rule__isnull=False, revalued_to__isnull=True
    ).values_list("model_id", "lead_id", "rule_id", "reversal_of_id"):
        counted[(model, lead, rule)] += 1 if reversal_of is None else -1
    return {key: n for key, n in counted.items() if n}


def visit(lead: Lead, url: str, *, days_ago: float = 0) -> None:
    activities_record(
        lead=lead,
        activities=[
            Activity(
                type=ActivityType.PAGE_VIEW,
                url=url,
                occurred_at=timezone.now() - dt.timedelta(days=days_ago),
            )
        ],
    )


@pytest.fixture
def world():
    model = active_model()
    rules = {
        "german": fit_rule(model, 10, "country", "equals", "DE", name="German"),
        "pricing": page_rule(model, 5, "/pricing"),
        "docs": page_rule(model, 2, "/docs"),
    }
    leads = [LeadFactory(country="DE" if n % 2 else "FR") for n in range(6)]
    for n, lead in enumerate(leads):
        for day in range(n % 3 + 1):
            visit(lead, "https://hotlist.example/pricing", days_ago=day)
        if n < 2:
            visit(lead, "https://hotlist.example/docs")
        lead_score(lead_id=lead.pk)
    return {"model": model, "rules": rules, "leads": leads}


def test_real_time_scoring_keeps_the_matches(world):
    model, rules, leads = world["model"], world["rules"], world["leads"]

    assert kept() == from_ledger()
    # Odd leads are German; every lead viewed pricing 1 to 3 times; two read the docs.
    assert kept()[(model.pk, leads[2].pk, rules["pricing"].pk)] == 3
    assert {lead for (_, lead, rule) in kept() if rule == rules["german"].pk} == {
        leads[1].pk,
        leads[3].pk,
        leads[5].pk,
    }
    assert {lead for (_, lead, rule) in kept() if rule == rules["docs"].pk} == {
        leads[0].pk,
        leads[1].pk,
    }
    assert list(scores_verify()) == []


def test_a_rescore_after_a_rule_change_moves_the_matches_with_the_ledger(world, marketer):
    model, rules, leads = world["model"], world["rules"], world["leads"]
    before = kept()

    # Points only: the matches stay (on PostgreSQL the awards are revalued, one entry a
    # lead: test_scoring_revaluations; elsewhere reversed and written again).
    pricing = rules["pricing"]
    snapshot = rule_snapshot(rule=pricing)
    pricing.points = 7
    pricing.save()
    rule_save(rule=pricing, before=snapshot, by=marketer)
    assert kept() == before == from_ledger()
    model_rescore_in_process(model=model, reason="points")
    assert kept() == before == from_ledger()

    # A test that holds for other leads: the German ones no longer match, the French do.
    german = rules["german"]
    snapshot = rule_snapshot(rule=german)
    german.value = "FR"
    german.save()
    rule_save(rule=german, before=snapshot, by=marketer)
    model_rescore_in_process(model=model, reason="condition")

    assert kept() == from_ledger()
    assert {lead for (_, lead, rule) in kept() if rule == german.pk} == {
        leads[0].pk,
        leads[2].pk,
        leads[4].pk,
    }
    assert list(scores_verify()) == []


def test_a_deleted_rule_matches_nobody(world, marketer):
    docs = world["rules"]["docs"]

    rule_delete(rule=docs, by=marketer)

    assert not RuleMatch.objects.filter(rule_id=docs.pk).exists()
    assert kept() == from_ledger()


def test_a_merge_moves_the_matches_to_the_survivor(world, admin_user):
    leads, rules = world["leads"], world["rules"]
    survivor, other = leads[0], leads[2]

    leads_merge(survivor_id=survivor.pk, others=[other.pk], by=admin_user)

    assert not RuleMatch.objects.filter(lead_id=other.pk).exists()
    assert kept() == from_ledger()
    assert RuleMatch.objects.filter(lead_id=survivor.pk, rule_id=rules["pricing"].pk).exists()
    assert list(scores_verify()) == []


def test_a_deleted_lead_leaves_no_match(world):
    lead = world["leads"][1]
    assert RuleMatch.objects.filter(lead_id=lead.pk).count() == 3

    lead.delete()

    assert not RuleMatch.objects.filter(lead_id=lead.pk).exists()
    assert kept() == from_ledger()


def test_entries_deleted_award_first_leave_nothing_behind(world):
    """A deletion that takes an award before its reversal passes through a count below
    zero, and ends at none."""
    lead, rule = world["leads"][3], world["rules"]["pricing"]
    award = ScoreEntry.objects.filter(lead=lead, rule=rule, reversal_of=None).first()
    ScoreEntry.objects.create(
        lead=lead,
        model=award.model,
        rule=rule,
        kind=award.kind,
        points=-award.points,
        reason="reversal",
        at=award.at,
        reversal_of=award,
    )
    assert kept() == from_ledger()

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM scoring_scoreentry WHERE id = %s", [award.pk])
        cursor.execute("DELETE FROM scoring_scoreentry WHERE reversal_of_id = %s", [award.pk])

    assert kept() == from_ledger()


def test_scoring_verify_reports_a_match_that_differs_from_the_ledger(world):
    lead, rule = world["leads"][1], world["rules"]["german"]
    RuleMatch.objects.filter(lead_id=lead.pk, rule_id=rule.pk).update(awards=2)

    with pytest.raises(CommandError, match="1 difference"):
        call_command("scoring_verify")

    (difference,) = scores_verify()
    assert (difference.lead_id, difference.stored, difference.expected) == (lead.pk, 2, 1)
    assert f"rule {rule.pk}" in difference.what

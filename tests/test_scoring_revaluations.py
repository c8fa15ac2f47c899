"""A change of a rule's points alone revalues its awards (``scoring.revaluations``): the
rescore appends one revaluation entry a lead instead of a reversal and an award a match,
and every reader counts the awards at their new points. Through the services every
surface calls (``rule_save``, real-time scoring, merges, ``scoring_verify``), on the
set-based rescore of PostgreSQL."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.db import connection
from django.utils import timezone

from leads.merging import leads_merge
from leads.models import Activity, Lead
from scoring.changes import rule_save, rule_snapshot
from scoring.explanation import lead_explanation, score_history
from scoring.lead_scoring import lead_score
from scoring.models import EntryKind, LeadScore, RescoreJob, RescoreStatus, RuleMatch, ScoreEntry
from scoring.rescore_jobs import model_rescore_in_process
from scoring.score_formula import decay_factor, decayed
from scoring.verification import scores_verify
from tests.factories import LeadFactory, active_model, fit_rule, page_rule
from tests.test_scoring_rule_matches import visit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

HALF_LIFE = 10.0


@pytest.fixture
def world():
    model = active_model(decay_half_life_days=HALF_LIFE)
    rules = {
        "german": fit_rule(model, 10, "country", "equals", "DE", name="German"),
        "pricing": page_rule(model, 5, "/pricing"),
        "docs": page_rule(model, 2, "/docs"),
    }
    leads = [LeadFactory(country="DE" if n % 2 else "FR") for n in range(5)]
    for n, lead in enumerate(leads):
        # Lead n viewed pricing n times (none for the first), over the last weeks.
        for visit_number in range(n):
            visit(lead, "https://hotlist.example/pricing", days_ago=3 * visit_number + n)
        visit(lead, "https://hotlist.example/docs", days_ago=n)
        lead_score(lead_id=lead.pk)
    return {"model": model, "rules": rules, "leads": leads}


def change_points(rule, points: int, by=None) -> RescoreJob:
    before = rule_snapshot(rule=rule)
    rule.points = points
    rule.save()
    (job,) = rule_save(rule=rule, before=before, by=by)
    job.refresh_from_db()
    assert job.status == RescoreStatus.DONE, job.error
    return job


def ledger_total(lead: Lead, model, now: dt.datetime) -> float:
    """Every entry of the lead, reversals and revaluations included, at ``now``: the
    ledger sums to the score at every moment."""
    total = 0.0
    for entry in ScoreEntry.objects.filter(lead=lead, model=model):
        value = entry.points
        if entry.kind == EntryKind.ENGAGEMENT:
            value *= decay_factor((now - entry.at).total_seconds(), HALF_LIFE)
        total += value
    return total


def stored_total(lead: Lead, model, now: dt.datetime) -> float:
    row = LeadScore.objects.get(lead=lead, model=model)
    return row.fit + row.adjustment + decayed(row.engagement, row.engagement_at, now, HALF_LIFE)


def pricing_line(lead: Lead, rule, now: dt.datetime) -> dict | None:
    (part,) = lead_explanation(lead=lead, now=now)["models"]
    lines = [*part["positive"], *part["negative"]]
    total = sum(line["value_now"] for line in lines)
    # Each line is rounded to a tenth, the score to a whole point.
    assert abs(total - part["score"]) <= 0.5 + 0.05 * len(lines), part
    return next((line for line in lines if line["rule_id"] == rule.pk), None)


def states(leads: list[Lead]) -> list[tuple]:
    rows = {row.pk: row for row in Lead.objects.filter(pk__in=[lead.pk for lead in leads])}
    return [
        (rows[lead.pk].score, rows[lead.pk].band, round(rows[lead.pk].engagement_score, 3))
        for lead in leads
    ]


def assert_a_rescore_from_nothing_agrees(model, leads: list[Lead]) -> None:
    """A rescore from an empty ledger gives the leads the scores they have."""
    stored = states(leads)
    ScoreEntry.objects.all().delete()
    LeadScore.objects.all().delete()
    Activity.objects.update(scored_at=None)
    model_rescore_in_process(model=model, reason="from nothing")
    assert states(leads) == stored


def test_a_points_change_writes_one_entry_a_lead_and_every_reader_agrees(world, marketer):
    model, rules, leads = world["model"], world["rules"], world["leads"]
    pricing = rules["pricing"]
    matches = {lead.pk: n for n, lead in enumerate(leads) if n}
    written_before = ScoreEntry.objects.count()
    rule_matches = set(RuleMatch.objects.values_list("lead_id", "rule_id", "awards"))
    changed_at = timezone.now()
    before_change = [score_history(lead=lead, model=model, now=changed_at) for lead in leads]

    # When a marketer changes the pricing rule's points only
    job = change_points(pricing, 8, by=marketer)

    # Then the job knew it for a points change, and wrote one revaluation a lead holding
    # awards of the rule: no reversal, no new award
    assert job.points_before == 5
    new = list(ScoreEntry.objects.filter(revalued_to__isnull=False).order_by("pk"))
    assert ScoreEntry.objects.count() - written_before == len(matches)
    assert all(e.revalued_to == 8 and e.rule_id == pricing.pk for e in new)
    assert all(e.reversal_of_id is None and e.activity_id is None for e in new)
    assert {e.lead_id for e in new} == set(matches)
    for entry in new:
        n = matches[entry.lead_id]
        said = f"{n} match" if n == 1 else f"{n} matches"
        assert entry.reason.endswith(f": points changed on {said}, from 5 to 8 points")
    # The leads match the same rules as before
    assert set(RuleMatch.objects.values_list("lead_id", "rule_id", "awards")) == rule_matches

    now = timezone.now()
    for lead in leads:
        # The ledger still sums to the stored score
        assert abs(ledger_total(lead, model, now) - stored_total(lead, model, now)) < 1e-6
        # The explanation's line counts each match at the new points, and adds up
        line = pricing_line(lead, pricing, now)
        if lead.pk in matches:
            assert (line["times"], line["points"]) == (matches[lead.pk], 8.0 * matches[lead.pk])
        else:
            assert line is None
    assert list(scores_verify()) == []
    # The history before the change is what it was
    for lead, series in zip(leads, before_change, strict=True):
        history = score_history(lead=lead, model=model, now=changed_at)
        assert history[-1]["score"] == series[-1]["score"]

    # And a rescore from an empty ledger gives the same scores
    assert_a_rescore_from_nothing_agrees(model, leads)


def test_revalued_awards_decay_score_in_real_time_and_are_reversed_at_their_new_points(
    world, marketer
):
    model, rules, leads = world["model"], world["rules"], world["leads"]
    pricing = rules["pricing"]
    change_points(pricing, 8)
    # Two changes in a row: the awards count the latest
    change_points(pricing, 3)
    assert ScoreEntry.objects.filter(revalued_to__isnull=False).count() == 2 * (len(leads) - 1)
    for n, lead in enumerate(leads[1:], start=1):
        assert pricing_line(lead, pricing, timezone.now())["points"] == 3.0 * n

    # Days later the decay carried the revalued awards forward with the rest
    later = timezone.now() + dt.timedelta(days=4)
    assert list(scores_verify(now=later)) == []

    # A new visit is awarded the new points in real time, beside the revalued ones
    visit(leads[2], "https://hotlist.example/pricing/plans")
    assert pricing_line(leads[2], pricing, timezone.now())["points"] == 3.0 * 3
    assert list(scores_verify()) == []

    # A condition change takes the matches away: each award is reversed at the points
    # it counts, so award, revaluations and reversal cancel out
    before = rule_snapshot(rule=pricing)
    pricing.pattern = "/pricing/enterprise"
    pricing.save()
    rule_save(rule=pricing, before=before, by=marketer)
    now = timezone.now()
    assert list(scores_verify(now=now)) == []
    assert not RuleMatch.objects.filter(rule=pricing).exists()
    for lead in leads:
        assert pricing_line(lead, pricing, now) is None
        assert abs(ledger_total(lead, model, now) - stored_total(lead, model, now)) < 1e-6
        docs_only = 2 * decay_factor(
            (now - lead.activities.get(url__contains="docs").occurred_at).total_seconds(),
            HALF_LIFE,
        )
        row = LeadScore.objects.get(lead=lead)
        engagement = decayed(row.engagement, row.engagement_at, now, HALF_LIFE)
        assert engagement == pytest.approx(docs_only, abs=1e-6)


def test_merging_leads_with_revalued_awards_keeps_the_ledger_right(world, marketer):
    model, rules, leads = world["model"], world["rules"], world["leads"]
    change_points(rules["pricing"], 9)

    leads_merge(survivor_id=leads[3].pk, others=[leads[4].pk], by=marketer)

    survivor = Lead.objects.get(pk=leads[3].pk)
    now = timezone.now()
    assert list(scores_verify(now=now)) == []
    assert abs(ledger_total(survivor, model, now) - stored_total(survivor, model, now)) < 1e-6
    line = pricing_line(survivor, rules["pricing"], now)
    assert (line["times"], line["points"]) == (3 + 4, 9.0 * 7)


def test_a_fit_rules_points_change_revalues_its_one_award_a_lead(world, marketer, caplog):
    model, rules, leads = world["model"], world["rules"], world["leads"]
    german = rules["german"]
    germans = {lead.pk for lead in leads if lead.country == "DE"}
    written_before = ScoreEntry.objects.count()

    # When a marketer changes the points of a fit rule only
    job = change_points(german, 14, by=marketer)

    # Then each lead holding its award gets one revaluation, worth the difference (a fit
    # award never decays), and nothing is reversed
    assert job.points_before == 10
    new = list(ScoreEntry.objects.filter(revalued_to__isnull=False))
    assert ScoreEntry.objects.count() - written_before == len(germans) == 2
    assert {e.lead_id for e in new} == germans
    assert {(e.kind, e.rule_id, e.points, e.revalued_to) for e in new} == {
        (EntryKind.FIT, german.pk, 4.0, 14.0)
    }
    assert not ScoreEntry.objects.filter(reversal_of__isnull=False).exists()
    now = timezone.now()
    for lead in leads:
        assert LeadScore.objects.get(lead=lead).fit == (14.0 if lead.pk in germans else 0.0)
        assert abs(ledger_total(lead, model, now) - stored_total(lead, model, now)) < 1e-6
        line = pricing_line(lead, german, now)
        assert (line["points"] if line else None) == (14.0 if lead.pk in germans else None)
    assert list(scores_verify()) == []

    # A German lead's next activity is scored on the fast path: its revalued fit award is
    # the award the fit rule gives now
    caplog.set_level(logging.DEBUG, logger="scoring.incremental")
    first, second = sorted(germans)
    visit(Lead.objects.get(pk=first), "https://hotlist.example/pricing/plans")
    assert [r.getMessage() for r in caplog.records if r.name == "scoring.incremental"] == []
    assert list(scores_verify()) == []

    # A lead that leaves the rule loses the award at the points it counts
    Lead.objects.filter(pk=second).update(country="FR")
    lead_score(lead_id=second)
    now = timezone.now()
    assert LeadScore.objects.get(lead_id=second).fit == 0.0
    lead = Lead.objects.get(pk=second)
    assert abs(ledger_total(lead, model, now) - stored_total(lead, model, now)) < 1e-6
    assert list(scores_verify()) == []
    assert_a_rescore_from_nothing_agrees(model, leads)


def test_a_change_that_is_more_than_points_derives_the_awards_again(world):
    model, rules, leads = world["model"], world["rules"], world["leads"]
    capped = page_rule(model, 4, "/pricing", max_per_day=1)
    for lead in leads:
        lead_score(lead_id=lead.pk)

    # A capped rule: how many matches count can depend on the points
    job = change_points(capped, 6)
    assert job.points_before == 4
    assert not ScoreEntry.objects.filter(revalued_to__isnull=False).exists()
    assert ScoreEntry.objects.filter(rule=capped, reversal_of__isnull=False).exists()

    # A rule that gave nothing before gives its awards afresh
    zero = rules["docs"]
    change_points(zero, 0)
    change_points(zero, 3)
    assert not ScoreEntry.objects.filter(revalued_to__isnull=False).exists()
    assert RuleMatch.objects.filter(rule=zero).count() == len(leads)
    assert list(scores_verify()) == []


def test_the_revaluations_of_a_rule_are_read_through_their_own_index(world):
    rules = world["rules"]
    change_points(rules["pricing"], 7)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT id FROM scoring_scoreentry WHERE lead_id = %s AND rule_id = %s "
            "AND revalued_to IS NOT NULL",
            [world["leads"][2].pk, rules["pricing"].pk],
        )
        plan = "\n".join(row for (row,) in cursor.fetchall())
    assert "entry_revaluations_idx" in plan


def test_a_full_resum_after_a_revaluation_counts_the_new_points(world, marketer):
    from scoring.changes import model_save, model_snapshot

    model, rules, leads = world["model"], world["rules"], world["leads"]
    change_points(rules["pricing"], 8)

    # When the half-life changes, every score is summed from the ledger again
    before = model_snapshot(model=model)
    model.decay_half_life_days = 2 * HALF_LIFE
    model.save()
    (job,) = model_save(model=model, before=before, by=marketer, reason="half-life")
    job.refresh_from_db()
    assert job.status == RescoreStatus.DONE, job.error

    # Then the sums count each revalued award at its new points, as a rescore from an
    # empty ledger does
    assert list(scores_verify()) == []
    assert_a_rescore_from_nothing_agrees(model, leads)


def test_deleting_a_revalued_rule_takes_its_awards_and_revaluations_back(world, marketer):
    from scoring.changes import rule_delete

    model, rules, leads = world["model"], world["rules"], world["leads"]
    change_points(rules["pricing"], 8)
    now = timezone.now()
    # While the deletion's rescore waits, the explanation still adds up
    rule_delete(rule=rules["pricing"], by=marketer, rescore=False)
    for lead in leads:
        pricing_line(lead, rules["pricing"], now)

    # Its rescore reverses the awards and the revaluations alike, each at its own value
    model_rescore_in_process(model=model, reason="rule deleted")
    now = timezone.now()
    assert list(scores_verify(now=now)) == []
    for lead in leads:
        assert abs(ledger_total(lead, model, now) - stored_total(lead, model, now)) < 1e-6
        row = LeadScore.objects.get(lead=lead)
        docs_only = 2 * decay_factor(
            (now - lead.activities.get(url__contains="docs").occurred_at).total_seconds(),
            HALF_LIFE,
        )
        engagement = decayed(row.engagement, row.engagement_at, now, HALF_LIFE)
        assert engagement == pytest.approx(docs_only, abs=1e-6)

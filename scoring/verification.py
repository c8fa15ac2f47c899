"""Verification of stored scores: every lead recomputed from its activities and the
active rules, and each difference from its ledger, ``LeadScore`` or lead reported."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from leads.models import Lead

from .batch_writes import LeadResult
from .engine import Batch, batch_awards
from .lead_sets import CHUNK_SIZE, chunks
from .models import RuleMatch, ScoreEntry
from .ruleset import load_ruleset
from .score_formula import decayed, shown_parts
from .state import state_from


@dataclass(frozen=True)
class Difference:
    lead_id: int
    what: str
    stored: Any
    expected: Any


def scores_verify(
    *, now: datetime | None = None, chunk_size: int = CHUNK_SIZE
) -> Iterator[Difference]:
    """Recompute every lead from its activities and the active rules; yield what differs.

    Checks that the ledger holds exactly the awards the rules give, that each
    ``LeadScore`` equals its ledger under the decay formula, that the lead's
    materialized primary score equals its ``LeadScore`` carried to the lead's
    ``engagement_at``, and that the rules each lead matches (``RuleMatch``) are the
    ones its ledger holds awards of.
    """
    now = now or timezone.now()
    ruleset = load_ruleset(fresh=True)
    ids = list(Lead.objects.order_by("pk").values_list("pk", flat=True))
    for chunk in chunks(ids, chunk_size):
        with transaction.atomic():
            leads = list(Lead.objects.filter(pk__in=chunk).select_related("company").order_by("pk"))
            batch = Batch(leads, ruleset, now)
            for lead in leads:
                yield from _verify_lead(batch, lead, now)
            yield from _verify_matches(chunk)
            transaction.set_rollback(True)


def _verify_matches(lead_ids: Sequence[int]) -> Iterator[Difference]:
    """The rule matches of ``lead_ids`` against their ledger: per (model, lead, rule),
    the awards less the reversals."""
    kept = {
        (model, lead, rule): awards
        for model, lead, rule, awards in RuleMatch.objects.filter(lead_id__in=lead_ids)
        .values_list("model_id", "lead_id", "rule_id", "awards")
        .iterator()
    }
    counted: Counter[tuple[int, int, int]] = Counter()
    entries = ScoreEntry.objects.filter(
        lead_id__in=lead_ids, rule__isnull=False, revalued_to__isnull=True
    ).values_list("model_id", "lead_id", "rule_id", "reversal_of_id")
    for model, lead, rule, reversal_of in entries.iterator():
        counted[(model, lead, rule)] += 1 if reversal_of is None else -1
    expected = {key: awards for key, awards in counted.items() if awards}
    for key in sorted(kept.keys() | expected.keys()):
        if kept.get(key) != expected.get(key):
            model, lead, rule = key
            yield Difference(
                lead,
                f"active awards of rule {rule} in model {model}",
                kept.get(key),
                expected.get(key),
            )


def _verify_lead(batch: Batch, lead: Lead, now: datetime) -> Iterator[Difference]:
    stored = {(s.model_id): s for s in batch.scores.values() if s.lead_id == lead.pk}
    snapshot = (lead.score, lead.band, lead.grade, round(lead.engagement_score, 3))
    expected_primary = None
    for model in batch.ruleset.for_lead(batch.products.get(lead.pk, [])):
        pending = list(batch.new_entries)
        active, _ = batch._sync(lead, model, batch_awards(batch, lead, model, now))
        if len(batch.new_entries) != len(pending):
            yield Difference(
                lead.pk,
                f"ledger of “{model.name}”",
                "missing or stale awards",
                f"{len(batch.new_entries) - len(pending)} entries to write",
            )
        result = LeadResult(lead=lead, before=(lead.score, lead.band))
        state = batch._state(lead, model, active, result)
        row = stored.get(model.id)
        if row is None:
            yield Difference(lead.pk, f"score in “{model.name}”", None, state.score)
            continue
        adjustment = batch.adjustments.get((lead.pk, model.id), 0.0)
        if abs(row.adjustment - adjustment) > 0.001:
            yield Difference(
                lead.pk, f"manual adjustments in “{model.name}”", row.adjustment, adjustment
            )
        carried = decayed(row.engagement, row.engagement_at, now, model.half_life_days)
        if abs(carried - state.engagement) > 0.01 or abs(row.fit - state.fit) > 0.001:
            yield Difference(
                lead.pk,
                f"fit/engagement in “{model.name}”",
                (round(row.fit, 2), round(carried, 2)),
                (round(state.fit, 2), round(state.engagement, 2)),
            )
        if row.is_primary:
            expected_primary = (model, row)
    if expected_primary is None:
        if lead.score != 0 and stored:
            yield Difference(lead.pk, "primary score", lead.score, 0)
        return
    model, row = expected_primary
    at = lead.engagement_at or row.engagement_at
    state, effective = state_from(
        model,
        row.fit,
        row.adjustment,
        decayed(row.engagement, row.engagement_at, at, model.half_life_days),
        row.last_engaged_at,
        at,
        row.predictive_score,
    )
    _, engagement = shown_parts(state.effective_fit, effective, model.thresholds)
    expected = (state.score, state.band, state.grade, round(engagement, 3))
    if snapshot[:3] != expected[:3] or abs(snapshot[3] - expected[3]) > 0.01:
        yield Difference(
            lead.pk, "materialized score (score, band, grade, engagement)", snapshot, expected
        )

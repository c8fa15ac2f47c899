"""Scoring leads: apply their pending activities and changed fields, append to the
ledger what changed, bring their companies' account scores up to date, and react to the
new scores (stage moves on threshold crossings, band changes and surges announced after
commit).

Real-time scoring, the drain of waiting activities, manual adjustments and a rescore
without PostgreSQL all score through ``leads_score``. The drain asks for the fast path
(``scoring.incremental``): a lead whose only change is new activities is scored in
O(new events); every other lead, and every other caller's, in full (``scoring.engine``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from leads.models import Activity, Lead, Stage
from leads.stages import lead_move_to_stage_locked

from .accounts import accounts_refresh
from .batch_writes import LeadResult
from .engine import Batch
from .incremental import IncrementalBatch, pending_activities
from .lead_sets import CHUNK_SIZE, chunks
from .models import ProfileRescore, ScoringModel
from .predictive.services import leads_predictive_rescore
from .ruleset import CompiledModel, Ruleset, load_ruleset
from .signals import band_changed, lead_qualified, score_surged

# Scoring never moves a lead backward, nor past SQL, nor out of these stages.
AUTO_QUALIFIABLE = {Stage.NEW, Stage.RECYCLED, Stage.MQL}


def leads_score(
    *,
    lead_ids: Sequence[int],
    now: datetime | None = None,
    ruleset: Ruleset | None = None,
    react: bool = True,
    incremental: bool = False,
) -> list[LeadResult]:
    """Score the leads against the active models, in one transaction with their rows locked.

    Applies every pending activity, appends ledger entries for what changed,
    updates the materialized scores, moves stages on upward threshold crossings,
    and announces crossings, band changes and surges after commit. Idempotent.
    With ``react=False`` the scores are written and nothing reacts to them (no stage
    move, nothing announced): history brought in by an import (``leads_rescore_quietly``).

    ``incremental``: the caller scores new activities (the drain). Leads whose stored
    scores and ledger are current then take the fast path, which writes what the full
    path would; the others, and every lead of a caller that changed something else (a
    manual adjustment, a rule), are scored in full.
    """
    with transaction.atomic():
        leads = list(
            Lead.objects.select_for_update(of=("self",))
            .filter(pk__in=lead_ids)
            .select_related("company")
            .order_by("pk")
        )
        if not leads:
            return []
        # Only once the leads are locked: a run that committed while this one waited used a
        # later "now", and what it applied must not look like the future (and be reversed).
        now = now or timezone.now()
        ruleset = ruleset or load_ruleset()
        ids = [lead.pk for lead in leads]
        company_ids = {lead.company_id for lead in leads}
        results: list[LeadResult] = []
        if incremental:
            new = pending_activities(ids, ruleset)
            pending = [activity.id for activities in new.values() for activity in activities]
            fast = IncrementalBatch(leads, ruleset, now, new)
            results += fast.run()
            leads = [lead for lead, _ in fast.fallbacks]
        else:
            pending = list(
                Activity.objects.unscored()
                .filter(lead_id__in=ids)
                .order_by()
                .values_list("pk", flat=True)
            )
        if leads:
            results += Batch(leads, ruleset, now).run()
        results.sort(key=lambda result: result.lead.pk)
        # The changed fields were read under the lock: their rescore is done.
        ProfileRescore.objects.filter(lead_id__in=ids).delete()
        for start in range(0, len(pending), CHUNK_SIZE):
            Activity.objects.filter(
                pk__in=pending[start : start + CHUNK_SIZE], scored_at__isnull=True
            ).update(scored_at=now)
        # Their companies' scores follow from theirs, summed with what this wrote.
        accounts_refresh(company_ids=company_ids, now=now)
        # The predictive score follows the same events, read as of the same time.
        leads_predictive_rescore(lead_ids=ids, now=now)
        if react:
            for result in results:
                result_react(result)
    return results


def lead_score(*, lead_id: int, now: datetime | None = None) -> LeadResult | None:
    results = leads_score(lead_ids=[lead_id], now=now)
    return results[0] if results else None


def leads_score_chunked(*, lead_ids: list[int], chunk: int = 200) -> int:
    """Score these leads, ``chunk`` to a transaction (a company merge's people, rescored
    after it commits); how many were scored."""
    return sum(len(leads_score(lead_ids=part)) for part in chunks(lead_ids, chunk))


def result_react(result: LeadResult) -> None:
    """Move the stage on an upward crossing and queue the hooks; inside the scoring transaction."""
    lead, model = result.lead, result.primary
    if model is None:
        return
    old_score, old_band = result.before
    if lead.band != old_band:
        announce(
            band_changed, model, lead.pk, old_band=old_band, new_band=lead.band, score=lead.score
        )
    for surge_model, points in result.surges:
        announce(score_surged, surge_model, lead.pk, points=points, hours=surge_model.surge_hours)
    target = stage_target(old_score, lead.score, lead.stage, model)
    if target is None:
        return
    threshold = model.sql_threshold if target == Stage.SQL else model.mql_threshold
    reason = (
        f"Score {lead.score} crossed the {Stage(target).label} threshold {threshold} "
        f"in “{model.name}”"
    )
    lead_move_to_stage_locked(lead=lead, stage=target, by=None, reason=reason)
    announce(lead_qualified, model, lead.pk, stage=target, score=lead.score)


def stage_target(before: int | None, after: int, stage: str, model: CompiledModel) -> str | None:
    """The stage a score going from ``before`` to ``after`` moves a lead in ``stage`` to,
    or None: an upward crossing of the SQL or MQL threshold, never backward, never out of
    ``AUTO_QUALIFIABLE``."""
    target = None
    if crossed(before, after, model.sql_threshold):
        target = Stage.SQL
    elif crossed(before, after, model.mql_threshold):
        target = Stage.MQL
    if target is None or stage not in AUTO_QUALIFIABLE or stage == target:
        return None
    return target


def crossed(before: int | None, after: int, threshold: int) -> bool:
    """Whether a score going from ``before`` to ``after`` crosses ``threshold`` upward; a
    first score (``before`` None) comes from minus infinity, so it crosses every
    threshold it reaches, negative ones included."""
    return after >= threshold and (before is None or before < threshold)


def announce(signal: Any, model: CompiledModel, lead_id: int, **payload: Any) -> None:
    send = partial(signal.send, sender=ScoringModel, lead_id=lead_id, model_id=model.id, **payload)
    transaction.on_commit(send)

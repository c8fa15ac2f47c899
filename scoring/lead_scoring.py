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

from django.db import transaction
from django.utils import timezone

from leads.models import Activity, Lead

from .accounts import accounts_refresh
from .batch_writes import LeadResult
from .engine import Batch
from .incremental import IncrementalBatch, pending_activities
from .lead_sets import CHUNK_SIZE, chunks
from .models import ProfileRescore
from .predictive.services import leads_predictive_scores
from .reactions import result_react
from .ruleset import Ruleset, load_ruleset


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
        # The predictive score follows the same events, read as of the same time, and is
        # written with the rule score (a model may band its leads on it).
        predictive = leads_predictive_scores(lead_ids=ids, now=now)
        if incremental:
            new = pending_activities(ids, ruleset)
            pending = [activity.id for activities in new.values() for activity in activities]
            fast = IncrementalBatch(leads, ruleset, now, new, predictive)
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
            results += Batch(leads, ruleset, now, predictive).run()
        results.sort(key=lambda result: result.lead.pk)
        # The changed fields were read under the lock: their rescore is done.
        ProfileRescore.objects.filter(lead_id__in=ids).delete()
        for start in range(0, len(pending), CHUNK_SIZE):
            Activity.objects.filter(
                pk__in=pending[start : start + CHUNK_SIZE], scored_at__isnull=True
            ).update(scored_at=now)
        # Their companies' scores follow from theirs, summed with what this wrote.
        accounts_refresh(company_ids=company_ids, now=now)
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

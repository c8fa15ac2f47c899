"""The preview of a scoring model before it goes live: past won and lost leads and
today's leads scored with it, nothing saved. A candidate version is compared with the
live one it would replace by ``scoring.version_preview``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from leads.models import Deal, Lead, Stage

from .batch_writes import LeadResult
from .engine import Batch, batch_awards
from .lead_sets import CHUNK_SIZE, chunks, segment_lead_ids
from .models import ScoringModel
from .reactions import AUTO_QUALIFIABLE
from .ruleset import CompiledModel, load_ruleset


@dataclass
class BandOutcome:
    band: str
    won: int = 0
    lost: int = 0

    @property
    def closed(self) -> int:
        return self.won + self.lost

    @property
    def conversion(self) -> float | None:
        return None if not self.closed else self.won / self.closed


def model_preview(*, model: ScoringModel, now: datetime | None = None) -> dict[str, Any]:
    """Score past won and lost leads, and today's leads, with ``model`` without saving anything.

    Answers what a marketer asks before going live: does a higher band convert
    better, how many current leads would change band or stage, and the lowest score
    among converted leads as a hint for the MQL threshold.
    """
    now = now or timezone.now()
    ruleset = load_ruleset([model])
    compiled = ruleset.models[0]
    outcomes = _lead_outcomes()
    bands = {band: BandOutcome(band) for band in ("hot", "warm", "cold")}
    converted_scores: list[int] = []
    changes = {"band": 0, "stage": 0, "scored": 0}
    ids = list(segment_lead_ids(model))
    with transaction.atomic():
        for chunk in chunks(ids, CHUNK_SIZE):
            leads = list(Lead.objects.filter(pk__in=chunk).select_related("company"))
            batch = Batch(leads, ruleset, now)
            for lead in leads:
                result = LeadResult(lead=lead, before=(lead.score, lead.band))
                active, _ = batch._sync(lead, compiled, batch_awards(batch, lead, compiled, now))
                state = batch._state(lead, compiled, active, result)
                changes["scored"] += 1
                outcome = outcomes.get(lead.pk)
                if outcome is not None:
                    setattr(bands[state.band], outcome, getattr(bands[state.band], outcome) + 1)
                    if outcome == "won":
                        converted_scores.append(state.score)
                elif lead.stage in AUTO_QUALIFIABLE:
                    changes["band"] += state.band != lead.band
                    changes["stage"] += _would_move(lead, state.score, compiled)
        transaction.set_rollback(True)
    ordered = [bands["hot"], bands["warm"], bands["cold"]]
    rates = [b.conversion for b in ordered if b.conversion is not None]
    return {
        "model": model,
        "bands": ordered,
        "closed": sum(b.closed for b in ordered),
        "lowest_converted_score": min(converted_scores) if converted_scores else None,
        "would_change_band": changes["band"],
        "would_change_stage": changes["stage"],
        "scored": changes["scored"],
        "backwards": len(rates) >= 2 and rates != sorted(rates, reverse=True),
    }


def _would_move(lead: Lead, score: int, model: CompiledModel) -> bool:
    if score >= model.sql_threshold:
        return lead.stage != Stage.SQL
    if score >= model.mql_threshold:
        return lead.stage in (Stage.NEW, Stage.RECYCLED)
    return False


def _lead_outcomes() -> dict[int, str]:
    """Won for leads with a won deal, lost for leads whose deals were all lost."""
    outcomes: dict[int, str] = {}
    for lead_id, status in Deal.objects.exclude(status="open").values_list("lead_id", "status"):
        if status == "won" or lead_id not in outcomes:
            outcomes[lead_id] = status
    return outcomes

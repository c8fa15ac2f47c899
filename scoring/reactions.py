"""What scoring does once a lead's score is written: a stage move on an upward crossing
of the MQL or SQL threshold by the score its model decides on
(``score_formula.decision_score``), and the band changes, surges and qualifications
announced after commit. Real-time scoring, set-based rescores and the predictive
model's refresh all react through ``result_react``."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction

from leads.models import Stage
from leads.stages import lead_move_to_stage_locked

from .batch_writes import LeadResult
from .models import ScoringModel
from .ruleset import CompiledModel
from .score_formula import decision_name, decision_score
from .signals import band_changed, bands_changed, lead_qualified, score_surged

# Scoring never moves a lead backward, nor past SQL, nor out of these stages.
AUTO_QUALIFIABLE = {Stage.NEW, Stage.RECYCLED, Stage.MQL}


def result_react(result: LeadResult, *, band: bool = True) -> None:
    """Move the stage on an upward crossing and queue the hooks; inside the scoring
    transaction. ``band``: announce a band change too (a caller announcing many leads'
    band changes at once says False: ``bands_announce``)."""
    lead, model = result.lead, result.primary
    if model is None:
        return
    old_band = result.before[1]
    if band and lead.band != old_band:
        announce(
            band_changed, model, lead.pk, old_band=old_band, new_band=lead.band, score=lead.score
        )
    for surge_model, points in result.surges:
        announce(score_surged, surge_model, lead.pk, points=points, hours=surge_model.surge_hours)
    target, decided = result_target(result, model)
    if target is None:
        return
    threshold = model.sql_threshold if target == Stage.SQL else model.mql_threshold
    reason = (
        f"{decision_name(model.thresholds, result.predictive)} {decided} crossed the "
        f"{Stage(target).label} threshold {threshold} in “{model.name}”"
    )
    lead_move_to_stage_locked(lead=lead, stage=target, by=None, reason=reason)
    announce(lead_qualified, model, lead.pk, stage=target, score=decided)


# A band change of one lead among many: (lead id, old band, new band, score).
BandChange = tuple[int, str, str, int]


def bands_announce(model_id: int, changes: list[BandChange]) -> None:
    """Announce the band changes of many leads in one ``bands_changed``, after commit."""
    if changes:
        send = partial(bands_changed.send, sender=ScoringModel, model_id=model_id, changes=changes)
        transaction.on_commit(send)


def result_target(result: LeadResult, model: CompiledModel) -> tuple[str | None, int]:
    """The stage ``result``'s lead moves to in its primary ``model`` (or None), and the
    score the model decides on after: the crossing is of that score, from before to after."""
    return score_target(
        model,
        before=(result.before[0], result.predictive_before),
        after=(result.lead.score, result.predictive),
        stage=result.lead.stage,
    )


def score_target(
    model: CompiledModel,
    *,
    before: tuple[int | None, int | None],
    after: tuple[int, int | None],
    stage: str,
) -> tuple[str | None, int]:
    """``result_target`` of plain values: the stage a lead in ``stage`` moves to when
    its (score, predictive score) goes from ``before`` (score None: its first) to
    ``after``, and the score the model decides on after."""
    thresholds = model.thresholds
    decided = decision_score(after[0], after[1], thresholds)
    old_score, old_predictive = before
    decided_before = (
        None if old_score is None else decision_score(old_score, old_predictive, thresholds)
    )
    return stage_target(decided_before, decided, stage, model), decided


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

"""A lowered threshold applies to the leads already past it, forward only and once.

Scoring moves a lead to MQL or SQL when its score *crosses* a threshold of its primary
model (``scoring.lead_scoring.result_react``). A threshold lowered from 90 to 80 crosses
nobody: a lead scoring 85 stays an MQL and is never handed to sales. So a change that
lowers a threshold of an active model also moves the model's leads whose score lies
from the new threshold up to (not including) the old one, in a stage scoring qualifies
from, to that stage, as the crossing would have, and announces each move once
(``lead_qualified``). Leads at or above the old threshold are left alone: their crossing
happened, or a person moved them since. Raising a threshold moves nobody back.

The moves run in the model's rescore job that the change queues, range by range in the
range's transaction (``scoring.rescore_jobs``), after the range's new scores, so they
read the scores the change made; ``threshold_moves_count`` says beforehand how many.
Publishing a draft version with lower thresholds than the version it replaces moves the
leads the same way (``scoring.changes.model_publish``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import (
    Case,
    ExpressionWrapper,
    F,
    FloatField,
    IntegerField,
    Q,
    QuerySet,
    When,
)
from django.db.models.functions import Coalesce, Floor

from leads.models import Lead, Stage, funnel_step
from leads.stages import lead_move_to_stage_locked

from .models import LeadScore, ScoringModel
from .reactions import AUTO_QUALIFIABLE
from .score_formula import PREDICTIVE, RULES, decision_name
from .signals import lead_qualified


@dataclass(frozen=True)
class ThresholdMoves:
    """How many leads a threshold change moves forward, to each stage."""

    to_mql: int = 0
    to_sql: int = 0

    @property
    def total(self) -> int:
        return self.to_mql + self.to_sql

    def describe(self) -> str:
        parts = [
            f"{count:,} lead{'s' if count != 1 else ''} to {label}"
            for count, label in ((self.to_mql, "MQL"), (self.to_sql, "SQL"))
            if count
        ]
        return " and ".join(parts) or "no lead"


Basis = tuple[str, int]


def _decided(basis: Basis, shift: int = 0) -> Any:
    """``score_formula.decision_score`` over a ``LeadScore`` row, on ``basis`` (the
    model's ``decide_on`` and predictive share), its rule score moved by ``shift``."""
    decide_on, share = basis
    score = F("score") + shift if shift else F("score")
    if decide_on == RULES:
        return score
    if decide_on == PREDICTIVE:
        return Coalesce(F("predictive_score"), score)
    blend = ExpressionWrapper(
        ((100 - share) * score + share * F("predictive_score")) / 100.0 + 0.5,
        output_field=FloatField(),
    )
    return Case(
        When(predictive_score__isnull=True, then=score),
        default=Floor(blend),
        output_field=IntegerField(),
    )


def _scores(
    model: ScoringModel, basis: Basis, old_basis: Basis, shift: int = 0
) -> QuerySet[LeadScore]:
    """The model's primary score rows with the score decided on after (``decided``) and
    before (``decided_before``) the change."""
    return LeadScore.objects.filter(model=model, is_primary=True).annotate(
        decided=_decided(basis, shift), decided_before=_decided(old_basis)
    )


def _targets(
    *,
    mql: int,
    sql: int,
    old_mql: int,
    old_sql: int,
    cap: int | None = None,
    scores_moved: bool = False,
) -> tuple[Q, Q]:
    """Conditions on the rows of ``_scores``: the leads that move to SQL and those that
    move to MQL when the model's thresholds go from old to new, its decided score from
    ``decided_before`` to ``decided`` (a base score changed, or another basis), up to
    ``cap``: those the change puts past a threshold they were below."""
    nothing = Q(pk__in=[])
    capped_below_sql = cap is not None and cap < sql
    capped_below_mql = cap is not None and cap < mql
    to_sql = (
        Q(decided__gte=sql, decided_before__lt=old_sql, lead__stage__in=AUTO_QUALIFIABLE)
        & ~Q(lead__stage=Stage.SQL)
        if (scores_moved or sql < old_sql) and not capped_below_sql
        else nothing
    )
    below_sql = Q() if capped_below_sql else Q(decided__lt=sql)
    to_mql = (
        Q(
            decided__gte=mql,
            decided_before__lt=old_mql,
            lead__stage__in=[Stage.NEW, Stage.RECYCLED],
        )
        & below_sql
        if (scores_moved or mql < old_mql) and not capped_below_mql
        else nothing
    )
    return to_sql, to_mql


def threshold_moves_count(
    *,
    model: ScoringModel,
    mql: int,
    sql: int,
    base_score: int | None = None,
    max_points: int | None = None,
) -> ThresholdMoves:
    """How many leads setting ``model``'s thresholds to ``mql`` and ``sql`` (and its base
    score to ``base_score``, its maximum to ``max_points``) would move now, from their
    stored scores: none unless the model is active and a threshold drops below a stored
    score or the base score lifts one past a threshold."""
    if model.pk is None or model.status != "active":
        return ThresholdMoves()
    stored = ScoringModel.objects.get(pk=model.pk)
    shift = 0 if base_score is None else base_score - stored.base_score
    basis = (stored.decide_on, stored.predictive_share)
    to_sql, to_mql = _targets(
        mql=mql,
        sql=sql,
        old_mql=stored.mql_threshold,
        old_sql=stored.sql_threshold,
        cap=max_points if shift else None,
        scores_moved=bool(shift),
    )
    scores = _scores(stored, basis, basis, shift)
    return ThresholdMoves(
        to_mql=scores.filter(to_mql).count(), to_sql=scores.filter(to_sql).count()
    )


def thresholds_catch_up(
    *,
    model: ScoringModel,
    old_mql: int | None,
    old_sql: int | None,
    lo: int,
    hi: int,
    old_basis: Basis | None = None,
) -> ThresholdMoves:
    """Move the leads with ids in ``lo..hi`` that ``model``'s lowered thresholds, or the
    score it now decides on (``old_basis``: the one before), put past a threshold (module
    docstring). Call inside the range's transaction."""
    basis = (model.decide_on, model.predictive_share)
    old_basis = old_basis or basis
    to_sql, to_mql = _targets(
        mql=model.mql_threshold,
        sql=model.sql_threshold,
        old_mql=old_mql if old_mql is not None else model.mql_threshold,
        old_sql=old_sql if old_sql is not None else model.sql_threshold,
        scores_moved=old_basis != basis,
    )
    scores = _scores(model, basis, old_basis).filter(lead_id__gte=lo, lead_id__lte=hi)
    read = ("lead_id", F("decided"), "predictive_score")
    moving = {
        lead_id: (Stage.SQL, score, predictive)
        for lead_id, score, predictive in scores.filter(to_sql).values_list(*read)
    } | {
        lead_id: (Stage.MQL, score, predictive)
        for lead_id, score, predictive in scores.filter(to_mql).values_list(*read)
    }
    moved = {Stage.MQL: 0, Stage.SQL: 0}
    for lead in Lead.objects.filter(pk__in=moving).order_by("pk").select_for_update(of=("self",)):
        target, score, predictive = moving[lead.pk]
        if lead.stage not in AUTO_QUALIFIABLE or funnel_step(lead.stage) >= funnel_step(target):
            continue
        threshold, old = (
            (model.sql_threshold, old_sql)
            if target == Stage.SQL
            else (model.mql_threshold, old_mql)
        )
        if old_basis != basis:
            why = f"now that it decides on {model.get_decide_on_display()}"
        else:
            why = f"lowered from {old}"
        reason = (
            f"{decision_name(model.thresholds, predictive)} {score} is past the "
            f"{Stage(target).label} threshold {threshold} of “{model.name}”, {why}"
        )
        lead_move_to_stage_locked(lead=lead, stage=target, by=None, reason=reason)
        send = partial(
            lead_qualified.send,
            sender=ScoringModel,
            lead_id=lead.pk,
            model_id=model.pk,
            stage=target,
            score=score,
        )
        transaction.on_commit(send)
        moved[target] += 1
    return ThresholdMoves(to_mql=moved[Stage.MQL], to_sql=moved[Stage.SQL])

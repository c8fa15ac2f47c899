"""A lead's state in a model: fit, adjustment, engagement and what follows from them
(score, band, grade, quadrant), by the formula of ``scoring.score_formula``, and whether a
stored score row still shows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .models import EntryKind, LeadScore
from .ruleset import CompiledModel
from .score_formula import (
    band_for,
    decay_factor,
    decision_score,
    grade_for,
    idle_penalty,
    quadrant_for,
    total_score,
)


@dataclass(frozen=True)
class State:
    fit: float
    adjustment: float
    engagement: float
    last_engaged_at: datetime | None
    score: int
    band: str
    grade: str
    quadrant: str
    # The lead's predictive score in the model (None: none), and the score its band and
    # the MQL and SQL thresholds read (``score_formula.decision_score``).
    predictive: int | None = None
    decision: int = 0

    @property
    def effective_fit(self) -> float:
        return self.fit + self.adjustment


def state_from(
    model: CompiledModel,
    fit: float,
    adjustment: float,
    engagement: float,
    last_engaged_at: datetime | None,
    now: datetime,
    predictive: int | None = None,
) -> tuple[State, float]:
    """The lead's state in ``model`` at ``now``, its band from the score the model decides
    on (with the lead's ``predictive`` score); also the engagement net of the idle penalty."""
    penalty = idle_penalty(last_engaged_at, now, model.idle_week_penalty)
    effective = engagement - min(penalty, max(engagement, 0.0))
    total_fit = fit + adjustment
    score = total_score(total_fit, effective, model.thresholds)
    decision = decision_score(score, predictive, model.thresholds)
    state = State(
        fit=fit,
        adjustment=adjustment,
        engagement=engagement,
        last_engaged_at=last_engaged_at,
        score=score,
        band=band_for(decision, model.thresholds),
        grade=grade_for(total_fit, model.thresholds),
        quadrant=quadrant_for(total_fit, effective, model.thresholds),
        predictive=predictive,
        decision=decision,
    )
    return state, effective


def entry_value(entry: dict[str, Any], now: datetime, half_life: float | None) -> float:
    if entry["kind"] != EntryKind.ENGAGEMENT:
        return entry["points"]
    return entry["points"] * decay_factor((now - entry["at"]).total_seconds(), half_life)


def same_state(row: LeadScore, state: State) -> bool:
    """Whether ``state`` is what ``row`` shows: the same score, band, grade and quadrant
    from the same fit, adjustment and last engagement (its engagement, decayed, too)."""
    return (
        row.score == state.score
        and row.band == state.band
        and row.grade == state.grade
        and row.quadrant == state.quadrant
        and row.predictive_score == state.predictive
        and row.fit == state.fit
        and row.adjustment == state.adjustment
        and row.last_engaged_at == state.last_engaged_at
    )


def fill_state(row: LeadScore, state: State, now: datetime) -> None:
    row.fit = state.fit
    row.adjustment = state.adjustment
    row.engagement = state.engagement
    row.engagement_at = now
    row.last_engaged_at = state.last_engaged_at
    row.predictive_score = state.predictive
    row.score = state.score
    row.band = state.band
    row.grade = state.grade
    row.quadrant = state.quadrant

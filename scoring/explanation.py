"""Why a lead has its score: the points of each rule, positive and negative, the decay,
the base score, the idle penalty and caps, and each model's score over time, derived
from the ledger. The lines of one model add up to its score (before rounding)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from leads.models import Lead

from .models import EntryKind, LeadScore, ScoreEntry, ScoringModel
from .ruleset import CompiledModel, model_settings
from .score_formula import (
    decay_factor,
    decayed,
    decision_text,
    history_entries,
    score_series,
    score_sum,
    shown_parts,
)
from .snapshots import lead_score_trend
from .state import State, state_from
from .trend import trend_text


def lead_explanation(
    *, lead: Lead, now: datetime | None = None, history: bool = False
) -> dict[str, Any]:
    """Why the lead has its score: points by rule, positive and negative, and the decay;
    the score's trend over the last seven days (``scoring.trend``); with ``history``,
    also each model's score over time (``score_history``)."""
    now = now or timezone.now()
    scores = list(
        LeadScore.objects.filter(lead=lead).select_related("model").order_by("-model__priority")
    )
    models = []
    for row in scores:
        part = _explain_model(lead, row, now)
        if history:
            part["history"] = score_history(lead=lead, model=row.model, now=now)
        models.append(part)
    trend, before = lead_score_trend(lead=lead, now=now)
    return {
        "lead_id": lead.pk,
        "score": lead.score,
        "band": lead.band,
        "grade": lead.grade,
        "quadrant": lead.quadrant,
        "trend": trend.value,
        "trend_text": trend_text(trend, before),
        "score_before": before,
        "models": models,
    }


def _explain_model(lead: Lead, row: LeadScore, now: datetime) -> dict[str, Any]:
    model = row.model
    settings = model_settings(model)
    lines: dict[tuple[Any, str], dict[str, Any]] = {}
    half_life = model.decay_half_life_days
    # Plain tuples, not model instances: the busiest leads hold thousands of entries.
    entries = _active_entries(lead.pk, model.pk).values_list(
        "pk", "rule_id", "kind", "reason", "points", "at"
    )
    for pk, rule_id, kind, reason, points, at in entries:
        key = (rule_id, kind) if kind != EntryKind.MANUAL else (pk, kind)
        line = lines.get(key)
        if line is None:
            line = lines[key] = {
                "rule_id": rule_id,
                "reason": reason,
                "kind": kind,
                "times": 0,
                "points": 0.0,
                "value_now": 0.0,
            }
        value = points
        if kind == EntryKind.ENGAGEMENT:
            value *= decay_factor((now - at).total_seconds(), half_life)
        line["times"] += 1
        line["points"] += points
        line["value_now"] += value
    engagement_now = decayed(row.engagement, row.engagement_at, now, half_life)
    state, effective = state_from(
        settings,
        row.fit,
        row.adjustment,
        engagement_now,
        row.last_engaged_at,
        now,
        row.predictive_score,
    )
    ordered = sorted(
        [*lines.values(), *_formula_lines(settings, state, engagement_now, effective)],
        key=lambda line: -abs(line["value_now"]),
    )
    earned = sum(line["points"] for line in ordered if line["kind"] == EntryKind.ENGAGEMENT)
    fit, engagement = shown_parts(state.effective_fit, effective, settings.thresholds)
    return {
        "model": {
            "id": model.pk,
            "name": model.name,
            "primary": row.is_primary,
            "warm_from": model.warm_from,
            "hot_from": model.hot_from,
        },
        "score": state.score,
        "base_score": model.base_score,
        "fit_cap": model.fit_cap,
        "engagement_cap": model.engagement_cap,
        "fit": round(fit, 1),
        "engagement": round(engagement, 1),
        "band": state.band,
        # The score the band and the MQL and SQL thresholds read, and why.
        "decision": state.decision,
        "decided_on": decision_text(state.score, state.predictive, settings.thresholds),
        "grade": state.grade,
        "quadrant": state.quadrant,
        "decay_applied": round(earned - engagement_now, 1),
        "positive": [_round(line) for line in ordered if line["value_now"] > 0],
        "negative": [_round(line) for line in ordered if line["value_now"] < 0],
    }


def _formula_lines(
    model: CompiledModel, state: State, engagement_now: float, effective: float
) -> list[dict[str, Any]]:
    """The lines the score formula adds to the rules' (``score_formula.total_score``): the
    base score, the idle-week penalty, the caps on fit and engagement and the maximum, so
    that all the lines of an explanation add up to the score (before rounding)."""
    t = model.thresholds
    fit, engagement = shown_parts(state.effective_fit, effective, t)
    lines = [
        _formula_line("base", "Base score", t.base),
        _formula_line("idle", "No engagement for weeks", effective - engagement_now),
        _formula_line("cap", f"Fit capped at {t.fit_cap}", fit - state.effective_fit),
        _formula_line("cap", f"Engagement capped at {t.engagement_cap}", engagement - effective),
    ]
    total = score_sum(state.effective_fit, effective, t)
    if t.max_points is not None and total > t.max_points:
        lines.append(_formula_line("cap", f"Score capped at {t.max_points}", t.max_points - total))
    return [line for line in lines if line["value_now"]]


def _formula_line(kind: str, reason: str, value: float) -> dict[str, Any]:
    return {
        "rule_id": None,
        "reason": reason,
        "kind": kind,
        "times": 1,
        "points": value,
        "value_now": value,
    }


def _round(line: dict[str, Any]) -> dict[str, Any]:
    return {**line, "points": round(line["points"], 1), "value_now": round(line["value_now"], 1)}


def _active_entries(lead_id: int, model_id: int) -> Any:
    return ScoreEntry.objects.filter(
        lead_id=lead_id, model_id=model_id, reversal_of__isnull=True, reversal__isnull=True
    ).order_by("at", "pk")


def score_history(
    *, lead: Lead, model: ScoringModel, points: int = 30, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The score over time, derived from the ledger and the decay formula (no snapshots):
    at each time the score the lead had then (``score_formula.history_entries``)."""
    entries = ScoreEntry.objects.filter(lead=lead, model=model).values_list(
        "at", "kind", "points", "created_at"
    )
    first_scored = (
        LeadScore.objects.filter(lead=lead, model=model)
        .values_list("created_at", flat=True)
        .first()
    )
    series = score_series(
        history_entries(
            (
                (at, kind == EntryKind.ENGAGEMENT, value, written)
                for at, kind, value, written in entries
            ),
            first_scored,
        ),
        now=now or timezone.now(),
        points=points,
        half_life_days=model.decay_half_life_days,
        thresholds=model.thresholds,
    )
    return [{"at": when.isoformat(), "score": score} for when, score in series]


def lead_primary_explanation(lead: Lead) -> dict[str, Any] | None:
    """The explanation by the lead's primary model (the first model's when none is
    primary), ``None`` when no model scores it: the provider behind
    ``leads.score_explanations`` for hand-off emails and webhook payloads."""
    models = lead_explanation(lead=lead)["models"]
    return next((m for m in models if m["model"]["primary"]), models[0] if models else None)

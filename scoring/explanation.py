"""Why a lead has its score: the points of each rule, positive and negative, the decay,
the base score, the idle penalty and caps, and each model's score over time, derived
from the ledger. The lines of one model add up to its score (before rounding)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from django.utils import timezone

from leads.models import Lead

from .models import EntryKind, LeadScore, ScoreEntry, ScoringModel
from .revaluations import latest_revaluations
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
        ledger = _ledger(lead.pk, row.model_id)
        part = _explain_model(row, ledger, now)
        if history:
            part["history"] = _history(ledger, row.model, row.created_at, now=now)
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


class LedgerRow(NamedTuple):
    pk: int
    rule_id: int | None
    kind: str
    points: float
    at: datetime
    created_at: datetime
    reversal_of_id: int | None


def _ledger(lead_id: int, model_id: int) -> list[LedgerRow]:
    """Every entry of the lead in the model, in time order, as plain tuples: the busiest
    leads hold thousands. On PostgreSQL the ledger's (lead, model, at) index holds these
    columns (``entry_lead_ledger_idx``), so they are read from a few of its pages rather
    than from a heap page an entry; the reasons are fetched for the lines alone."""
    rows = (
        ScoreEntry.objects.filter(lead_id=lead_id, model_id=model_id)
        .order_by("at", "pk")
        .values_list("pk", "rule_id", "kind", "points", "at", "created_at", "reversal_of_id")
    )
    return [LedgerRow(*row) for row in rows]


def _active(ledger: list[LedgerRow]) -> list[LedgerRow]:
    """The entries still counting: neither a reversal nor reversed by one."""
    reversed_ = {row.reversal_of_id for row in ledger if row.reversal_of_id is not None}
    return [row for row in ledger if row.reversal_of_id is None and row.pk not in reversed_]


def _effective(lead_id: int, model_id: int, active: list[LedgerRow]) -> list[LedgerRow]:
    """The active awards and adjustments, each award at its effective points; the
    revaluations, whose value those points carry, left out (``scoring.revaluations``).
    The lead's revaluations are read through their partial index: most leads have none."""
    revaluations = list(
        ScoreEntry.objects.filter(lead_id=lead_id, model_id=model_id, revalued_to__isnull=False)
        .order_by()
        .values("id", "lead_id", "model_id", "rule_id", "revalued_to")
    )
    if not revaluations:
        return active
    latest = latest_revaluations(revaluations)
    bonuses = set(
        ScoreEntry.objects.filter(
            lead_id=lead_id,
            model_id=model_id,
            rule_id__in={rule_id for (_, _, rule_id) in latest},
            bonus=True,
        ).values_list("pk", flat=True)
    )
    skipped = {row["id"] for row in revaluations if row["rule_id"] is not None}
    rows = []
    for row in active:
        if row.pk in skipped:
            continue
        revaluation = latest.get((lead_id, model_id, row.rule_id or 0))
        if revaluation is not None and revaluation[0] > row.pk and row.pk not in bonuses:
            row = row._replace(points=revaluation[1])
        rows.append(row)
    return rows


def _explain_model(row: LeadScore, ledger: list[LedgerRow], now: datetime) -> dict[str, Any]:
    model = row.model
    settings = model_settings(model)
    lines: dict[tuple[Any, str], dict[str, Any]] = {}
    first: dict[tuple[Any, str], int] = {}  # each line's first entry, whose reason it reads
    half_life = model.decay_half_life_days
    for entry in _effective(row.lead_id, row.model_id, _active(ledger)):
        kind = entry.kind
        key = (entry.rule_id, kind) if kind != EntryKind.MANUAL else (entry.pk, kind)
        line = lines.get(key)
        if line is None:
            first[key] = entry.pk
            line = lines[key] = {
                "rule_id": entry.rule_id,
                "reason": "",
                "kind": kind,
                "times": 0,
                "points": 0.0,
                "value_now": 0.0,
            }
        value = entry.points
        if kind == EntryKind.ENGAGEMENT:
            value *= decay_factor((now - entry.at).total_seconds(), half_life)
        line["times"] += 1
        line["points"] += entry.points
        line["value_now"] += value
    reasons = dict(ScoreEntry.objects.filter(pk__in=first.values()).values_list("pk", "reason"))
    for key, line in lines.items():
        line["reason"] = reasons[first[key]]
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


def score_history(
    *, lead: Lead, model: ScoringModel, points: int = 30, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The score over time, derived from the ledger and the decay formula (no snapshots):
    at each time the score the lead had then (``score_formula.history_entries``)."""
    first_scored = (
        LeadScore.objects.filter(lead=lead, model=model)
        .values_list("created_at", flat=True)
        .first()
    )
    return _history(
        _ledger(lead.pk, model.pk), model, first_scored, now=now or timezone.now(), points=points
    )


def _history(
    ledger: list[LedgerRow],
    model: ScoringModel,
    first_scored: datetime | None,
    *,
    now: datetime,
    points: int = 30,
) -> list[dict[str, Any]]:
    series = score_series(
        history_entries(
            (
                (row.at, row.kind == EntryKind.ENGAGEMENT, row.points, row.created_at)
                for row in ledger
            ),
            first_scored,
        ),
        now=now,
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

"""What every way of scoring a batch of locked leads writes, and how: the ledger entries
it appends, the surges it finds, and the score rows and lead rows it rewrites, only
where they moved.

The full path (``scoring.engine.Batch``, which re-derives every award) and the fast path
for new activities (``scoring.incremental``) decide differently what each lead earned;
they share this class so that what they write for the same decision is the same, entry
for entry and row for row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crm.db import update_rows
from leads.models import SCORE_COLUMNS, Lead

from .models import EntryKind, LeadScore, ScoreEntry, ScoringModel
from .rules import FIT, Award
from .ruleset import CompiledModel, Ruleset
from .score_formula import round_half_up, shown_parts
from .state import State, entry_value, fill_state, same_state, state_from


@dataclass
class LeadResult:
    """What scoring one lead did: the primary score before and after, and per-model states.

    ``before`` is the score and band the lead showed; its score is None when the lead
    had no score in any model (its first scoring), which crosses every threshold it
    reaches, however low. ``predictive_before`` and ``predictive`` are its predictive
    score in its primary model before and after, for a model deciding on it or a blend.
    """

    lead: Lead
    before: tuple[int | None, str]
    predictive_before: int | None = None
    predictive: int | None = None
    states: dict[int, State] = field(default_factory=dict)
    primary: CompiledModel | None = None
    new_entries: int = 0
    surges: list[tuple[CompiledModel, float]] = field(default_factory=list)


class BatchWrites:
    """Score a set of leads (locked by the caller) against a ruleset at one instant.

    A subclass loads what it needs and implements ``_score``; ``run`` scores each lead,
    appends the entries ``_append`` collected and writes the states that moved.
    """

    def __init__(
        self,
        leads: Sequence[Lead],
        ruleset: Ruleset,
        now: datetime,
        predictive: Mapping[tuple[int, int], int] | None = None,
    ) -> None:
        self.leads = leads
        self.ruleset = ruleset
        self.now = now
        # Predictive scores just computed, by (lead, model); a pair not in it keeps the
        # stored one.
        self.predictive = predictive or {}
        self.scores: dict[tuple[int, int], LeadScore] = {}
        self.new_entries: list[ScoreEntry] = []
        # The (lead, model) pairs whose ledger this batch appends to.
        self.entries_changed: set[tuple[int, int]] = set()

    def run(self) -> list[LeadResult]:
        results = []
        predictive_before = {
            lead_id: row.predictive_score
            for (lead_id, _), row in self.scores.items()
            if row.is_primary
        }
        for lead in self.leads:
            written = len(self.new_entries)
            result = self._score(lead)
            result.new_entries = len(self.new_entries) - written
            result.predictive_before = predictive_before.get(lead.pk)
            if result.primary is not None and result.primary.id in result.states:
                result.predictive = result.states[result.primary.id].predictive
            results.append(result)
        ScoreEntry.objects.bulk_create(self.new_entries, batch_size=1000)
        self._save_states(results)
        return results

    def _score(self, lead: Lead) -> LeadResult:
        raise NotImplementedError

    def _append(self, lead: Lead, model: CompiledModel, award: Award) -> dict[str, Any]:
        self.entries_changed.add((lead.pk, model.id))
        spec = model.rules_by_id[award.rule_id]
        kind = EntryKind.FIT if spec.kind == FIT else EntryKind.ENGAGEMENT
        reason = spec.description
        if award.bonus:
            reason = f"Bonus: {spec.description}"
        self.new_entries.append(
            ScoreEntry(
                lead_id=lead.pk,
                model_id=model.id,
                rule_id=award.rule_id,
                activity_id=award.activity_id,
                kind=kind,
                bonus=award.bonus,
                points=award.points,
                reason=reason[:300],
                at=award.at,
                created_at=self.now,
            )
        )
        return {"kind": kind, "points": award.points, "at": award.at}

    def _reverse(self, lead: Lead, model_id: int, entry: dict[str, Any], why: str) -> None:
        self.entries_changed.add((lead.pk, model_id))
        value = entry_value(entry, self.now, self._half_life(model_id))
        self.new_entries.append(
            ScoreEntry(
                lead_id=lead.pk,
                model_id=model_id,
                rule_id=entry["rule_id"],
                activity_id=entry["activity_id"],
                kind=entry["kind"],
                bonus=entry["bonus"],
                points=-value,
                reason=f"{why}: reverses entry {entry['id']}",
                at=self.now,
                created_at=self.now,
                reversal_of_id=entry["id"],
            )
        )

    def _predictive(self, lead_id: int, model_id: int) -> int | None:
        """The lead's predictive score in the model: just computed, or as stored."""
        key = (lead_id, model_id)
        if key in self.predictive:
            return self.predictive[key]
        row = self.scores.get(key)
        return row.predictive_score if row is not None else None

    def _half_life(self, model_id: int) -> float | None:
        """Half-life of any model, active or not (an inactive one's entries get reversed)."""
        if not hasattr(self, "_half_lives"):
            self._half_lives = dict(ScoringModel.objects.values_list("pk", "decay_half_life_days"))
        return self._half_lives.get(model_id)

    def surge_since(self, model: CompiledModel) -> float:
        """The start of the model's surge window, as a timestamp."""
        return self.now.timestamp() - model.surge_hours * 3600

    def _note_surge(
        self,
        lead: Lead,
        model: CompiledModel,
        result: LeadResult,
        *,
        earned: Iterable[dict[str, Any]],
        recent: float,
    ) -> None:
        """Add a surge to ``result`` when an entry just ``earned`` is engagement dated
        within the model's surge window and the window's positive points (``recent``)
        reach the model's surge: only points earned within the window can raise its sum.
        At most one surge per window."""
        since = self.surge_since(model)
        fresh = any(
            e["kind"] == EntryKind.ENGAGEMENT and e["at"].timestamp() >= since for e in earned
        )
        if not (fresh and model.surge_points and recent >= model.surge_points):
            return
        previous = self.scores.get((lead.pk, model.id))
        last_surge = previous.surged_at if previous else None
        if last_surge is None or (self.now - last_surge).total_seconds() > model.surge_hours * 3600:
            result.surges.append((model, recent))

    def _decay_version(self, model_id: int) -> int:
        model = next((m for m in self.ruleset.models if m.id == model_id), None)
        return model.decay_version if model else 1

    def _save_states(self, results: Sequence[LeadResult]) -> None:
        """Write the states that moved: a score row whose ledger, primary flag, decay
        settings and visible state are as stored still carries the lead forward by the
        decay formula, and rewriting it (and the lead row, through its indexes) would
        change nothing a reader sees."""
        surged = {(r.lead.pk, m.id) for r in results for m, _ in r.surges}
        creates, updates, leads = [], [], []
        for result in results:
            primary_moved = result.primary is None
            for model_id, state in result.states.items():
                key = (result.lead.pk, model_id)
                is_primary = result.primary is not None and model_id == result.primary.id
                row = self.scores.get(key)
                version = self._decay_version(model_id)
                if (
                    row is not None
                    and key not in self.entries_changed
                    and key not in surged
                    and row.is_primary == is_primary
                    and row.decay_version == version
                    and same_state(row, state)
                ):
                    continue
                primary_moved |= is_primary
                if row is None:
                    row = LeadScore(lead_id=result.lead.pk, model_id=model_id, created_at=self.now)
                    creates.append(row)
                else:
                    updates.append(row)
                fill_state(row, state, self.now)
                row.decay_version = version
                row.is_primary = is_primary
                if key in surged:
                    row.surged_at = self.now
            lead = result.lead
            shown = _shown(lead)
            self._materialize(result)
            if primary_moved or _shown(lead) != shown:
                leads.append(lead)
        LeadScore.objects.bulk_create(creates, batch_size=1000)
        update_rows(updates, [*STATE_FIELDS, "surged_at"])
        update_rows(leads, LEAD_SCORE_FIELDS)

    def _materialize(self, result: LeadResult) -> None:
        lead = result.lead
        if result.primary is None:
            state = State(0, 0, 0, None, 0, "cold", "D", "cold")
        else:
            state = result.states[result.primary.id]
        _, effective = (
            state_from(
                result.primary,
                state.fit,
                state.adjustment,
                state.engagement,
                state.last_engaged_at,
                self.now,
                state.predictive,
            )
            if result.primary
            else (state, 0.0)
        )
        fit, engagement = (
            shown_parts(state.effective_fit, effective, result.primary.thresholds)
            if result.primary
            else (0.0, 0.0)
        )
        lead.score = state.score
        lead.fit_score = round_half_up(fit)
        lead.engagement_score = engagement
        lead.engagement_at = self.now
        lead.band = state.band
        lead.grade = state.grade
        lead.quadrant = state.quadrant


def primary_model(models: Sequence[CompiledModel]) -> CompiledModel | None:
    """The model whose score the lead shows: the highest priority, then the default."""
    if not models:
        return None
    return max(models, key=lambda m: (m.priority, m.is_default, -m.id))


STATE_FIELDS = [
    "fit",
    "adjustment",
    "engagement",
    "engagement_at",
    "last_engaged_at",
    "score",
    "band",
    "grade",
    "quadrant",
    "predictive_score",
    "is_primary",
    "decay_version",
]
LEAD_SCORE_FIELDS = [*SCORE_COLUMNS, "engagement_at"]


def _shown(lead: Lead) -> tuple[Any, ...]:
    """What the lists show of a lead's score."""
    return (lead.score, lead.fit_score, lead.band, lead.grade, lead.quadrant)

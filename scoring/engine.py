"""The scoring engine: turns leads, activities and rules into ledger entries and scores.

One code path serves a single lead scored in real time and a chunk of leads in a
bulk rescore: load the rows, ask ``scoring.facts`` what each lead should have
earned, append the difference to the ledger, and recompute the lead's state from
the ledger (``scoring.state``). Running it twice changes nothing, and writes only the
score rows that moved.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from django.db.models import Case, F, JSONField, Sum, Value, When

from crm.db import update_rows
from leads.models import SCORE_COLUMNS, Activity, Lead

from .facts import activity_facts, desired_awards, lead_facts
from .models import EntryKind, LeadScore, ScoreEntry, ScoringModel
from .rules import FIT, Award
from .ruleset import CompiledModel, Ruleset
from .score_formula import (
    round_half_up,
)
from .state import State, entry_value, fill_state, same_state, state_from


@dataclass
class LeadResult:
    """What scoring one lead did: the primary score before and after, and per-model states."""

    lead: Lead
    before: tuple[int, str]
    states: dict[int, State] = field(default_factory=dict)
    primary: CompiledModel | None = None
    new_entries: int = 0
    surges: list[tuple[CompiledModel, float]] = field(default_factory=list)


class Batch:
    """Score a set of leads (locked by the caller) against a ruleset at one instant."""

    def __init__(self, leads: Sequence[Lead], ruleset: Ruleset, now: datetime) -> None:
        self.leads = leads
        self.ruleset = ruleset
        self.now = now
        ids = [lead.pk for lead in leads]
        self.products: dict[int, list[str]] = defaultdict(list)
        through = Lead.product_interests.through
        for lead_id, slug in through.objects.filter(lead_id__in=ids).values_list(
            "lead_id", "productline__slug"
        ):
            self.products[lead_id].append(slug)
        self.activities: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        # Properties are read (and decoded) only for the types a rule reads them of: a
        # long history is mostly page views, whose JSON no rule looks at.
        properties = Case(
            When(type__in=sorted(ruleset.property_types()), then=F("properties")),
            default=Value(None),
            output_field=JSONField(),
        )
        for row in (
            Activity.objects.filter(lead_id__in=ids)
            .annotate(read_properties=properties)
            .values_list(
                "lead_id", "id", "type", "occurred_at", "url", "duration_seconds", "read_properties"
            )
        ):
            self.activities[row[0]].append(row[1:])
        self.entries: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
        for entry in ScoreEntry.objects.filter(
            lead_id__in=ids,
            kind__in=[EntryKind.FIT, EntryKind.ENGAGEMENT],
            reversal_of__isnull=True,
            reversal__isnull=True,
        ).values(
            "id", "lead_id", "model_id", "rule_id", "activity_id", "bonus", "kind", "points", "at"
        ):
            self.entries[(entry["lead_id"], entry["model_id"])].append(cast(dict[str, Any], entry))
        self.adjustments: dict[tuple[int, int], float] = {
            (row["lead_id"], row["model_id"]): row["total"]
            for row in ScoreEntry.objects.filter(lead_id__in=ids, kind=EntryKind.MANUAL)
            .values("lead_id", "model_id")
            .annotate(total=Sum("points"))
        }
        self.scores: dict[tuple[int, int], LeadScore] = {
            (s.lead_id, s.model_id): s for s in LeadScore.objects.filter(lead_id__in=ids)
        }
        # Which models each lead has entries or a score in, to find the ones it left.
        self.models_of: dict[int, set[int]] = defaultdict(set)
        for lead_id, model_id in (*self.entries, *self.scores):
            self.models_of[lead_id].add(model_id)
        self.new_entries: list[ScoreEntry] = []
        self.reversed_ids: set[int] = set()
        # The (lead, model) pairs whose ledger this batch appends to.
        self.entries_changed: set[tuple[int, int]] = set()

    def run(self) -> list[LeadResult]:
        results = []
        for lead in self.leads:
            written = len(self.new_entries)
            result = self._score(lead)
            result.new_entries = len(self.new_entries) - written
            results.append(result)
        ScoreEntry.objects.bulk_create(self.new_entries, batch_size=1000)
        self._save_states(results)
        return results

    def _score(self, lead: Lead) -> LeadResult:
        result = LeadResult(lead=lead, before=(lead.score, lead.band))
        slugs = self.products.get(lead.pk, [])
        models = self.ruleset.for_lead(slugs)
        facts = lead_facts(lead, slugs)
        activities = activity_facts(self.activities.get(lead.pk, []))
        applicable = {m.id for m in models}
        # A model the lead left: its awards are reversed and its score row removed (even
        # with no entries to reverse, the row must not linger, let alone stay primary).
        for model_id in self.models_of[lead.pk] - applicable:
            entries = self.entries.get((lead.pk, model_id), [])
            self._reverse_all(lead, model_id, entries, "Lead left the model's segment")
        for model in models:
            awards = desired_awards(model, facts, activities, self.ruleset.domain_lists, self.now)
            active, appended = self._sync(lead, model, awards)
            result.states[model.id] = self._state(lead, model, active, result, earned=appended)
        if models:
            result.primary = max(models, key=lambda m: (m.priority, m.is_default, -m.id))
        return result

    def _sync(
        self, lead: Lead, model: CompiledModel, awards: Sequence[Award]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Append what differs between the awards and the ledger.

        Returns the active entries and, of those, the ones just appended.
        """
        existing = {
            (e["rule_id"], e["activity_id"], e["bonus"]): e
            for e in self.entries[(lead.pk, model.id)]
        }
        wanted = {award.key: award for award in awards}
        active = []
        for key, entry in existing.items():
            award = wanted.get(key)
            if award is not None and award.points == entry["points"]:
                active.append(entry)
                continue
            self._reverse(lead, model.id, entry, "Rule changed" if award else "No longer applies")
        appended = []
        for key, award in wanted.items():
            found = existing.get(key)
            if found is not None and award.points == found["points"]:
                continue
            appended.append(self._append(lead, model, award))
        return active + appended, appended

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

    def _decay_version(self, model_id: int) -> int:
        model = next((m for m in self.ruleset.models if m.id == model_id), None)
        return model.decay_version if model else 1

    def _half_life(self, model_id: int) -> float | None:
        """Half-life of any model, active or not (an inactive one's entries get reversed)."""
        if not hasattr(self, "_half_lives"):
            self._half_lives = dict(ScoringModel.objects.values_list("pk", "decay_half_life_days"))
        return self._half_lives.get(model_id)

    def _reverse_all(
        self, lead: Lead, model_id: int, entries: list[dict[str, Any]], why: str
    ) -> None:
        for entry in entries:
            self._reverse(lead, model_id, entry, why)
        self.entries[(lead.pk, model_id)] = []
        stale = self.scores.pop((lead.pk, model_id), None)
        if stale is not None:
            stale.delete()

    def _state(
        self,
        lead: Lead,
        model: CompiledModel,
        active: Iterable[dict[str, Any]],
        result: LeadResult,
        *,
        earned: Iterable[dict[str, Any]] = (),
    ) -> State:
        """The lead's state from its active entries.

        A surge is added to ``result`` when an entry just ``earned`` is engagement dated
        within the model's surge window and the window's positive points reach the
        model's surge: only points earned within the window can raise its sum.
        """
        fit = 0.0
        engagement = 0.0
        last_engaged: datetime | None = None
        recent = 0.0
        surge_since = self.now.timestamp() - model.surge_hours * 3600
        for entry in active:
            value = entry_value(entry, self.now, model.half_life_days)
            if entry["kind"] == EntryKind.FIT:
                fit += value
                continue
            engagement += value
            if last_engaged is None or entry["at"] > last_engaged:
                last_engaged = entry["at"]
            if entry["points"] > 0 and entry["at"].timestamp() >= surge_since:
                recent += entry["points"]
        adjustment = self.adjustments.get((lead.pk, model.id), 0.0)
        state, _ = state_from(model, fit, adjustment, engagement, last_engaged, self.now)
        previous = self.scores.get((lead.pk, model.id))
        fresh = any(
            e["kind"] == EntryKind.ENGAGEMENT and e["at"].timestamp() >= surge_since for e in earned
        )
        if fresh and model.surge_points and recent >= model.surge_points:
            last_surge = previous.surged_at if previous else None
            if (
                last_surge is None
                or (self.now - last_surge).total_seconds() > model.surge_hours * 3600
            ):
                result.surges.append((model, recent))
        return state

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
                    row = LeadScore(lead_id=result.lead.pk, model_id=model_id)
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
            )
            if result.primary
            else (state, 0.0)
        )
        lead.score = state.score
        lead.fit_score = round_half_up(state.effective_fit)
        lead.engagement_score = effective
        lead.engagement_at = self.now
        lead.band = state.band
        lead.grade = state.grade
        lead.quadrant = state.quadrant


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
    "is_primary",
    "decay_version",
]
LEAD_SCORE_FIELDS = [*SCORE_COLUMNS, "engagement_at"]


def _shown(lead: Lead) -> tuple[Any, ...]:
    """What the lists show of a lead's score."""
    return (lead.score, lead.fit_score, lead.band, lead.grade, lead.quadrant)


def batch_awards(batch: Batch, lead: Lead, model: CompiledModel, now: datetime) -> list[Award]:
    """The awards ``model`` gives ``lead`` from the rows ``batch`` loaded (without scoring)."""
    slugs = batch.products.get(lead.pk, [])
    return desired_awards(
        model,
        lead_facts(lead, slugs),
        activity_facts(batch.activities.get(lead.pk, [])),
        batch.ruleset.domain_lists,
        now,
    )

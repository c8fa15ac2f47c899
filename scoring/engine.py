"""The scoring engine's full path: turns leads, all their activities and the rules into
ledger entries and scores.

It serves every change a lead can have (fields, adjustments, rules, segments, new
activities the fast path of ``scoring.incremental`` leaves to it) and a chunk of leads
in a rescore without PostgreSQL: load the rows, ask ``scoring.facts`` what each lead
should have earned, append the difference to the ledger, and recompute the lead's state
from the ledger (``scoring.state``). Running it twice changes nothing; what it writes,
only where it moved, is written by ``scoring.batch_writes``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from django.db.models import Sum

from leads.models import Activity, Lead

from .batch_writes import BatchWrites, LeadResult, primary_model
from .facts import activity_facts, activity_rows, desired_awards, lead_facts, lead_products
from .models import EntryKind, LeadScore, ScoreEntry
from .revaluations import AWARD_FIELDS, loaded_effective
from .rules import Award
from .ruleset import CompiledModel, Ruleset
from .state import State, entry_value, state_from


class Batch(BatchWrites):
    """Score a set of leads (locked by the caller) against a ruleset at one instant,
    re-deriving every award from all their activities and fields."""

    def __init__(
        self,
        leads: Sequence[Lead],
        ruleset: Ruleset,
        now: datetime,
        predictive: Mapping[tuple[int, int], int] | None = None,
    ) -> None:
        super().__init__(leads, ruleset, now, predictive)
        ids = [lead.pk for lead in leads]
        self.products = lead_products(ids)
        self.activities: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        for row in activity_rows(Activity.objects.filter(lead_id__in=ids), ruleset):
            self.activities[row[0]].append(row[1:])
        # The active awards, with their effective points (``scoring.revaluations``).
        self.entries: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
        active = ScoreEntry.objects.filter(
            lead_id__in=ids,
            kind__in=[EntryKind.FIT, EntryKind.ENGAGEMENT],
            reversal_of__isnull=True,
            reversals__isnull=True,
        ).values(*AWARD_FIELDS, "revalued_to")
        for entry in loaded_effective([cast(dict[str, Any], row) for row in active]):
            self.entries[(entry["lead_id"], entry["model_id"])].append(entry)
        self.adjustments: dict[tuple[int, int], float] = {
            (row["lead_id"], row["model_id"]): row["total"]
            for row in ScoreEntry.objects.filter(lead_id__in=ids, kind=EntryKind.MANUAL)
            .values("lead_id", "model_id")
            .annotate(total=Sum("points"))
        }
        self.scores = {
            (s.lead_id, s.model_id): s for s in LeadScore.objects.filter(lead_id__in=ids)
        }
        # The leads with a score in some model: the others are scored for the first time.
        self.scored = {lead_id for (lead_id, _) in self.scores}
        # Which models each lead has entries or a score in, to find the ones it left.
        self.models_of: dict[int, set[int]] = defaultdict(set)
        for lead_id, model_id in (*self.entries, *self.scores):
            self.models_of[lead_id].add(model_id)

    def _score(self, lead: Lead) -> LeadResult:
        scored_before = lead.score if lead.pk in self.scored else None
        result = LeadResult(lead=lead, before=(scored_before, lead.band))
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
        result.primary = primary_model(models)
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
        """The lead's state from its active entries; a surge is added to ``result`` when
        the entries just ``earned`` make one (``BatchWrites._note_surge``)."""
        fit = 0.0
        engagement = 0.0
        last_engaged: datetime | None = None
        recent = 0.0
        surge_since = self.surge_since(model)
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
        predictive = self._predictive(lead.pk, model.id)
        state, _ = state_from(
            model, fit, adjustment, engagement, last_engaged, self.now, predictive
        )
        self._note_surge(lead, model, result, earned=earned, recent=recent)
        return state


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

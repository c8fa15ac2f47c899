"""Real-time scoring in O(new events): a lead whose only change is new activities is
scored from its stored state, not from its history.

The full path (``scoring.engine.Batch``) re-derives every award from all of a lead's
activities and sums its engagement from all its active ledger entries, so one event on a
lead with 100,000 activities of history costs what scoring that history costs. When
nothing but new activities changed, the awards in the ledger still stand (an award
depends only on the matches before it), and the new activities' awards follow from

- the engagement rules of their types, evaluated on the new activities only;
- for a rule with caps or a bonus, how many of the rule's awards the lead holds (index
  ``entry_rule_lead_idx``) and how many matches there were on that UTC day (that day's
  activities of that type, index ``activity_type_lead_idx``);
- the stored ``LeadScore``: its engagement decayed from ``engagement_at`` to now by the
  model's formula, plus the new entries' values; fit and adjustment unchanged.

The entries and rows are written by ``BatchWrites``, as the full path writes them: the
same entries, and only the rows that moved. A lead the fast path cannot score exactly
is left to the full path; each reason is a ``Fallback``, decided before anything is
written, and logged (debug) with the lead.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.db.models import Exists, OuterRef

from leads.models import Activity, Lead

from .batch_writes import BatchWrites, LeadResult, primary_model
from .facts import activity_facts, activity_rows, lead_facts, lead_products
from .lead_history import BatchHistory
from .lead_sets import CHUNK_SIZE, chunks
from .models import (
    EntryKind,
    LeadScore,
    ProfileRescore,
    RescoreJob,
    RescoreStatus,
    ScoreEntry,
)
from .revaluations import AWARD_FIELDS, loaded_effective
from .rules import (
    ActivityFact,
    Award,
    RuleSpec,
    capped_awards,
    fit_awards,
    in_order,
    is_capped,
    rule_matches,
    utc_day,
)
from .ruleset import CompiledModel, Ruleset
from .score_formula import decayed, score_sum
from .state import State, entry_value, state_from

log = logging.getLogger(__name__)

# The fast path carries the stored engagement forward (``e(t) * decay(now - t) + new``)
# where the full path sums every entry decayed on its own; the two differ by float
# rounding, a few units in the last place per event. Where the score or the quadrant
# would flip within this share of the values summed, the full sum decides instead.
RELATIVE_MARGIN = 1e-6


class Fallback(StrEnum):
    """Why a lead is scored by the full path instead."""

    PROFILE_CHANGED = "its fields changed: a profile rescore is pending"
    RESCORE_PENDING = "a rescore of one of its models is queued, running or failed"
    MODELS_CHANGED = "it lacks a score in a model that applies, or has one in a model that does not"
    DECAY_CHANGED = "a model's decay settings changed since its score was summed"
    SCORE_AHEAD = "its stored score is dated after now"
    FIT_CHANGED = "the fit rules give other awards than its ledger holds"
    ALREADY_AWARDED = "a new activity already has ledger entries"
    FUTURE_ACTIVITY = "a new activity is dated after now"
    DUE_ACTIVITY = "its latest scored activity was scored before it occurred"
    WINDOW_MOVED = "a capped rule's recency window let go of activities since it was scored"
    LAST_ENGAGEMENT_LEFT = "its last engagement left a recency window"
    LATE_ACTIVITY = "a new activity is older than a scored one of its type, for a capped rule"
    ROUNDING_EDGE = "its score lies within float rounding of a rounding edge"
    WINDOW_RULE = "a new activity matched a rule that counts matches over a window"


@dataclass
class Candidate:
    """A lead the fast path may score: its models and, per (model, rule), the new
    activities that count for the rule, in order."""

    lead: Lead
    models: list[CompiledModel]
    primary: CompiledModel | None
    matched: dict[tuple[int, int], list[ActivityFact]]


@dataclass
class ModelPlan:
    """What the new activities earn the lead in one model, the awards that left a
    recency window meanwhile (to reverse), and the state that follows."""

    model: CompiledModel
    departed: list[dict[str, Any]]
    awards: list[Award]
    state: State
    recent: float = 0.0


@dataclass
class LeadPlan:
    models: list[ModelPlan]
    primary: CompiledModel | None


def pending_activities(lead_ids: Sequence[int], ruleset: Ruleset) -> dict[int, list[ActivityFact]]:
    """Each lead's activities waiting to be scored, in the order they count in."""
    rows: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in activity_rows(
        Activity.objects.unscored().filter(lead_id__in=lead_ids).order_by(), ruleset
    ):
        rows[row[0]].append(row[1:])
    return {lead_id: in_order(activity_facts(found)) for lead_id, found in rows.items()}


def models_being_rescored() -> set[int]:
    """Models whose ledger may lag their rules: a rescore job of theirs is queued,
    running or failed, and no rescore of the whole model finished after it was asked."""
    superseded = RescoreJob.objects.filter(
        model=OuterRef("model"),
        rule__isnull=True,
        status=RescoreStatus.DONE,
        created_at__gt=OuterRef("created_at"),
    )
    return set(
        RescoreJob.objects.exclude(status=RescoreStatus.DONE)
        .filter(~Exists(superseded))
        .order_by()
        .values_list("model_id", flat=True)
        .distinct()
    )


class IncrementalBatch(BatchWrites):
    """Score leads from their stored state and their new activities.

    Construct it with the locked leads; ``fallbacks`` then holds the leads it cannot
    score exactly (with the reason), and ``run`` scores the others. It decides in
    stages over the whole batch, so that each kind of read is one statement for all the
    leads: what needs no reading, then what the caps and windows need, then the awards
    and states, then the surge windows of the leads that earned points in theirs.
    """

    def __init__(
        self,
        leads: Sequence[Lead],
        ruleset: Ruleset,
        now: datetime,
        pending: Mapping[int, Sequence[ActivityFact]],
        predictive: Mapping[tuple[int, int], int] | None = None,
    ) -> None:
        super().__init__([], ruleset, now, predictive)
        self.pending = pending
        self.fallbacks: list[tuple[Lead, Fallback]] = []
        self.plans: dict[int, LeadPlan] = {}
        ids = [lead.pk for lead in leads]
        self.products = lead_products(ids)
        self.scores = {
            (s.lead_id, s.model_id): s for s in LeadScore.objects.filter(lead_id__in=ids)
        }
        self.profile_changed = set(
            ProfileRescore.objects.filter(lead_id__in=ids).values_list("lead_id", flat=True)
        )
        self.rescoring = models_being_rescored()
        self.awarded = self._leads_with_awarded_activities()
        self.fit_entries = self._fit_entries(ids)
        self.history = BatchHistory(ids, ruleset, now)
        candidates = [c for c in map(self._candidate, leads) if c is not None]
        self.history.load()
        plans = {c.lead.pk: self._plan(c) for c in candidates}
        self.history.load_recent()
        for candidate in candidates:
            plan = plans[candidate.lead.pk]
            if isinstance(plan, Fallback):
                self._fall_back(candidate.lead, plan)
                continue
            for model_plan in plan.models:
                model_plan.recent = self._recent(candidate.lead, model_plan)
            self.plans[candidate.lead.pk] = plan
        self.leads = [lead for lead in leads if lead.pk in self.plans]

    def _fall_back(self, lead: Lead, why: Fallback) -> None:
        log.debug("Lead %s scored in full: %s", lead.pk, why)
        self.fallbacks.append((lead, why))

    # --- Loading, for the whole batch ------------------------------------------------------

    def _leads_with_awarded_activities(self) -> set[int]:
        new_ids = [a.id for activities in self.pending.values() for a in activities]
        found: set[int] = set()
        for chunk in chunks(new_ids, CHUNK_SIZE):
            found.update(
                ScoreEntry.objects.filter(activity_id__in=chunk)
                .order_by()
                .values_list("lead_id", flat=True)
            )
        return found

    def _fit_entries(self, ids: list[int]) -> dict[tuple[int, int], list[tuple[Any, ...]]]:
        """Each (lead, model)'s active fit entries as (rule, activity, bonus, points), read
        through the rules' index: those of every fit rule of the models, active or not (a
        rule a deleted custom field broke still has awards the full path would reverse).
        A revalued award counts its effective points (``revaluations.effective``); the
        revaluations are read with the awards, and are no award themselves."""
        entries: dict[tuple[int, int], list[tuple[Any, ...]]] = defaultdict(list)
        if not self.ruleset.all_fit_rule_ids or not ids:
            return entries
        found = (
            ScoreEntry.objects.filter(
                rule_id__in=sorted(self.ruleset.all_fit_rule_ids),
                lead_id__in=ids,
                reversal_of__isnull=True,
                reversals__isnull=True,
            )
            .order_by()
            .values(*AWARD_FIELDS, "revalued_to")
        )
        for entry in loaded_effective(list(found)):
            entries[(entry["lead_id"], entry["model_id"])].append(
                (entry["rule_id"], entry["activity_id"], entry["bonus"], entry["points"])
            )
        return entries

    # --- Stage 1: what needs no reading; the reads the rest needs are asked for -----------

    def _candidate(self, lead: Lead) -> Candidate | None:
        slugs = self.products.get(lead.pk, [])
        models = self.ruleset.for_lead(slugs)
        primary = primary_model(models)
        why = self._check_stored(lead, models) or self._check_new(lead, models, slugs)
        if why is not None:
            self._fall_back(lead, why)
            return None
        new = self.pending.get(lead.pk, [])
        matched = {}
        for model in models:
            for rule in model.engagement_rules:
                found = rule_matches(
                    rule, [a for a in new if a.type == rule.activity_type], self.now
                )
                if found and is_capped(rule) and self.history.is_late(lead.pk, found[0]):
                    self._fall_back(lead, Fallback.LATE_ACTIVITY)
                    return None
                if found and rule.window_days:
                    # Whether the window is reached reads the matches before it.
                    self._fall_back(lead, Fallback.WINDOW_RULE)
                    return None
                matched[(model.id, rule.id)] = found
                self._ask_history(lead, model, rule, found)
        return Candidate(lead, models, primary, matched)

    def _check_stored(self, lead: Lead, models: Sequence[CompiledModel]) -> Fallback | None:
        """Whether the lead's stored scores are the state the fast path builds on. (A
        primary flag that changed needs no fallback: the writes set it as the full path
        does.)"""
        if lead.pk in self.profile_changed:
            return Fallback.PROFILE_CHANGED
        if any(model.id in self.rescoring for model in models):
            return Fallback.RESCORE_PENDING
        stored = {model_id for (lead_id, model_id) in self.scores if lead_id == lead.pk}
        if stored != {model.id for model in models}:
            return Fallback.MODELS_CHANGED
        for model in models:
            row = self.scores[(lead.pk, model.id)]
            if row.decay_version != model.decay_version:
                return Fallback.DECAY_CHANGED
            if row.engagement_at > self.now:
                return Fallback.SCORE_AHEAD
        return None

    def _check_new(
        self, lead: Lead, models: Sequence[CompiledModel], slugs: list[str]
    ) -> Fallback | None:
        """Whether the new activities, the fit rules and the history allow the fast path."""
        if lead.pk in self.awarded:
            return Fallback.ALREADY_AWARDED
        if any(activity.occurred_at > self.now for activity in self.pending.get(lead.pk, [])):
            return Fallback.FUTURE_ACTIVITY
        facts = lead_facts(lead, slugs)
        for model in models:
            desired = fit_awards(model.fit_rules, facts, self.ruleset.domain_lists, self.now)
            if not self._fit_unchanged(lead, model, desired):
                return Fallback.FIT_CHANGED
        if self.history.is_due(lead.pk):
            return Fallback.DUE_ACTIVITY
        return None

    def _fit_unchanged(self, lead: Lead, model: CompiledModel, desired: list[Award]) -> bool:
        """Whether the ledger's active fit entries are the awards the fit rules give now
        (a company, domain list or custom field may change without a profile rescore),
        and the stored fit is their sum."""
        entries = sorted(self.fit_entries.get((lead.pk, model.id), []))
        wanted = sorted((a.rule_id, a.activity_id, a.bonus, a.points) for a in desired)
        row = self.scores[(lead.pk, model.id)]
        return entries == wanted and row.fit == sum(entry[3] for entry in entries)

    def _ask_history(
        self, lead: Lead, model: CompiledModel, rule: RuleSpec, matched: list[ActivityFact]
    ) -> None:
        """Ask for what deciding ``rule`` needs: for a capped rule that matched, its
        awards so far and the days' matches; for a recency rule, what left its window (a
        capped one's activities, an uncapped one's awards, which the full path reverses)."""
        if matched and is_capped(rule):
            self.history.want_count(lead.pk, rule)
            for day in {utc_day(a.occurred_at) for a in matched}:
                self.history.want_day(lead.pk, rule, day)
        if rule.recency_days and is_capped(rule):
            self.history.want_window(lead.pk, rule)
        elif rule.recency_days:
            self.history.want_departed(lead.pk, model.id, rule)

    # --- Stage 2: the awards and states, once the history is read -------------------------

    def _plan(self, candidate: Candidate) -> LeadPlan | Fallback:
        lead = candidate.lead
        plans = []
        for model in candidate.models:
            awards: list[Award] = []
            for rule in model.engagement_rules:
                if rule.recency_days and self.history.window_let_go(lead.pk, rule):
                    return Fallback.WINDOW_MOVED
                matched = candidate.matched[(model.id, rule.id)]
                if not matched:
                    continue
                days = {utc_day(a.occurred_at) for a in matched}
                awards += capped_awards(
                    rule,
                    matched,
                    counted=self.history.counted(lead.pk, rule),
                    per_day=self.history.per_day(lead.pk, rule, days),
                )
            plan = self._model_plan(lead, model, awards)
            if isinstance(plan, Fallback):
                return plan
            plans.append(plan)
        return LeadPlan(plans, candidate.primary)

    def _model_plan(
        self, lead: Lead, model: CompiledModel, awards: list[Award]
    ) -> ModelPlan | Fallback:
        """The state in ``model``: the stored one carried to now, less the awards that
        left a recency window, plus the new awards."""
        departed = self.history.departed_awards(lead.pk, model.id)
        row = self.scores[(lead.pk, model.id)]
        half_life = model.half_life_days
        carried = decayed(row.engagement, row.engagement_at, self.now, half_life)
        engagement = carried
        spread = abs(carried)
        last_engaged = row.last_engaged_at
        # When the last engagement left a window and no new award is later still, the
        # full path finds the last engagement among the entries that stay.
        if (
            departed
            and (last_engaged is None or departed[-1]["at"] >= last_engaged)
            and not any(award.at > departed[-1]["at"] for award in awards)
        ):
            return Fallback.LAST_ENGAGEMENT_LEFT
        for entry in departed:
            value = entry_value(entry, self.now, half_life)
            engagement -= value
            spread += abs(value)
        for award in awards:
            value = entry_value(
                {"kind": EntryKind.ENGAGEMENT, "points": award.points, "at": award.at},
                self.now,
                half_life,
            )
            engagement += value
            spread += abs(value)
            if last_engaged is None or award.at > last_engaged:
                last_engaged = award.at
        state, effective = state_from(
            model,
            row.fit,
            row.adjustment,
            engagement,
            last_engaged,
            self.now,
            self._predictive(lead.pk, model.id),
        )
        # Without decay every value is a whole number of points, summed exactly.
        total = score_sum(state.effective_fit, effective, model.thresholds)
        if half_life and on_an_edge(total, effective, model, spread):
            return Fallback.ROUNDING_EDGE
        since = self.surge_since(model)
        if model.surge_points and any(a.at.timestamp() >= since for a in awards):
            # A second early: the window's edge is decided on timestamps, as in the full
            # path. Only points earned within the window can make a surge.
            start = self.now - timedelta(hours=model.surge_hours, seconds=1)
            self.history.want_recent(lead.pk, model.id, start)
        return ModelPlan(model, departed, awards, state)

    # --- Stage 3: the surge windows ---------------------------------------------------------

    def _recent(self, lead: Lead, plan: ModelPlan) -> float:
        """The positive engagement points dated within the model's surge window once the
        new awards are in and the departed ones out (0 when none of the new is within)."""
        since = self.surge_since(plan.model)
        within = [a for a in plan.awards if a.at.timestamp() >= since]
        if not (plan.model.surge_points and within):
            return 0.0
        gone = {entry["id"] for entry in plan.departed}
        stored = sum(
            points
            for pk, points, at in self.history.recent_points(lead.pk, plan.model.id)
            if pk not in gone and at.timestamp() >= since
        )
        return stored + sum(a.points for a in within if a.points > 0)

    # --- Writing ------------------------------------------------------------------------------

    def _score(self, lead: Lead) -> LeadResult:
        plan = self.plans[lead.pk]
        result = LeadResult(lead=lead, before=(lead.score, lead.band), primary=plan.primary)
        for model_plan in plan.models:
            model = model_plan.model
            for entry in model_plan.departed:
                self._reverse(lead, model.id, entry, "No longer applies")
            earned = [self._append(lead, model, award) for award in model_plan.awards]
            result.states[model.id] = model_plan.state
            self._note_surge(lead, model, result, earned=earned, recent=model_plan.recent)
        return result


def on_an_edge(total: float, effective: float, model: CompiledModel, spread: float) -> bool:
    """Whether float rounding of the engagement could flip the score (``total`` rounds
    half up) or the quadrant (``effective`` against the engaged threshold)."""
    margin = RELATIVE_MARGIN * max(1.0, spread)
    half = total + 0.5
    return abs(half - round(half)) < margin or abs(effective - model.thresholds.engaged) < margin

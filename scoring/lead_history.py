"""What the fast path of real-time scoring (``scoring.incremental``) reads of the history
of a batch of leads. Each read goes through an index and no further than its question
needs, so none grows with the number of activities a lead has; and each is one statement
for the whole batch (the drain scores up to a hundred leads at a time), asked for first
and loaded once:

- the latest scored activity of each lead (timeline index), and of one type for the
  rare new activity older than that (``activity_type_lead_idx``);
- one UTC day's activities of one type, for a rule's per-day cap and bonus;
- how many awards a rule with a per-lead cap gave (``entry_rule_lead_idx``; never more
  than the cap are active);
- what a recency window let go since the lead was last scored, and the positive points
  dated within a surge window (``entry_lead_ledger_idx``).

"Since the lead was last scored" starts at the latest scored activity's scoring time:
every scoring that marked an activity ran no later than the lead's last scoring, so a
window checked from that moment on covers all the time since.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce
from typing import Any, NamedTuple

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from leads.models import Activity, Lead

from .facts import activity_facts, activity_rows
from .models import EntryKind, ScoreEntry
from .revaluations import AWARD_FIELDS, stored_effective
from .rules import ActivityFact, RuleSpec, rule_matches, utc_day
from .ruleset import Ruleset

# Conditions OR-ed into one statement: each is an index range, and a statement with a
# few hundred of them still plans in well under a millisecond.
TERMS_PER_QUERY = 200


class Latest(NamedTuple):
    occurred_at: datetime
    id: int
    scored_at: datetime


def _latest(row: tuple[Any, ...] | None) -> Latest | None:
    if row is None:
        return None
    occurred_at, pk, scored_at = row
    return Latest(occurred_at, pk, scored_at)


def _active(entries: QuerySet[ScoreEntry]) -> QuerySet[ScoreEntry]:
    """The active awards: neither reversals, reversed nor revaluations."""
    return entries.filter(
        reversal_of__isnull=True, reversals__isnull=True, revalued_to__isnull=True
    )


def _any_of(terms: Iterable[Q]) -> Iterable[Q]:
    """The terms OR-ed together, ``TERMS_PER_QUERY`` at a time."""
    terms = list(terms)
    for start in range(0, len(terms), TERMS_PER_QUERY):
        yield reduce(operator.or_, terms[start : start + TERMS_PER_QUERY])


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class BatchHistory:
    """The histories of a batch of leads, read for the fast path at ``now``.

    The latest scored activities are read on construction. The rest is asked for with
    the ``want_*`` methods, read by ``load`` (and ``load_recent``) in one statement per
    kind, and answered by the methods of the same names without ``want_``.
    """

    def __init__(self, lead_ids: Sequence[int], ruleset: Ruleset, now: datetime) -> None:
        self.ruleset = ruleset
        self.now = now
        self.scored = Activity.objects.filter(scored_at__isnull=False)
        self.latest = self._load_latest(lead_ids)
        self._latest_of_type: dict[tuple[int, str], Latest | None] = {}
        self._days: dict[tuple[int, str, date], list[ActivityFact]] = {}
        self._counts: dict[tuple[int, int], int] = {}
        self._windows: dict[tuple[int, int], RuleSpec] = {}
        self._gone: set[tuple[int, int]] = set()
        self._departures: dict[tuple[int, int, int], RuleSpec] = {}
        self._departed: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
        self._surges: dict[tuple[int, int], datetime] = {}
        self._recent: dict[tuple[int, int], list[tuple[int, float, datetime]]] = defaultdict(list)

    def _load_latest(self, lead_ids: Sequence[int]) -> dict[int, Latest]:
        newest = (
            self.scored.filter(lead_id=OuterRef("pk"))
            .order_by("-occurred_at", "-id")
            .values("pk")[:1]
        )
        ids = Lead.objects.filter(pk__in=lead_ids).annotate(latest=Subquery(newest))
        rows = self.scored.filter(pk__in=ids.values("latest")).values_list(
            "lead_id", "occurred_at", "id", "scored_at"
        )
        return {
            lead_id: Latest(at, pk, scored_at) for lead_id, at, pk, scored_at in rows if scored_at
        }

    # --- Questions answered at once ------------------------------------------------------

    def is_due(self, lead_id: int) -> bool:
        """Whether the lead's latest scored activity was scored before it occurred: scoring
        left it (and maybe others before it) for later, and its points may be due now."""
        latest = self.latest.get(lead_id)
        return latest is not None and latest.occurred_at > latest.scored_at

    def is_late(self, lead_id: int, first: ActivityFact) -> bool:
        """Whether a new activity comes, in the order activities count in, before one of
        its type already scored: the caps and bonus of the matches after it would change.
        Read only for a new activity older than the lead's latest scored one."""
        key = (first.occurred_at, first.id)
        latest = self.latest.get(lead_id)
        if latest is None or key > (latest.occurred_at, latest.id):
            return False
        if (lead_id, first.type) not in self._latest_of_type:
            row = (
                self.scored.filter(lead_id=lead_id, type=first.type)
                .order_by("-occurred_at", "-id")
                .values_list("occurred_at", "id", "scored_at")
                .first()
            )
            self._latest_of_type[(lead_id, first.type)] = _latest(row)
        of_type = self._latest_of_type[(lead_id, first.type)]
        return of_type is not None and key < (of_type.occurred_at, of_type.id)

    # --- Asked for, loaded, answered --------------------------------------------------------

    def want_day(self, lead_id: int, rule: RuleSpec, day: date) -> None:
        if rule.max_per_day or (rule.bonus_count and rule.bonus_points):
            self._days.setdefault((lead_id, rule.activity_type, day), [])

    def want_count(self, lead_id: int, rule: RuleSpec) -> None:
        if rule.max_per_lead:
            self._counts.setdefault((lead_id, rule.id), 0)

    def want_window(self, lead_id: int, rule: RuleSpec) -> None:
        """Whether activities of a recency rule's type left its window since the lead was
        last scored (``window_let_go``)."""
        if rule.recency_days and lead_id in self.latest:
            self._windows[(lead_id, rule.id)] = rule

    def want_departed(self, lead_id: int, model_id: int, rule: RuleSpec) -> None:
        """A recency rule's active awards that left its window since the lead was last
        scored (``departed_awards``; an award is dated when its activity occurred)."""
        if rule.recency_days and lead_id in self.latest:
            self._departures[(lead_id, model_id, rule.id)] = rule

    def load(self) -> None:
        self._load_days()
        self._load_counts()
        self._load_windows()
        self._load_departed()

    def _window(self, lead_id: int, rule: RuleSpec) -> tuple[datetime, datetime]:
        span = timedelta(days=rule.recency_days or 0)
        return self.latest[lead_id].scored_at - span, self.now - span

    def _load_days(self) -> None:
        terms = (
            Q(lead_id=lead_id, type=type_)
            & Q(occurred_at__gte=_day_start(day), occurred_at__lt=_day_start(day) + timedelta(1))
            for lead_id, type_, day in self._days
        )
        for where in _any_of(terms):
            for row in activity_rows(self.scored.filter(where).order_by(), self.ruleset):
                lead_id, fact = row[0], activity_facts([row[1:]])[0]
                self._days[(lead_id, fact.type, utc_day(fact.occurred_at))].append(fact)

    def _load_counts(self) -> None:
        terms = (Q(lead_id=lead_id, rule_id=rule_id) for lead_id, rule_id in self._counts)
        for where in _any_of(terms):
            counted = (
                _active(ScoreEntry.objects.filter(where, bonus=False))
                .order_by()
                .values_list("lead_id", "rule_id")
                .annotate(n=Count("id"))
            )
            for lead_id, rule_id, n in counted:
                self._counts[(lead_id, rule_id)] = n

    def _load_windows(self) -> None:
        terms = []
        for (lead_id, _), rule in self._windows.items():
            start, end = self._window(lead_id, rule)
            terms.append(
                Q(lead_id=lead_id, type=rule.activity_type, occurred_at__gte=start)
                & Q(occurred_at__lt=end)
            )
        found = defaultdict(list)
        for where in _any_of(terms):
            for lead_id, type_, at in (
                self.scored.filter(where).order_by().values_list("lead_id", "type", "occurred_at")
            ):
                found[(lead_id, type_)].append(at)
        for (lead_id, rule_id), rule in self._windows.items():
            start, end = self._window(lead_id, rule)
            if any(start <= at < end for at in found[(lead_id, rule.activity_type)]):
                self._gone.add((lead_id, rule_id))

    def _load_departed(self) -> None:
        terms = []
        for (lead_id, model_id, rule_id), rule in self._departures.items():
            start, end = self._window(lead_id, rule)
            terms.append(
                Q(lead_id=lead_id, model_id=model_id, rule_id=rule_id)
                & Q(at__gte=start, at__lt=end)
            )
        departed: list[dict[str, Any]] = []
        for where in _any_of(terms):
            departed += _active(ScoreEntry.objects.filter(where)).order_by().values(*AWARD_FIELDS)
        # Reversed at their effective points (``scoring.revaluations``).
        for entry in stored_effective(departed):
            self._departed[(entry["lead_id"], entry["model_id"])].append(entry)

    def per_day(self, lead_id: int, rule: RuleSpec, days: Iterable[date]) -> dict[date, int]:
        """How many scored activities matched the rule on each of ``days`` (asked for)."""
        if not (rule.max_per_day or (rule.bonus_count and rule.bonus_points)):
            return {}
        return {
            day: len(rule_matches(rule, self._days[(lead_id, rule.activity_type, day)], self.now))
            for day in days
        }

    def counted(self, lead_id: int, rule: RuleSpec) -> int:
        """How many awards (bonuses aside) the rule gave the lead (asked for)."""
        return self._counts.get((lead_id, rule.id), 0)

    def window_let_go(self, lead_id: int, rule: RuleSpec) -> bool:
        return (lead_id, rule.id) in self._gone

    def departed_awards(self, lead_id: int, model_id: int) -> list[dict[str, Any]]:
        """The model's departed awards (asked for rule by rule), oldest first."""
        return sorted(self._departed.get((lead_id, model_id), []), key=lambda e: (e["at"], e["id"]))

    # --- The surge window, asked for once the new awards are known -----------------------

    def want_recent(self, lead_id: int, model_id: int, since: datetime) -> None:
        self._surges[(lead_id, model_id)] = since

    def load_recent(self) -> None:
        terms = (
            Q(lead_id=lead_id, model_id=model_id, at__gte=since)
            for (lead_id, model_id), since in self._surges.items()
        )
        for where in _any_of(terms):
            entries = _active(
                ScoreEntry.objects.filter(where, kind=EntryKind.ENGAGEMENT, points__gt=0)
            )
            for lead_id, model_id, pk, points, at in entries.order_by().values_list(
                "lead_id", "model_id", "id", "points", "at"
            ):
                self._recent[(lead_id, model_id)].append((pk, points, at))

    def recent_points(self, lead_id: int, model_id: int) -> list[tuple[int, float, datetime]]:
        """(entry, points, at) of the active positive engagement entries from the time
        asked for on."""
        return self._recent.get((lead_id, model_id), [])

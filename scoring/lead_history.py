"""What the fast path of real-time scoring (``scoring.incremental``) reads of one lead's
history: each read goes through an index and no further than its question needs, so
none of them grows with the number of activities the lead has.

- the latest scored activity, of the lead (timeline index) or of one type
  (``activity_type_lead_idx``);
- one UTC day's activities of one type, for a rule's per-day cap and bonus;
- how many awards a rule with a per-lead cap gave, counted up to the cap
  (``entry_rule_lead_idx``);
- what a recency window let go since the lead was last scored, and the positive points
  dated within a surge window (``entry_lead_model_at_pts_idx``).

"Since the lead was last scored" is bounded by the latest scored activity's scoring
time: every scoring that marked an activity ran no later than the last scoring of the
lead, so a window checked from that moment on covers the time since the last scoring.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple, cast

from django.db.models import QuerySet

from leads.models import Activity

from .facts import activity_facts, activity_rows
from .models import EntryKind, ScoreEntry
from .rules import ActivityFact, RuleSpec, rule_matches
from .ruleset import Ruleset

ENTRY_FIELDS = ("id", "rule_id", "activity_id", "bonus", "kind", "points", "at")


class Latest(NamedTuple):
    occurred_at: datetime
    id: int
    scored_at: datetime


def _latest(activities: QuerySet[Activity]) -> Latest | None:
    row = (
        activities.order_by("-occurred_at", "-id")
        .values_list("occurred_at", "id", "scored_at")
        .first()
    )
    if row is None:
        return None
    occurred_at, pk, scored_at = row
    assert scored_at is not None  # only scored activities are asked about
    return Latest(occurred_at, pk, scored_at)


def _active(entries: QuerySet[ScoreEntry]) -> QuerySet[ScoreEntry]:
    return entries.filter(reversal_of__isnull=True, reversal__isnull=True)


class LeadHistory:
    """One lead's scored activities and ledger, read for the fast path at ``now``."""

    def __init__(self, lead_id: int, ruleset: Ruleset, now: datetime) -> None:
        self.lead_id = lead_id
        self.ruleset = ruleset
        self.now = now
        self.scored = Activity.objects.filter(lead_id=lead_id, scored_at__isnull=False)
        self.latest = _latest(self.scored)
        self._latest_of_type: dict[str, Latest | None] = {}
        self._days: dict[tuple[str, date], list[ActivityFact]] = {}

    def is_due(self) -> bool:
        """Whether the latest scored activity was scored before it occurred: scoring
        left it (and maybe others before it) for later, and its points may be due now."""
        return self.latest is not None and self.latest.occurred_at > self.latest.scored_at

    def is_late(self, first: ActivityFact) -> bool:
        """Whether a new activity comes, in the order activities count in, before one of
        its type already scored: the caps and bonus of the matches after it would change."""
        key = (first.occurred_at, first.id)
        if self.latest is None or key > (self.latest.occurred_at, self.latest.id):
            return False
        if first.type not in self._latest_of_type:
            self._latest_of_type[first.type] = _latest(self.scored.filter(type=first.type))
        latest = self._latest_of_type[first.type]
        return latest is not None and key < (latest.occurred_at, latest.id)

    def counted(self, rule: RuleSpec) -> int:
        """How many awards (bonuses aside) the rule gave the lead, counted up to its cap."""
        if not rule.max_per_lead:
            return 0
        awards = _active(ScoreEntry.objects.filter(rule_id=rule.id, lead_id=self.lead_id))
        return awards.filter(bonus=False)[: rule.max_per_lead].count()

    def per_day(self, rule: RuleSpec, days: set[date]) -> dict[date, int]:
        """How many scored activities matched the rule on each of ``days``."""
        if not (rule.max_per_day or (rule.bonus_count and rule.bonus_points)):
            return {}
        return {
            day: len(rule_matches(rule, self._day(rule.activity_type, day), self.now))
            for day in days
        }

    def _day(self, type_: str, day: date) -> list[ActivityFact]:
        if (type_, day) not in self._days:
            start = datetime.combine(day, time.min, tzinfo=UTC)
            rows = activity_rows(
                self.scored.filter(
                    type=type_, occurred_at__gte=start, occurred_at__lt=start + timedelta(days=1)
                ).order_by(),
                self.ruleset,
            )
            self._days[(type_, day)] = activity_facts(row[1:] for row in rows)
        return self._days[(type_, day)]

    def window_let_go(self, rule: RuleSpec) -> bool:
        """Whether activities of the rule's type left its recency window since the lead
        was last scored."""
        if not rule.recency_days or self.latest is None:
            return False
        window = timedelta(days=rule.recency_days)
        return self.scored.filter(
            type=rule.activity_type,
            occurred_at__gte=self.latest.scored_at - window,
            occurred_at__lt=self.now - window,
        ).exists()

    def departed_awards(self, rule: RuleSpec, model_id: int) -> list[dict[str, Any]]:
        """The rule's active awards that left its recency window since the lead was last
        scored (an award is dated when its activity occurred), oldest first."""
        if not rule.recency_days or self.latest is None:
            return []
        window = timedelta(days=rule.recency_days)
        entries = _active(
            ScoreEntry.objects.filter(
                lead_id=self.lead_id,
                model_id=model_id,
                at__gte=self.latest.scored_at - window,
                at__lt=self.now - window,
                rule_id=rule.id,
            )
        )
        return [cast(dict[str, Any], entry) for entry in entries.values(*ENTRY_FIELDS)]

    def recent_points(self, model_id: int, since: datetime) -> list[tuple[int, float, datetime]]:
        """(entry, points, at) of the active positive engagement entries dated from
        ``since`` on."""
        entries = _active(
            ScoreEntry.objects.filter(
                lead_id=self.lead_id,
                model_id=model_id,
                kind=EntryKind.ENGAGEMENT,
                at__gte=since,
                points__gt=0,
            )
        )
        return list(entries.values_list("id", "points", "at"))

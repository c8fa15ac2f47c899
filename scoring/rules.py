"""Rules as plain values and the awards they give: which fit rules a lead's facts satisfy
and which activities earn engagement points, with the caps, bonus and recency window.

Nothing here touches the database, so every operator, cap, bonus and window is tested
on plain values. ``scoring.facts`` feeds these functions with a lead's rows and
``scoring.engine`` writes their answers to the ledger; the conditions are
``scoring.conditions``, the score formula ``scoring.score_formula``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .conditions import condition_matches
from .regex_dialects import compile_regex
from .rule_fields import TEXT

FIT, ENGAGEMENT = "fit", "engagement"


@dataclass(frozen=True)
class RuleSpec:
    """One rule of a scoring model, detached from the database."""

    id: int
    kind: str
    points: int
    description: str
    # Fit rules.
    field: str = ""
    operator: str = ""
    value: str = ""
    value_to: str = ""
    field_kind: str = TEXT
    # Engagement rules.
    activity_type: str = ""
    target: str = ""  # "", "url" or "property:<name>"
    match: str = "contains"
    pattern: str = ""
    min_duration_seconds: int | None = None
    max_per_lead: int | None = None
    max_per_day: int | None = None
    bonus_count: int | None = None
    bonus_points: int = 0
    recency_days: int | None = None


@dataclass(frozen=True)
class ActivityFact:
    id: int
    type: str
    occurred_at: datetime
    url: str = ""
    duration_seconds: int | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Award:
    """Points a rule earns: for a fit rule once, for an engagement rule per activity."""

    rule_id: int
    activity_id: int | None
    points: float
    at: datetime
    bonus: bool = False

    @property
    def key(self) -> tuple[int, int | None, bool]:
        return (self.rule_id, self.activity_id, self.bonus)


def fit_matches(
    rule: RuleSpec, facts: Mapping[str, Any], domain_lists: Mapping[str, frozenset[str]]
) -> bool:
    return condition_matches(
        rule.field_kind,
        rule.operator,
        rule.value,
        rule.value_to,
        facts.get(rule.field),
        domain_lists,
    )


def fit_awards(
    rules: Sequence[RuleSpec],
    facts: Mapping[str, Any],
    domain_lists: Mapping[str, frozenset[str]],
    at: datetime,
) -> list[Award]:
    return [
        Award(rule.id, None, float(rule.points), at)
        for rule in rules
        if rule.kind == FIT and fit_matches(rule, facts, domain_lists)
    ]


# Activities of these types that carry ``properties["scored"] = False`` are kept on the
# timeline but earn nothing: email opens and clicks made by a link scanner or a mail
# client's prefetch, not by the reader (nurturing marks them).
MACHINE_MARKED_TYPES = frozenset({"email_open", "email_click"})


def activity_matches(rule: RuleSpec, activity: ActivityFact) -> bool:
    if activity.type != rule.activity_type:
        return False
    if activity.type in MACHINE_MARKED_TYPES and activity.properties.get("scored") is False:
        return False
    if rule.min_duration_seconds and (activity.duration_seconds or 0) < rule.min_duration_seconds:
        return False
    if not rule.target:
        return True
    if rule.target == "url":
        subject = activity.url or ""
    else:
        raw = activity.properties.get(rule.target.removeprefix("property:"))
        subject = "" if raw is None else str(raw)
    subject = subject.lower()
    if rule.match == "equals":
        return subject == rule.pattern.lower()
    if rule.match == "regex":
        return compile_regex(rule.pattern).search(subject) is not None
    return rule.pattern.lower() in subject


def engagement_awards(
    rules: Sequence[RuleSpec], activities: Iterable[ActivityFact], now: datetime
) -> list[Award]:
    """Every engagement award the activities earn at ``now``.

    Activities count in the order they occurred (ties by id), so the answer does
    not depend on the order they arrived in. Per rule: activities outside the
    recency window or in the future are ignored; at most ``max_per_day`` count on
    one UTC day and at most ``max_per_lead`` in all; on a day with at least
    ``bonus_count`` matches the activity that reaches the count also earns
    ``bonus_points`` (once per day, not subject to the caps).
    """
    # In order, and by type: a rule only looks at the activities of its type.
    by_type: dict[str, list[ActivityFact]] = defaultdict(list)
    for activity in in_order(activities):
        by_type[activity.type].append(activity)
    awards: list[Award] = []
    for rule in rules:
        if rule.kind != ENGAGEMENT:
            continue
        matched = rule_matches(rule, by_type.get(rule.activity_type, ()), now)
        awards.extend(capped_awards(rule, matched))
    return awards


def in_order(activities: Iterable[ActivityFact]) -> list[ActivityFact]:
    """The order activities count in: when they occurred, ties by id."""
    return sorted(activities, key=lambda a: (a.occurred_at, a.id))


def rule_matches(
    rule: RuleSpec, activities: Iterable[ActivityFact], now: datetime
) -> list[ActivityFact]:
    """The activities that count for ``rule`` at ``now``, in the order given: matching,
    not in the future, and within the rule's recency window."""
    oldest = now - timedelta(days=rule.recency_days) if rule.recency_days else None
    return [
        a
        for a in activities
        if a.occurred_at <= now
        and (oldest is None or a.occurred_at >= oldest)
        and activity_matches(rule, a)
    ]


def utc_day(at: datetime) -> date:
    """The UTC day an activity counts on for the per-day cap and the bonus."""
    return (at.astimezone(UTC) if at.tzinfo else at).date()


def capped_awards(
    rule: RuleSpec,
    matched: Sequence[ActivityFact],
    *,
    counted: int = 0,
    per_day: Mapping[date, int] | None = None,
) -> list[Award]:
    """The awards the ``matched`` activities (in order) earn under the rule's caps and bonus.

    They may follow earlier matches whose awards stand: ``counted`` of those earned
    the rule's points (bonuses not included) and ``per_day`` tells how many matched
    on each UTC day. An activity's award depends only on the matches before it, so
    awards given match by match equal the awards given to all matches at once.
    """
    awards: list[Award] = []
    days: dict[date, int] = defaultdict(int, per_day or {})
    total = counted
    for activity in matched:
        day = utc_day(activity.occurred_at)
        days[day] += 1
        if rule.bonus_count and rule.bonus_points and days[day] == rule.bonus_count:
            awards.append(
                Award(rule.id, activity.id, float(rule.bonus_points), activity.occurred_at, True)
            )
        if rule.max_per_day and days[day] > rule.max_per_day:
            continue
        if rule.max_per_lead and total >= rule.max_per_lead:
            continue
        total += 1
        awards.append(Award(rule.id, activity.id, float(rule.points), activity.occurred_at))
    return awards

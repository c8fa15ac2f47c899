"""Rules as plain values and the awards they give: which fit rules a lead's facts satisfy
and which activities earn engagement points, with the caps, bonus and recency window.

Nothing here touches the database, so every operator, cap, bonus and window is tested
on plain values. ``scoring.facts`` feeds these functions with a lead's rows and
``scoring.engine`` writes their answers to the ledger; the conditions are
``scoring.conditions``, the score formula ``scoring.score_formula``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .conditions import condition_matches, to_number
from .regex_dialects import compile_regex
from .rule_fields import TEXT

FIT, ENGAGEMENT = "fit", "engagement"


@dataclass(frozen=True)
class Condition:
    """One more test of a fit rule, on a field of its own (``RuleSpec.conditions``)."""

    field: str
    operator: str
    value: str = ""
    value_to: str = ""
    field_kind: str = TEXT


ALL, ANY = "all", "any"


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
    # More tests, joined with the first: all of them must hold, or any one of them.
    conditions: tuple[Condition, ...] = ()
    join: str = ALL
    # Points for each ``per_unit`` of the (number) field, instead of once, at most
    # ``points_cap`` of them (in absolute value).
    per_unit: float | None = None
    points_cap: int | None = None
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
    # A match counts only once the rule's matches of the ``window_days`` up to it
    # (itself and any at the same instant included) number ``window_min`` or more, or,
    # measured in seconds, last that many seconds together.
    window_days: int | None = None
    window_min: int | None = None
    window_measure: str = "count"

    @property
    def tests(self) -> tuple[Condition, ...]:
        """A fit rule's tests: its own field's, then its other conditions."""
        own = Condition(self.field, self.operator, self.value, self.value_to, self.field_kind)
        return (own, *self.conditions)


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


def is_capped(rule: RuleSpec) -> bool:
    """Whether a rule's award for a match depends on the matches before it: a cap, a
    bonus, or a window (with a recency limit, a match that leaves it can take back the
    award of a later one, which only the full path reverses)."""
    return bool(
        rule.max_per_day
        or rule.max_per_lead
        or (rule.bonus_count and rule.bonus_points)
        or rule.window_days
    )


def fit_matches(
    rule: RuleSpec, facts: Mapping[str, Any], domain_lists: Mapping[str, frozenset[str]]
) -> bool:
    """Whether the rule's first test and its other conditions hold, joined by ``join``."""
    tests = (
        condition_matches(
            test.field_kind,
            test.operator,
            test.value,
            test.value_to,
            facts.get(test.field),
            domain_lists,
        )
        for test in rule.tests
    )
    return any(tests) if rule.join == ANY else all(tests)


def fit_points(rule: RuleSpec, facts: Mapping[str, Any]) -> float:
    """What a matching fit rule gives: its points, or its points per unit of its field.

    Per unit: ``points * floor(value / per_unit)``, at most ``points_cap`` away from
    zero; a missing or negative value counts no unit. The set-based rescore computes
    the same in ``scoring.sql.fit_points_sql``.
    """
    if rule.per_unit is None:
        points = float(rule.points)
    else:
        number = to_number(facts.get(rule.field))
        units = math.floor(number / rule.per_unit) if number is not None else 0
        points = float(rule.points * max(units, 0))
    if rule.points_cap is not None:
        points = max(-float(rule.points_cap), min(float(rule.points_cap), points))
    return points


def fit_awards(
    rules: Sequence[RuleSpec],
    facts: Mapping[str, Any],
    domain_lists: Mapping[str, frozenset[str]],
    at: datetime,
) -> list[Award]:
    awards = []
    for rule in rules:
        if rule.kind != FIT or not fit_matches(rule, facts, domain_lists):
            continue
        points = fit_points(rule, facts)
        if points:
            awards.append(Award(rule.id, None, points, at))
    return awards


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
        if rule.window_days:
            matched = window_matches(rule, matched)
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


WINDOW_SECONDS = "seconds"


def window_matches(rule: RuleSpec, matched: Sequence[ActivityFact]) -> list[ActivityFact]:
    """The ``matched`` activities (in order) at which the rule's window is reached: its
    matches from ``window_days`` before the activity up to the activity's instant
    (both ends included) number at least ``window_min``, or, when the window is
    measured in seconds, their durations add up to at least that. The set-based
    rescore computes the same with a ``RANGE`` window frame (``scoring.bulk_awards``)."""
    span = timedelta(days=rule.window_days or 0)
    needed = rule.window_min or 0
    seconds = rule.window_measure == WINDOW_SECONDS
    # Running totals and two edges that only move forward: linear in the matches.
    totals = [0]
    for m in matched:
        totals.append(totals[-1] + ((m.duration_seconds or 0) if seconds else 1))
    kept, first, last = [], 0, 0
    for activity in matched:
        while matched[first].occurred_at < activity.occurred_at - span:
            first += 1
        while last < len(matched) and matched[last].occurred_at <= activity.occurred_at:
            last += 1
        if totals[last] - totals[first] >= needed:
            kept.append(activity)
    return kept


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

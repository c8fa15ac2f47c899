"""Pure scoring math: which rules a lead and its activities earn, and what the points are worth.

Nothing here touches the database, so every operator, cap, bonus, window and decay
formula is tested on plain values. ``scoring.engine`` feeds these functions with
rows and writes their answers to the ledger.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

# --- Fields a fit rule can test -------------------------------------------------

TEXT, NUMBER, LIST, BOOL = "text", "number", "list", "bool"


@dataclass(frozen=True)
class FieldSpec:
    label: str
    kind: str


FIT_FIELDS: dict[str, FieldSpec] = {
    "first_name": FieldSpec("first name", TEXT),
    "last_name": FieldSpec("last name", TEXT),
    "email": FieldSpec("email", TEXT),
    "email_domain": FieldSpec("email domain", TEXT),
    "phone": FieldSpec("phone", TEXT),
    "job_title": FieldSpec("job title", TEXT),
    "seniority": FieldSpec("seniority", TEXT),
    "department": FieldSpec("department", TEXT),
    "country": FieldSpec("country", TEXT),
    "region": FieldSpec("region", TEXT),
    "city": FieldSpec("city", TEXT),
    "source": FieldSpec("source", TEXT),
    "campaign": FieldSpec("campaign", TEXT),
    "utm_source": FieldSpec("UTM source", TEXT),
    "utm_medium": FieldSpec("UTM medium", TEXT),
    "utm_campaign": FieldSpec("UTM campaign", TEXT),
    "budget": FieldSpec("budget", TEXT),
    "authority": FieldSpec("authority", TEXT),
    "need": FieldSpec("need", TEXT),
    "timeline": FieldSpec("timeline", TEXT),
    "product_interests": FieldSpec("product interests", LIST),
    "company.name": FieldSpec("company name", TEXT),
    "company.domain": FieldSpec("company domain", TEXT),
    "company.industry": FieldSpec("industry", TEXT),
    "company.employee_count": FieldSpec("company size", NUMBER),
    "company.annual_revenue": FieldSpec("annual revenue", NUMBER),
    "company.country": FieldSpec("company country", TEXT),
    "missing_key_fields": FieldSpec("number of missing key fields", NUMBER),
    "looks_like_spam": FieldSpec("looks like spam", BOOL),
}
CUSTOM_PREFIX = "custom."

# --- Operators ------------------------------------------------------------------

OPERATORS: dict[str, str] = {
    "equals": "is",
    "not_equals": "is not",
    "in": "is one of",
    "not_in": "is none of",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "regex": "matches",
    "gt": "is more than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
    "between": "is between",
    "is_empty": "is empty",
    "not_empty": "is not empty",
    "in_domain_list": "is on the list of",
    "is_true": "is true",
    "is_false": "is false",
}
OPERATORS_BY_KIND: dict[str, frozenset[str]] = {
    TEXT: frozenset(
        {
            "equals",
            "not_equals",
            "in",
            "not_in",
            "contains",
            "not_contains",
            "starts_with",
            "ends_with",
            "regex",
            "is_empty",
            "not_empty",
            "in_domain_list",
        }
    ),
    NUMBER: frozenset(
        {"equals", "not_equals", "gt", "gte", "lt", "lte", "between", "is_empty", "not_empty"}
    ),
    LIST: frozenset({"contains", "not_contains", "in", "is_empty", "not_empty"}),
    BOOL: frozenset({"is_true", "is_false"}),
}
NO_VALUE_OPERATORS = frozenset({"is_empty", "not_empty", "is_true", "is_false"})
ACTIVITY_OPERATORS = ("contains", "equals", "regex")


class RuleError(ValueError):
    """A rule that cannot be evaluated; the message is meant for the marketer.

    ``field`` names the rule's field at fault where one is, for forms and the API.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def field_kind(field_name: str, custom_kinds: Mapping[str, str] | None = None) -> str:
    if field_name.startswith(CUSTOM_PREFIX):
        key = field_name.removeprefix(CUSTOM_PREFIX)
        if custom_kinds is None or key not in custom_kinds:
            raise RuleError(f"There is no custom field “{key}”.")
        return custom_kinds[key]
    if field_name not in FIT_FIELDS:
        raise RuleError(f"There is no lead field “{field_name}”.")
    return FIT_FIELDS[field_name].kind


def field_label(field_name: str) -> str:
    if field_name.startswith(CUSTOM_PREFIX):
        return field_name.removeprefix(CUSTOM_PREFIX).replace("_", " ")
    spec = FIT_FIELDS.get(field_name)
    return spec.label if spec else field_name


# Regular expressions run in Python (real-time scoring) and in PostgreSQL (set-based
# rescores), whose dialects differ. A rule's pattern is written in the common subset,
# with Python's spelling; ``regex_dialects`` refuses what only one side understands or
# what means different things, and spells the rest for each side.
_REGEX_REFUSED: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\(\?P"), "named groups (?P…)"),
    (re.compile(r"\(\?>"), "atomic groups (?>…)"),
    (re.compile(r"\(\?\("), "conditional groups (?(…)…)"),
    (re.compile(r"\(\?[aiLmsux-]"), "inline flags such as (?i) (matching ignores case anyway)"),
    (re.compile(r"[*+?}]\+"), "possessive quantifiers such as *+"),
    (re.compile(r"\{,"), "{,n} without a lower bound (write {0,n})"),
    (re.compile(r"\[:[a-z]+:\]"), "POSIX classes such as [[:alpha:]] (write [a-z] or \\w)"),
    (re.compile(r"\\N\{"), "named characters \\N{…}"),
]


@lru_cache(maxsize=512)
def regex_dialects(pattern: str) -> tuple[str, str]:
    """The pattern for Python's ``re`` and for PostgreSQL's ``~*``, or a RuleError.

    Both match case-insensitively and let ``.`` match a line break; ``$`` is the end of
    the text (Python would also match before a final line break); the word boundaries
    ``\\b`` and ``\\B`` are ``\\y`` and ``\\Y`` in PostgreSQL, where ``\\b`` is a backspace.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "possible nested set"
            re.compile(pattern)
    except re.error as exc:
        raise RuleError(f"“{pattern}” is not a valid regular expression: {exc}.") from exc
    for construct, what in _REGEX_REFUSED:
        if construct.search(_without_escapes(pattern)):
            raise RuleError(
                f"“{pattern}” uses {what}, which the database's regular expressions do not "
                "read the same way; write it without."
            )
    python, postgres = [], []
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            pair = pattern[i : i + 2]
            if not in_class and pair[1] in "bB":
                python.append(pair)
                postgres.append("\\y" if pair[1] == "b" else "\\Y")
            else:
                python.append(pair)
                postgres.append(pair)
            i += 2
            continue
        if in_class:
            if char == "]" and not _class_opened_at(pattern, i):
                in_class = False
        elif char == "[":
            in_class = True
        elif char == "$":
            python.append("\\Z")
            postgres.append("$")
            i += 1
            continue
        python.append(char)
        postgres.append(char)
        i += 1
    return "".join(python), "".join(postgres)


def _without_escapes(pattern: str) -> str:
    """The pattern with every escaped character blanked, so ``\\(?P`` is not a group."""
    return re.sub(r"\\.", "__", pattern)


def _class_opened_at(pattern: str, index: int) -> bool:
    """Whether the ``]`` at ``index`` is the first character of its class (a literal)."""
    start = index - 1
    if start >= 0 and pattern[start] == "^":
        start -= 1
    return start >= 0 and pattern[start] == "[" and (start == 0 or pattern[start - 1] != "\\")


@lru_cache(maxsize=512)
def compile_regex(pattern: str) -> re.Pattern[str]:
    python, _ = regex_dialects(pattern)
    return re.compile(python, re.IGNORECASE | re.DOTALL)


def postgres_regex(pattern: str) -> str:
    return regex_dialects(pattern)[1]


def split_list(value: str) -> list[str]:
    return [item.strip().lower() for item in value.split(",") if item.strip()]


def to_number(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(Decimal(str(value).strip()))
    except (InvalidOperation, ValueError):
        return None
    return number if math.isfinite(number) else None


def validate_condition(
    kind: str, operator: str, value: str, value_to: str = "", *, domain_lists: Iterable[str] = ()
) -> None:
    """Raise RuleError when the operator does not fit the field or the value is unusable."""
    if operator not in OPERATORS:
        raise RuleError(f"Unknown operator “{operator}”.", field="operator")
    if operator not in OPERATORS_BY_KIND[kind]:
        allowed = ", ".join(OPERATORS[o] for o in sorted(OPERATORS_BY_KIND[kind]))
        raise RuleError(
            f"“{OPERATORS[operator]}” does not fit a {kind} field; use {allowed}.",
            field="operator",
        )
    if operator in NO_VALUE_OPERATORS:
        return
    if not str(value).strip():
        raise RuleError("Give a value to compare with.", field="value")
    if operator == "regex":
        try:
            compile_regex(value)
        except RuleError as exc:
            raise RuleError(str(exc), field="value") from None
    if kind == NUMBER:
        if to_number(value) is None:
            raise RuleError(f"“{value}” is not a number.", field="value")
        if operator == "between" and to_number(value_to) is None:
            raise RuleError("Give the upper end of the range as a number.", field="value_to")
    if operator == "in_domain_list" and value not in set(domain_lists):
        raise RuleError(f"There is no domain list “{value}”.", field="value")


def condition_matches(
    kind: str,
    operator: str,
    value: str,
    value_to: str,
    actual: Any,
    domain_lists: Mapping[str, frozenset[str]] | None = None,
) -> bool:
    """Whether ``actual`` satisfies the condition; text comparisons ignore case."""
    if operator == "is_true":
        return actual is True
    if operator == "is_false":
        return actual is not True
    if kind == LIST:
        items = {str(item).lower() for item in (actual or [])}
        if operator == "is_empty":
            return not items
        if operator == "not_empty":
            return bool(items)
        wanted = set(split_list(value))
        if operator in ("contains", "in"):
            return bool(items & wanted)
        if operator == "not_contains":
            return not items & wanted
        raise RuleError(f"Unknown operator “{operator}”.")
    if kind == NUMBER:
        number = to_number(actual)
        if operator == "is_empty":
            return number is None
        if operator == "not_empty":
            return number is not None
        if number is None:
            return operator == "not_equals"
        target = to_number(value)
        if target is None:
            return False
        return _compare_numbers(operator, number, target, to_number(value_to))
    text = "" if actual is None else str(actual).strip().lower()
    if operator == "is_empty":
        return text == ""
    if operator == "not_empty":
        return text != ""
    return _compare_text(operator, text, str(value).strip(), domain_lists or {})


def _compare_numbers(operator: str, number: float, target: float, upper: float | None) -> bool:
    if operator == "equals":
        return number == target
    if operator == "not_equals":
        return number != target
    if operator == "gt":
        return number > target
    if operator == "gte":
        return number >= target
    if operator == "lt":
        return number < target
    if operator == "lte":
        return number <= target
    if operator == "between":
        return upper is not None and target <= number <= upper
    raise RuleError(f"Unknown operator “{operator}”.")


def _compare_text(
    operator: str, text: str, value: str, domain_lists: Mapping[str, frozenset[str]]
) -> bool:
    needle = value.lower()
    if operator == "equals":
        return text == needle
    if operator == "not_equals":
        return text != needle
    if operator == "in":
        return text in split_list(value)
    if operator == "not_in":
        return text not in split_list(value)
    if operator == "contains":
        return needle in text
    if operator == "not_contains":
        return needle not in text
    if operator == "starts_with":
        return text.startswith(needle)
    if operator == "ends_with":
        return text.endswith(needle)
    if operator == "regex":
        return compile_regex(value).search(text) is not None
    if operator == "in_domain_list":
        domain = text.rpartition("@")[2]
        return domain in domain_lists.get(value, frozenset())
    raise RuleError(f"Unknown operator “{operator}”.")


# --- Rules as plain values ------------------------------------------------------

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
    ordered = sorted(activities, key=lambda a: (a.occurred_at, a.id))
    awards: list[Award] = []
    for rule in rules:
        if rule.kind != ENGAGEMENT:
            continue
        oldest = now - timedelta(days=rule.recency_days) if rule.recency_days else None
        matched = [
            a
            for a in ordered
            if a.occurred_at <= now
            and (oldest is None or a.occurred_at >= oldest)
            and activity_matches(rule, a)
        ]
        awards.extend(_capped_awards(rule, matched))
    return awards


def _capped_awards(rule: RuleSpec, matched: Sequence[ActivityFact]) -> list[Award]:
    awards: list[Award] = []
    per_day: dict[Any, int] = defaultdict(int)
    total = 0
    for activity in matched:
        at = activity.occurred_at
        day = (at.astimezone(UTC) if at.tzinfo else at).date()  # a UTC day, as documented
        per_day[day] += 1
        if rule.bonus_count and rule.bonus_points and per_day[day] == rule.bonus_count:
            awards.append(
                Award(rule.id, activity.id, float(rule.bonus_points), activity.occurred_at, True)
            )
        if rule.max_per_day and per_day[day] > rule.max_per_day:
            continue
        if rule.max_per_lead and total >= rule.max_per_lead:
            continue
        total += 1
        awards.append(Award(rule.id, activity.id, float(rule.points), activity.occurred_at))
    return awards


# --- Decay and the score --------------------------------------------------------

SECONDS_PER_DAY = 86_400.0


def decay_factor(elapsed_seconds: float, half_life_days: float | None) -> float:
    """How much of a value is left after ``elapsed_seconds`` with the given half-life."""
    if not half_life_days or elapsed_seconds <= 0:
        return 1.0
    return 0.5 ** (elapsed_seconds / (half_life_days * SECONDS_PER_DAY))


def decayed(
    value: float, since: datetime | None, until: datetime, half_life_days: float | None
) -> float:
    """``e(until) = e(since) * 0.5 ** ((until - since) / half_life)``."""
    if since is None:
        return value
    return value * decay_factor((until - since).total_seconds(), half_life_days)


def engagement_at(
    entries: Iterable[tuple[float, datetime]], when: datetime, half_life_days: float | None
) -> float:
    """The engagement that ledger entries (points, at) add up to at ``when``."""
    return sum(
        points * decay_factor((when - at).total_seconds(), half_life_days)
        for points, at in entries
        if at <= when
    )


def score_series(
    entries: Iterable[tuple[datetime, bool, float]],
    *,
    now: datetime,
    points: int,
    half_life_days: float | None,
    thresholds: Thresholds,
) -> list[tuple[datetime, int]]:
    """The score at ``points`` evenly spaced times from the first entry to ``now``.

    ``entries`` are ledger entries as (at, is engagement, points). The fit at a time is
    the sum of the fit entries until then; the engagement is ``engagement_at`` of the
    engagement entries. Computed in one pass in time order: the engagement at a point
    is the one at the point before, decayed over the step, plus the entries within the
    step, each decayed from its own time; a lead with thousands of entries costs one
    sort, not one sum per point.
    """
    ordered = sorted(entries, key=lambda entry: entry[0])
    if not ordered:
        return []
    start = ordered[0][0]
    step = max((now - start) / max(points - 1, 1), timedelta(seconds=1))
    fit = engagement = 0.0
    previous = start
    taken = 0
    series = []
    for i in range(points):
        # The last point is ``now`` itself: timedelta division rounds to microseconds.
        when = now if i == points - 1 else min(start + step * i, now)
        engagement *= decay_factor((when - previous).total_seconds(), half_life_days)
        while taken < len(ordered) and ordered[taken][0] <= when:
            at, is_engagement, value = ordered[taken]
            if is_engagement:
                engagement += value * decay_factor((when - at).total_seconds(), half_life_days)
            else:
                fit += value
            taken += 1
        previous = when
        series.append((when, total_score(fit, engagement, thresholds)))
    return series


def idle_penalty(last_engaged_at: datetime | None, when: datetime, per_week: int) -> float:
    """``per_week`` points for every whole week without engagement."""
    if not per_week or last_engaged_at is None:
        return 0.0
    weeks = int((when - last_engaged_at).total_seconds() // (7 * SECONDS_PER_DAY))
    return float(max(weeks, 0) * per_week)


@dataclass(frozen=True)
class Thresholds:
    hot: int = 80
    warm: int = 30
    grade_a: int = 60
    grade_b: int = 40
    grade_c: int = 20
    engaged: int = 30
    max_points: int | None = None


def round_half_up(value: float) -> int:
    """Rounding that SQL reproduces exactly: ``floor(x + 0.5)``."""
    return math.floor(value + 0.5)


def total_score(fit: float, engagement: float, thresholds: Thresholds) -> int:
    score = round_half_up(fit + engagement)
    if thresholds.max_points is not None:
        score = min(score, thresholds.max_points)
    return score


def band_for(score: float, thresholds: Thresholds) -> str:
    if score >= thresholds.hot:
        return "hot"
    if score >= thresholds.warm:
        return "warm"
    return "cold"


def grade_for(fit: float, thresholds: Thresholds) -> str:
    if fit >= thresholds.grade_a:
        return "A"
    if fit >= thresholds.grade_b:
        return "B"
    if fit >= thresholds.grade_c:
        return "C"
    return "D"


def quadrant_for(fit: float, engagement: float, thresholds: Thresholds) -> str:
    good_fit = fit >= thresholds.grade_b
    engaged = engagement >= thresholds.engaged
    if good_fit and engaged:
        return "hot"
    if good_fit:
        return "target"
    if engaged:
        return "researcher"
    return "cold"

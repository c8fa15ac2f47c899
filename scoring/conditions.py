"""Fit conditions on plain values: whether a field's value satisfies a rule's operator and
value, and whether an operator and value are usable for a field's kind at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from .regex_dialects import compile_regex
from .rule_fields import (
    LIST,
    NO_VALUE_OPERATORS,
    NUMBER,
    OPERATORS,
    OPERATORS_BY_KIND,
    RuleError,
)


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

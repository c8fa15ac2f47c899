"""Rules as sentences a marketer reads.

For example: “+25 when a page view URL contains /pricing, at most once a day”.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import FieldDoesNotExist

from leads.models import ActivityType, Company, Lead

from .conditions import split_list
from .rule_fields import NO_VALUE_OPERATORS, OPERATORS, field_label
from .rules import ANY, FIT, WINDOW_SECONDS

if TYPE_CHECKING:
    from .models import Rule


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _points(points: int) -> str:
    return f"{points:+d}"


def describe_rule(rule: Rule) -> str:
    if rule.kind == FIT:
        return _describe_fit(rule)
    return _describe_engagement(rule)


def _describe_fit(rule: Rule) -> str:
    """E.g. “+1 per 60 of time on site (at most +30) when occupation is working
    professional and time on site is at least 600”."""
    points = _points(rule.points)
    if rule.per_unit is not None:
        points += f" per {rule.per_unit:g} of {field_label(rule.field)}"
    if rule.points_cap is not None:
        points += f" (at most {rule.points_cap} points)"
    tests = [_describe_condition(rule.field, rule.operator, rule.value, rule.value_to)]
    conditions = rule.conditions if isinstance(rule.conditions, list) else []
    for item in conditions:
        if isinstance(item, dict):
            tests.append(
                _describe_condition(
                    str(item.get("field", "")),
                    str(item.get("operator", "")),
                    str(item.get("value") or ""),
                    str(item.get("value_to") or ""),
                )
            )
    joiner = " or " if rule.join == ANY else " and "
    return f"{points} when {joiner.join(tests)}"


def _describe_condition(field: str, operator: str, value: str, value_to: str) -> str:
    label = field_label(field)
    verb = OPERATORS.get(operator, operator)
    if operator in NO_VALUE_OPERATORS:
        return f"{label} {verb}"
    if operator == "between":
        return f"{label} is between {value} and {value_to}"
    if operator == "in_domain_list":
        return f"the {label} is on the {value.replace('_', '-')} list"
    if operator in ("in", "not_in"):
        values = [_value_label(field, item) for item in split_list(value)]
        return f"{label} {verb} {', '.join(values)}"
    if operator in ("equals", "not_equals"):
        return f"{label} {verb} {_value_label(field, value)}"
    return f"{label} {verb} {value}"


def _value_label(field: str, value: str) -> str:
    """A pick-list value as people read it ("C-level", not ``c_level``)."""
    model: type[Lead] | type[Company] = Lead
    name = field
    if field.startswith("company."):
        model, name = Company, field.removeprefix("company.")
    try:
        model_field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return value
    choices = getattr(model_field, "flatchoices", None)
    return str(dict(choices).get(value, value)) if choices else value


def _describe_engagement(rule: Rule) -> str:
    try:
        what = ActivityType(rule.activity_type).label.lower()
    except ValueError:
        what = rule.activity_type or "an activity"
    article = "an" if what[:1] in "aeiou" else "a"
    sentence = f"{_points(rule.points)} when {article} {what}"
    if rule.target:
        subject = "URL" if rule.target == "url" else f"property “{rule.property_name}”"
        sentence += f" {subject} {OPERATORS.get(rule.match, rule.match)} {rule.pattern}"
    if rule.min_duration_seconds:
        sentence += f" lasting at least {rule.min_duration_seconds} s"
    limits = []
    if rule.max_per_day:
        limits.append(f"at most {_times(rule.max_per_day)} a day")
    if rule.max_per_lead:
        limits.append(f"at most {_times(rule.max_per_lead)} per lead")
    if rule.recency_days:
        limits.append(f"within the last {rule.recency_days} days")
    if rule.window_days and rule.window_min:
        days = "a day" if rule.window_days == 1 else f"{rule.window_days} days"
        if rule.window_measure == WINDOW_SECONDS:
            limits.append(f"once they last {rule.window_min} s together within {days}")
        else:
            limits.append(f"once there are at least {rule.window_min} within {days}")
    if limits:
        sentence += ", " + ", ".join(limits)
    if rule.bonus_count and rule.bonus_points:
        sentence += (
            f"; {_points(rule.bonus_points)} more when it happens "
            f"{_times(rule.bonus_count)} in one day"
        )
    return sentence

"""Rules as sentences a marketer reads.

For example: “+25 when a page view URL contains /pricing, at most once a day”.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import FieldDoesNotExist

from leads.models import ActivityType, Company, Lead

from .conditions import split_list
from .rule_fields import NO_VALUE_OPERATORS, OPERATORS, field_label
from .rules import FIT

if TYPE_CHECKING:
    from .models import Rule


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _points(points: int) -> str:
    return f"{points:+d}"


def describe_rule(rule: Rule) -> str:
    if rule.kind == FIT:
        return f"{_points(rule.points)} when {_describe_condition(rule)}"
    return _describe_engagement(rule)


def _describe_condition(rule: Rule) -> str:
    label = field_label(rule.field)
    verb = OPERATORS.get(rule.operator, rule.operator)
    if rule.operator in NO_VALUE_OPERATORS:
        return f"{label} {verb}"
    if rule.operator == "between":
        return f"{label} is between {rule.value} and {rule.value_to}"
    if rule.operator == "in_domain_list":
        return f"the {label} is on the {rule.value.replace('_', '-')} list"
    if rule.operator in ("in", "not_in"):
        values = [_value_label(rule.field, value) for value in split_list(rule.value)]
        return f"{label} {verb} {', '.join(values)}"
    if rule.operator in ("equals", "not_equals"):
        return f"{label} {verb} {_value_label(rule.field, rule.value)}"
    return f"{label} {verb} {rule.value}"


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
    if limits:
        sentence += ", " + ", ".join(limits)
    if rule.bonus_count and rule.bonus_points:
        sentence += (
            f"; {_points(rule.bonus_points)} more when it happens "
            f"{_times(rule.bonus_count)} in one day"
        )
    return sentence

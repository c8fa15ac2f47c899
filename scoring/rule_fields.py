"""What a fit rule can test: the lead fields and their kinds, the operators that fit
each kind, and ``RuleError``, the refusal every part of a rule raises.

Plain values, no database: the rules, the forms, the API and the SQL rescore read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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

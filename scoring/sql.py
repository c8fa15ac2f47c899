"""Rules as PostgreSQL expressions, for the set-based rescore.

Each function returns SQL with ``%s`` placeholders and the parameters for them,
mirroring ``scoring.conditions`` and ``scoring.rules`` exactly: text compares trimmed
and lower-cased, a missing number only satisfies "is not", lists compare lower-cased
slugs. The property test holds the two implementations to the same answers.
"""

from __future__ import annotations

from typing import Any

from .conditions import split_list, to_number
from .regex_dialects import postgres_regex
from .rule_fields import BOOL, CUSTOM_PREFIX, FIT_FIELDS, LIST, NUMBER, TEXT, RuleError
from .rules import ANY, MACHINE_MARKED_TYPES, Condition, RuleSpec

Sql = tuple[str, list[Any]]

# Python's str.strip() drops every kind of white space, PostgreSQL's btrim() only spaces.
WHITESPACE = "E' \\t\\n\\r\\f' || chr(11)"


def btrim_ws(expr: str) -> str:
    return f"btrim({expr}, {WHITESPACE})"


LEAD_TEXT_COLUMNS = {
    name
    for name, spec in FIT_FIELDS.items()
    if spec.kind == TEXT and "." not in name and name != "email_domain"
}
COMPANY_TEXT_COLUMNS = {"company.name", "company.domain", "company.industry", "company.country"}
COMPANY_NUMBER_COLUMNS = {"company.employee_count", "company.annual_revenue"}
SPAM_NAMES = ["test", "testtest", "asdf", "asdfasdf", "qwerty"]


def _text_expr(field: str) -> Sql:
    if field in LEAD_TEXT_COLUMNS:
        return f"lower({btrim_ws(f'l.{field}')})", []
    if field == "email_domain":
        expr = btrim_ws("split_part(l.email, '@', 2)")
        return f"lower({expr})", []
    if field in COMPANY_TEXT_COLUMNS:
        column = field.split(".")[1]
        expr = btrim_ws(f"COALESCE(c.{column}, '')")
        return f"lower({expr})", []
    if field.startswith(CUSTOM_PREFIX):
        expr = btrim_ws("COALESCE(l.custom_fields ->> %s, '')")
        return f"lower({expr})", [_custom_key(field)]
    raise RuleError(f"There is no text field “{field}”.")


def _number_expr(field: str) -> Sql:
    if field in COMPANY_NUMBER_COLUMNS:
        return f"c.{field.split('.')[1]}::float8", []
    if field == "missing_key_fields":
        checks = [
            "(l.first_name = '')",
            "(l.last_name = '')",
            "(l.job_title = '')",
            "(l.company_id IS NULL)",
            "(l.country = '')",
            "(l.phone = '')",
        ]
        return "(" + " + ".join(f"{check}::int" for check in checks) + ")::float8", []
    if field.startswith(CUSTOM_PREFIX):
        key = _custom_key(field)
        return (
            "(CASE WHEN jsonb_typeof(l.custom_fields -> %s) = 'number' "
            "THEN (l.custom_fields ->> %s)::float8 END)",
            [key, key],
        )
    raise RuleError(f"There is no number field “{field}”.")


def _bool_expr(field: str) -> Sql:
    if field == "looks_like_spam":
        name = "lower(l.first_name || l.last_name)"
        return (
            "(length(regexp_replace(split_part(l.email, '@', 1), '[^0-9]', '', 'g')) >= 5"
            f" OR ({name} <> '' AND {name} ~ '[0-9]')"
            f" OR ({name} <> '' AND {name} = ANY(%s))"
            " OR (lower(l.first_name) = lower(l.last_name) AND l.first_name <> ''))",
            [SPAM_NAMES],
        )
    if field.startswith(CUSTOM_PREFIX):
        return "((l.custom_fields -> %s) = 'true'::jsonb)", [_custom_key(field)]
    raise RuleError(f"There is no yes/no field “{field}”.")


def _custom_key(field: str) -> str:
    return field.removeprefix(CUSTOM_PREFIX)


NUMBER_OPS = {"equals": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def fit_rule_condition(rule: RuleSpec) -> Sql:
    """The rule's tests joined as ``scoring.rules.fit_matches`` joins them."""
    parts, params = [], []
    for test in rule.tests:
        sql, test_params = fit_condition(test)
        parts.append(f"COALESCE({sql}, false)")
        params += test_params
    joiner = " OR " if rule.join == ANY else " AND "
    return f"({joiner.join(parts)})", params


def fit_points_sql(rule: RuleSpec) -> Sql:
    """A float8 SQL expression of what the rule gives a lead it matches
    (``scoring.rules.fit_points``)."""
    if rule.per_unit is None:
        points, params = "%s::float8", [float(rule.points)]
    else:
        expr, expr_params = _number_expr(rule.field)
        points = f"(%s::float8 * GREATEST(COALESCE(floor({expr} / %s::float8), 0), 0))"
        params = [float(rule.points), *expr_params, float(rule.per_unit)]
    if rule.points_cap is not None:
        points = f"GREATEST(-%s::float8, LEAST(%s::float8, {points}))"
        params = [float(rule.points_cap), float(rule.points_cap), *params]
    return points, params


def fit_condition(rule: Condition) -> Sql:
    """A boolean SQL expression over ``l`` (lead) and ``c`` (its company, LEFT JOINed)."""
    op, kind = rule.operator, rule.field_kind
    if kind == BOOL:
        expr, params = _bool_expr(rule.field)
        if op == "is_true":
            return f"({expr} IS TRUE)", params
        return f"({expr} IS NOT TRUE)", params
    if kind == LIST:
        return _list_condition(op, rule.value)
    if kind == NUMBER:
        return _number_condition(rule)
    expr, params = _text_expr(rule.field)
    needle = rule.value.strip().lower()
    if op == "is_empty":
        return f"({expr} = '')", params
    if op == "not_empty":
        return f"({expr} <> '')", params
    if op == "equals":
        return f"({expr} = %s)", [*params, needle]
    if op == "not_equals":
        return f"({expr} <> %s)", [*params, needle]
    if op == "in":
        return f"({expr} = ANY(%s))", [*params, split_list(rule.value)]
    if op == "not_in":
        return f"(NOT ({expr} = ANY(%s)))", [*params, split_list(rule.value)]
    if op == "contains":
        return f"(strpos({expr}, %s) > 0)", [*params, needle]
    if op == "not_contains":
        return f"(strpos({expr}, %s) = 0)", [*params, needle]
    if op == "starts_with":
        return f"starts_with({expr}, %s)", [*params, needle]
    if op == "ends_with":
        return f"(right({expr}, %s) = %s)", [*params, len(needle), needle]
    if op == "regex":
        return f"({expr} ~* %s)", [*params, postgres_regex(rule.value)]
    if op == "in_domain_list":
        return (
            f"(split_part({expr}, '@', -1) IN "
            "(SELECT domain FROM scoring_domainlist WHERE kind = %s))",
            [*params, rule.value],
        )
    raise RuleError(f"Unknown operator “{op}”.")


def _number_condition(rule: Condition) -> Sql:
    expr, params = _number_expr(rule.field)
    op = rule.operator
    if op == "is_empty":
        return f"({expr} IS NULL)", params
    if op == "not_empty":
        return f"({expr} IS NOT NULL)", params
    target = to_number(rule.value)
    if op == "not_equals":
        return f"({expr} IS NULL OR {expr} <> %s)", [*params, *params, target]
    if op == "between":
        upper = to_number(rule.value_to)
        return (
            f"COALESCE({expr} BETWEEN %s AND %s, false)",
            [*params, target, upper],
        )
    return f"COALESCE({expr} {NUMBER_OPS[op]} %s, false)", [*params, target]


def _list_condition(op: str, value: str) -> Sql:
    exists = (
        "EXISTS (SELECT 1 FROM leads_lead_product_interests t "
        "JOIN leads_productline p ON p.id = t.productline_id "
        "WHERE t.lead_id = l.id{extra})"
    )
    if op == "is_empty":
        return f"(NOT {exists.format(extra='')})", []
    if op == "not_empty":
        return exists.format(extra=""), []
    wanted = split_list(value)
    clause = exists.format(extra=" AND lower(p.slug) = ANY(%s)")
    if op == "not_contains":
        return f"(NOT {clause})", [wanted]
    return clause, [wanted]


def activity_test(rule: RuleSpec) -> Sql:
    """A boolean SQL expression over ``a`` (the activity) for one engagement rule, apart
    from its activity type and recency window (the set-based rescore tests those)."""
    parts = ["TRUE"]
    params: list[Any] = []
    if rule.activity_type in MACHINE_MARKED_TYPES:
        parts.append("COALESCE(a.properties -> 'scored', 'true'::jsonb) <> 'false'::jsonb")
    if rule.min_duration_seconds:
        parts.append("COALESCE(a.duration_seconds, 0) >= %s")
        params.append(rule.min_duration_seconds)
    if rule.target:
        if rule.target == "url":
            subject = "lower(a.url)"
        else:
            subject = "lower(COALESCE(a.properties ->> %s, ''))"
            params.append(rule.target.removeprefix("property:"))
        if rule.match == "equals":
            parts.append(f"{subject} = %s")
            params.append(rule.pattern.lower())
        elif rule.match == "regex":
            parts.append(f"{subject} ~* %s")
            params.append(postgres_regex(rule.pattern))
        else:
            parts.append(f"strpos({subject}, %s) > 0")
            params.append(rule.pattern.lower())
    return " AND ".join(parts), params

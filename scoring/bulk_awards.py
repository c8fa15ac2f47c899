"""The awards of a set of rules over a range of leads, as one SELECT per kind of rule:
step 1 of the set-based rescore (``scoring.bulk``), the SQL twin of
``scoring.rules.fit_awards`` and ``engagement_awards``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .regex_dialects import postgres_regex
from .rules import WINDOW_SECONDS, RuleSpec
from .sql import activity_test, fit_points_sql, fit_rule_condition


def fit_awards_sql(
    rules: list[RuleSpec], segment: tuple[str, list[Any]], lo: int, hi: int, now: datetime
) -> tuple[str, list[Any]]:
    """One scan of the leads selects the awards of every fit rule."""
    rows, params = [], []
    for rule in rules:
        condition, condition_params = fit_rule_condition(rule)
        points, points_params = fit_points_sql(rule)
        rows.append(f"(%s::bigint, {points}, {condition})")
        params += [rule.id, *points_params, *condition_params]
    segment_sql, segment_params = segment
    sql = f"""
        SELECT l.id AS lead_id, r.rule_id, NULL::bigint AS activity_id, false AS bonus,
               r.points, %s::timestamptz AS at
        FROM leads_lead l LEFT JOIN leads_company c ON c.id = l.company_id
        CROSS JOIN LATERAL (VALUES {", ".join(rows)}) AS r(rule_id, points, ok)
        WHERE r.ok AND r.points <> 0 AND {segment_sql} AND l.id BETWEEN %s AND %s
    """
    return sql, [now, *params, *segment_params, lo, hi]


def engagement_awards_sql(
    rules: list[RuleSpec],
    segment: tuple[str, list[Any]],
    lo: int,
    hi: int,
    now: datetime,
    *,
    leads: list[int] | None = None,
) -> tuple[str, list[Any]]:
    """One scan of the activities selects the awards of every engagement rule.

    The rules are a small table hash-joined to the activities on their type, so each
    activity meets only the rules that read its type. Window functions apply the
    caps: ``n_day`` numbers a rule's matches within one UTC day, ``n_lead`` counts the
    matches that survived the day cap so far; the match that reaches the bonus count on
    a day also earns the bonus. A UTC day only grows with the time, so both windows
    read one sort of the matches, by lead, rule, day, time and id, and the matches
    carry no text until the awards are chosen. Each rule brings its own test
    (``scoring.sql.activity_test``).
    With ``leads``, only those leads' activities of the rules' types are read.
    """
    no_cap = 2**31 - 1
    rows, params = [], []
    for rule in rules:
        target, _, prop = rule.target.partition(":")
        rows.append(
            "(%s::bigint, %s::varchar, %s::varchar, %s::varchar, %s::varchar, %s::varchar, "
            "%s::int, %s::timestamptz, %s::int, %s::int, %s::int, %s::float8, %s::float8)"
        )
        params += [
            rule.id,
            rule.activity_type,
            target,
            prop,
            rule.match or "contains",
            postgres_regex(rule.pattern) if rule.match == "regex" else rule.pattern.lower(),
            rule.min_duration_seconds or 0,
            now - timedelta(days=rule.recency_days) if rule.recency_days else None,
            rule.max_per_day or no_cap,
            rule.max_per_lead or no_cap,
            rule.bonus_count if rule.bonus_count and rule.bonus_points else 0,
            float(rule.points),
            float(rule.bonus_points),
        ]
    segment_sql, segment_params = segment
    only = " AND a.lead_id = ANY(%s) AND a.type = ANY(%s)" if leads is not None else ""
    # Each rule's own test, with its constants, instead of one generic test that reads
    # the rules' columns: a third of the cost of the join for the starter model.
    match_sql, match_params = _rule_tests(rules, now)
    matches_sql = f"""
        SELECT a.lead_id, a.id, a.occurred_at, r.rule_id, r.day_cap, r.lead_cap,
               r.bonus_count{{windows}}
        FROM leads_activity a JOIN rules r ON r.type = a.type
        WHERE a.lead_id BETWEEN %s AND %s AND a.occurred_at <= %s
          AND {segment_sql}{only}
          AND {match_sql}
    """
    only_params: list[Any] = []
    if leads is not None:
        only_params = [leads, sorted({rule.activity_type for rule in rules})]
    matches_params = [lo, hi, now, *segment_params, *only_params, *match_params]
    matches_sql, matches_params = _windowed(rules, matches_sql, matches_params)
    sql = f"""
        WITH rules (rule_id, type, target, prop, match, pattern, min_duration, oldest,
                    day_cap, lead_cap, bonus_count, points, bonus_points)
                   AS (VALUES {", ".join(rows)})
        SELECT m.lead_id, m.rule_id, m.id AS activity_id, b.bonus,
               CASE WHEN b.bonus THEN r.bonus_points ELSE r.points END AS points,
               m.occurred_at AS at
        FROM (
            SELECT d.*, count(*) FILTER (WHERE d.n_day <= d.day_cap) OVER (
                       PARTITION BY d.lead_id, d.rule_id ORDER BY d.day, d.occurred_at, d.id
                       ROWS UNBOUNDED PRECEDING) AS n_lead
            FROM (
                SELECT x.lead_id, x.id, x.occurred_at, x.rule_id, x.day_cap, x.lead_cap,
                       x.bonus_count, (x.occurred_at AT TIME ZONE 'UTC')::date AS day,
                       row_number() OVER (
                           PARTITION BY x.lead_id, x.rule_id,
                                        (x.occurred_at AT TIME ZONE 'UTC')::date
                           ORDER BY x.occurred_at, x.id) AS n_day
                FROM ({matches_sql}) x
            ) d
        ) m
        JOIN rules r ON r.rule_id = m.rule_id
        CROSS JOIN LATERAL (VALUES (false), (true)) AS b(bonus)
        WHERE CASE WHEN b.bonus THEN m.n_day = m.bonus_count
                   ELSE m.n_day <= m.day_cap AND m.n_lead <= m.lead_cap END
    """
    return sql, [*params, *matches_params]


def _windowed(rules: list[RuleSpec], sql: str, params: list[Any]) -> tuple[str, list[Any]]:
    """The matches, less those at which a rule's window is not reached
    (``scoring.rules.window_matches``): one ``RANGE`` window function per distinct
    (length, measure) over the matches of each (lead, rule), both ends included, and a
    test per rule. Without window rules the matches go through as they are."""
    windowed = [rule for rule in rules if rule.window_days]
    if not windowed:
        return sql.replace("{windows}", ""), params
    columns: dict[tuple[int, str], int] = {}
    for rule in windowed:
        columns.setdefault((rule.window_days or 0, rule.window_measure), len(columns))
    window_sql, window_params = [], []
    for (days, measure), index in columns.items():
        what = "sum(COALESCE(a.duration_seconds, 0))" if measure == WINDOW_SECONDS else "count(*)"
        # Hours, not days: a day of the session's time zone may last 23 or 25 hours.
        window_sql.append(
            f", {what} OVER (PARTITION BY a.lead_id, r.rule_id ORDER BY a.occurred_at "
            f"RANGE BETWEEN %s::interval PRECEDING AND CURRENT ROW) AS w_{index}"
        )
        window_params.append(f"{days * 24} hours")
    tests, test_params = [], []
    for rule in windowed:
        index = columns[(rule.window_days or 0, rule.window_measure)]
        tests.append(f"WHEN %s THEN w.w_{index} >= %s")
        test_params += [rule.id, rule.window_min or 0]
    inner = sql.replace("{windows}", "".join(window_sql))
    wrapped = f"""
        SELECT w.lead_id, w.id, w.occurred_at, w.rule_id, w.day_cap, w.lead_cap, w.bonus_count
        FROM ({inner}) w
        WHERE CASE w.rule_id {" ".join(tests)} ELSE TRUE END
    """
    return wrapped, [*window_params, *params, *test_params]


def _rule_tests(rules: list[RuleSpec], now: datetime) -> tuple[str, list[Any]]:
    """``CASE r.rule_id WHEN … THEN <that rule's test on a> … END`` (type aside)."""
    cases, params = [], []
    for rule in rules:
        test, test_params = activity_test(rule)
        if rule.recency_days:
            test = f"({test}) AND a.occurred_at >= %s"
            test_params = [*test_params, now - timedelta(days=rule.recency_days)]
        cases.append(f"WHEN %s THEN ({test})")
        params += [rule.id, *test_params]
    return f"(CASE r.rule_id {' '.join(cases)} ELSE FALSE END)", params

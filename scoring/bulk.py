"""Set-based rescoring on PostgreSQL: the ledger diff and the scores in a few statements.

``rescore_range`` does for every lead in an id range what ``scoring.engine.Batch``
does for a handful, without loading rows into Python:

1. the awards the rules give go into a temporary table, one statement per rule,
   with window functions for the per-day and per-lead caps and the bonus;
2. one statement appends a reversal for every active ledger entry no award
   supports any more, and an entry for every award the ledger lacks;
3. one upsert recomputes each touched lead's ``LeadScore`` from its active entries
   and the decay formula, and one update copies the primary score onto the lead.

Restricting the rules to one (``rule_ids``) turns it into the delta of a single
rule change: only that rule's matches and the leads they touch are visited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from . import rules as R
from .decay import decay_params, decay_sql
from .engine import CompiledModel
from .sql import activity_condition, fit_condition

DESIRED_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS scoring_desired (
    lead_id bigint NOT NULL,
    rule_id bigint NOT NULL,
    activity_id bigint,
    bonus boolean NOT NULL,
    points float8 NOT NULL,
    at timestamptz NOT NULL,
    reason varchar(300) NOT NULL
) ON COMMIT DELETE ROWS
"""
TOUCHED_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS scoring_touched (lead_id bigint PRIMARY KEY) ON COMMIT DELETE ROWS
"""


@dataclass
class RangeResult:
    leads: int
    reversed: int
    appended: int
    changed: list[tuple[int, int, str]]  # lead id, old score, old band


def _segment_clause(model: CompiledModel, segment_ids: list[int]) -> tuple[str, list[Any]]:
    if model.is_default:
        return "TRUE", []
    return (
        "EXISTS (SELECT 1 FROM leads_lead_product_interests s "
        "WHERE s.lead_id = l.id AND s.productline_id = ANY(%s))",
        [segment_ids],
    )


def rescore_range(
    *,
    model: CompiledModel,
    segment_ids: list[int],
    lo: int,
    hi: int,
    now: datetime,
    rule_ids: set[int] | None = None,
) -> RangeResult:
    """Rescore leads ``lo <= id <= hi`` in ``model``; call inside ``transaction.atomic()``."""
    rules = [
        r
        for r in (*model.fit_rules, *model.engagement_rules)
        if rule_ids is None or r.id in rule_ids
    ]
    segment, segment_params = _segment_clause(model, segment_ids)
    with connection.cursor() as cursor:
        cursor.execute(DESIRED_TABLE)
        cursor.execute(TOUCHED_TABLE)
        cursor.execute("TRUNCATE scoring_desired, scoring_touched")
        # Lock the range's leads so real-time scoring waits for this chunk or runs after it.
        cursor.execute(
            "SELECT id, score, band FROM leads_lead WHERE id BETWEEN %s AND %s "
            "ORDER BY id FOR UPDATE",
            [lo, hi],
        )
        before = {lead_id: (score, band) for lead_id, score, band in cursor.fetchall()}
        for rule in rules:
            cursor.execute(*_desired_sql(rule, (segment, segment_params), lo, hi, now))
        reversed_, appended = _apply_diff(cursor, model, rules, lo, hi, now, rule_ids)
        leads = _recompute_states(cursor, model, segment, segment_params, lo, hi, now, rule_ids)
        changed = _materialize(cursor, before, now)
    return RangeResult(leads, reversed_, appended, changed)


def _desired_sql(
    rule: R.RuleSpec, segment: tuple[str, list[Any]], lo: int, hi: int, now: datetime
) -> tuple[str, list[Any]]:
    """The INSERT of one rule's awards for the leads ``lo..hi`` of the segment."""
    segment_sql, segment_params = segment
    if rule.kind == R.FIT:
        condition, params = fit_condition(rule)
        return (
            "INSERT INTO scoring_desired "
            "SELECT l.id, %s, NULL, false, %s, %s, %s "
            "FROM leads_lead l LEFT JOIN leads_company c ON c.id = l.company_id "
            f"WHERE {condition} AND {segment_sql} AND l.id BETWEEN %s AND %s",
            [
                rule.id,
                float(rule.points),
                now,
                rule.description[:300],
                *params,
                *segment_params,
                lo,
                hi,
            ],
        )
    condition, params = activity_condition(rule)
    window = ""
    window_params: list[Any] = []
    if rule.recency_days:
        window = " AND a.occurred_at >= %s::timestamptz - make_interval(days => %s)"
        window_params = [now, rule.recency_days]
    sql = f"""
        WITH matched AS (
            SELECT a.lead_id, a.id, a.occurred_at,
                   row_number() OVER (
                       PARTITION BY a.lead_id, (a.occurred_at AT TIME ZONE 'UTC')::date
                       ORDER BY a.occurred_at, a.id) AS n_day
            FROM leads_activity a JOIN leads_lead l ON l.id = a.lead_id
            WHERE {condition} AND a.occurred_at <= %s{window}
              AND {segment_sql} AND a.lead_id BETWEEN %s AND %s
        ), counted AS (
            SELECT lead_id, id, occurred_at,
                   row_number() OVER (PARTITION BY lead_id ORDER BY occurred_at, id) AS n_lead
            FROM matched WHERE n_day <= %s
        )
        INSERT INTO scoring_desired
        SELECT lead_id, %s, id, false, %s, occurred_at, %s FROM counted WHERE n_lead <= %s
        UNION ALL
        SELECT lead_id, %s, id, true, %s, occurred_at, %s FROM matched WHERE n_day = %s
    """
    no_cap = 2**31 - 1
    bonus_count = rule.bonus_count if rule.bonus_count and rule.bonus_points else 0
    return sql, [
        *params,
        now,
        *window_params,
        *segment_params,
        lo,
        hi,
        rule.max_per_day or no_cap,
        rule.id,
        float(rule.points),
        rule.description[:300],
        rule.max_per_lead or no_cap,
        rule.id,
        float(rule.bonus_points),
        f"Bonus: {rule.description}"[:300],
        bonus_count,
    ]


def _active_entries(rule_filter: str) -> str:
    return f"""
        SELECT e.* FROM scoring_scoreentry e
        WHERE e.model_id = %s AND e.lead_id BETWEEN %s AND %s
          AND e.kind IN ('fit', 'engagement') {rule_filter}
          AND e.reversal_of_id IS NULL
          AND NOT EXISTS (SELECT 1 FROM scoring_scoreentry r WHERE r.reversal_of_id = e.id)
    """


def _apply_diff(
    cursor: Any,
    model: CompiledModel,
    rules: list[R.RuleSpec],
    lo: int,
    hi: int,
    now: datetime,
    rule_ids: set[int] | None,
) -> tuple[int, int]:
    """Append reversals and new entries in one statement (all parts see one snapshot)."""
    rule_filter = "AND e.rule_id = ANY(%s)" if rule_ids is not None else ""
    active_params: list[Any] = [model.id, lo, hi]
    if rule_ids is not None:
        active_params.append(sorted(rule_ids))
    half_life = model.half_life_days
    decay = (
        "CASE WHEN a.kind = 'engagement' AND %s::float8 IS NOT NULL THEN "
        "power(0.5, EXTRACT(EPOCH FROM (%s::timestamptz - a.at)) / (%s::float8 * 86400.0)) "
        "ELSE 1.0 END"
    )
    same_key = (
        "d.lead_id = a.lead_id AND d.rule_id = a.rule_id AND d.bonus = a.bonus "
        "AND d.activity_id IS NOT DISTINCT FROM a.activity_id"
    )
    sql = f"""
        WITH active AS ({_active_entries(rule_filter)}),
        reversals AS (
            INSERT INTO scoring_scoreentry
                (lead_id, model_id, rule_id, activity_id, kind, bonus, points, reason, at,
                 created_at, by_id, reversal_of_id)
            SELECT a.lead_id, a.model_id, a.rule_id, a.activity_id, a.kind, a.bonus,
                   -(a.points * {decay}),
                   CASE WHEN EXISTS (SELECT 1 FROM scoring_desired d WHERE {same_key})
                        THEN 'Rule changed' ELSE 'No longer applies' END
                        || ': reverses entry ' || a.id,
                   %s, %s, NULL, a.id
            FROM active a
            WHERE NOT EXISTS (
                SELECT 1 FROM scoring_desired d WHERE {same_key} AND d.points = a.points)
            RETURNING lead_id
        ),
        appended AS (
            INSERT INTO scoring_scoreentry
                (lead_id, model_id, rule_id, activity_id, kind, bonus, points, reason, at,
                 created_at, by_id, reversal_of_id)
            SELECT d.lead_id, %s, d.rule_id, d.activity_id,
                   CASE WHEN d.activity_id IS NULL THEN 'fit' ELSE 'engagement' END,
                   d.bonus, d.points, d.reason, d.at, %s, NULL, NULL
            FROM scoring_desired d
            WHERE NOT EXISTS (
                SELECT 1 FROM active a WHERE {same_key} AND d.points = a.points)
            RETURNING lead_id
        ),
        touched AS (
            INSERT INTO scoring_touched
            SELECT lead_id FROM reversals UNION SELECT lead_id FROM appended
            ON CONFLICT DO NOTHING
        )
        SELECT (SELECT count(*) FROM reversals), (SELECT count(*) FROM appended)
    """
    params = [
        *active_params,
        half_life,
        now,
        half_life,
        now,
        now,
        model.id,
        now,
    ]
    cursor.execute(sql, params)
    reversed_, appended = cursor.fetchone()
    return reversed_, appended


def _recompute_states(
    cursor: Any,
    model: CompiledModel,
    segment: str,
    segment_params: list[Any],
    lo: int,
    hi: int,
    now: datetime,
    rule_ids: set[int] | None,
) -> int:
    """Upsert ``LeadScore`` for the leads to recompute, from their active entries."""
    if rule_ids is None:
        leads = f"SELECT l.id FROM leads_lead l WHERE l.id BETWEEN %s AND %s AND {segment}"
        lead_params = [lo, hi, *segment_params]
    else:
        leads = "SELECT lead_id AS id FROM scoring_touched"
        lead_params = []
    t = model.thresholds
    hl = model.half_life_days
    sql = f"""
        WITH targets AS ({leads}),
        sums AS (
            SELECT t.id AS lead_id,
                   COALESCE(sum(e.points) FILTER (WHERE e.kind = 'fit'), 0) AS fit,
                   COALESCE(sum(e.points) FILTER (WHERE e.kind = 'manual'), 0) AS adjustment,
                   COALESCE(sum(e.points * CASE WHEN %s::float8 IS NULL THEN 1.0 ELSE
                       power(0.5, EXTRACT(EPOCH FROM (%s::timestamptz - e.at))
                             / (%s::float8 * 86400.0)) END)
                       FILTER (WHERE e.kind = 'engagement'), 0) AS engagement,
                   max(e.at) FILTER (WHERE e.kind = 'engagement') AS last_engaged_at
            FROM targets t
            LEFT JOIN scoring_scoreentry e
              ON e.lead_id = t.id AND e.model_id = %s
             AND (e.kind = 'manual' OR (e.reversal_of_id IS NULL AND NOT EXISTS (
                  SELECT 1 FROM scoring_scoreentry r WHERE r.reversal_of_id = e.id)))
            GROUP BY t.id
        ),
        effective AS (
            SELECT s.*, s.engagement - LEAST(
                CASE WHEN s.last_engaged_at IS NULL THEN 0 ELSE %s * floor(
                    EXTRACT(EPOCH FROM (%s::timestamptz - s.last_engaged_at)) / 604800.0) END,
                GREATEST(s.engagement, 0)) AS eff
            FROM sums s
        ),
        scored AS (
            SELECT e.*, LEAST(floor(e.fit + e.adjustment + e.eff + 0.5), %s) AS score
            FROM effective e
        )
        INSERT INTO scoring_leadscore
            (lead_id, model_id, fit, adjustment, engagement, engagement_at, last_engaged_at,
             score, band, grade, quadrant, is_primary, surged_at, updated_at)
        SELECT lead_id, %s, fit, adjustment, engagement, %s, last_engaged_at, score,
               CASE WHEN score >= %s THEN 'hot' WHEN score >= %s THEN 'warm' ELSE 'cold' END,
               CASE WHEN fit + adjustment >= %s THEN 'A' WHEN fit + adjustment >= %s THEN 'B'
                    WHEN fit + adjustment >= %s THEN 'C' ELSE 'D' END,
               CASE WHEN fit + adjustment >= %s AND eff >= %s THEN 'hot'
                    WHEN fit + adjustment >= %s THEN 'target'
                    WHEN eff >= %s THEN 'researcher' ELSE 'cold' END,
               false, NULL, %s
        FROM scored
        ON CONFLICT (lead_id, model_id) DO UPDATE SET
            fit = EXCLUDED.fit, adjustment = EXCLUDED.adjustment,
            engagement = EXCLUDED.engagement, engagement_at = EXCLUDED.engagement_at,
            last_engaged_at = EXCLUDED.last_engaged_at, score = EXCLUDED.score,
            band = EXCLUDED.band, grade = EXCLUDED.grade, quadrant = EXCLUDED.quadrant,
            updated_at = EXCLUDED.updated_at
    """
    params = [
        *lead_params,
        hl,
        now,
        hl,
        model.id,
        model.idle_week_penalty,
        now,
        t.max_points if t.max_points is not None else 2**31 - 1,
        model.id,
        now,
        t.hot,
        t.warm,
        t.grade_a,
        t.grade_b,
        t.grade_c,
        t.grade_b,
        t.engaged,
        t.grade_b,
        t.engaged,
        now,
    ]
    cursor.execute(sql, params)
    count = cursor.rowcount
    if rule_ids is None:
        cursor.execute(
            "INSERT INTO scoring_touched SELECT lead_id FROM scoring_leadscore "
            "WHERE model_id = %s AND lead_id BETWEEN %s AND %s ON CONFLICT DO NOTHING",
            [model.id, lo, hi],
        )
    return count


def _materialize(
    cursor: Any, before: dict[int, tuple[int, str]], now: datetime
) -> list[tuple[int, int, str]]:
    """Mark each touched lead's primary score and copy it onto the lead.

    Returns (lead id, old score, old band) for every lead whose score or band changed.
    """
    cursor.execute(
        """
        UPDATE scoring_leadscore ls SET is_primary = (ls.model_id = best.model_id)
        FROM (
            SELECT DISTINCT ON (x.lead_id) x.lead_id, x.model_id
            FROM scoring_leadscore x JOIN scoring_scoringmodel m ON m.id = x.model_id
            WHERE x.lead_id IN (SELECT lead_id FROM scoring_touched) AND m.status = 'active'
            ORDER BY x.lead_id, m.priority DESC, m.is_default DESC, m.id
        ) best
        WHERE ls.lead_id = best.lead_id AND ls.is_primary <> (ls.model_id = best.model_id)
        """
    )
    cursor.execute(decay_sql(postgres=True, touched_only=True), decay_params(now, postgres=True))
    cursor.execute(
        "SELECT id, score, band FROM leads_lead WHERE id IN (SELECT lead_id FROM scoring_touched)"
    )
    return [
        (lead_id, *before[lead_id])
        for lead_id, score, band in cursor.fetchall()
        if lead_id in before and before[lead_id] != (score, band)
    ]

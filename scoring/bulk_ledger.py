"""The ledger diff of the set-based rescore (step 2 of ``scoring.bulk``): a reversal for
every active entry no award supports any more and an entry for every award the ledger
lacks, in one statement; and how its statements tell an entry that is still active."""

from __future__ import annotations

from typing import Any

from .bulk_scope import Scope
from .revaluations import COUNTED, effective_points_sql, revalued_rules

# "Not reversed", two ways. A reversal has its entry's lead, so both name the lead and
# read the partial index entry_reversals_idx (lead, reversal_of).
#
# The statistics seldom know how many reversals there are: a rescore writes up to a
# million of them, and a range's own are written after its statements were planned.
# Believing in none, the planner compares every entry with every reversal (a nested
# loop over a materialized scan), minutes for one range. So:
# - NOT_REVERSED, an anti-join with the reversals of the range, runs with nested loops
#   off: one hash of the range's reversals, for statements reading a whole range;
# - REVERSAL_PROBE, a scalar subquery, is never turned into a join: one index lookup
#   of (lead, id) per entry, for statements reading a few leads' entries.
NOT_REVERSED = (
    "NOT EXISTS (SELECT 1 FROM scoring_scoreentry r WHERE r.reversal_of_id = e.id "
    "AND r.reversal_of_id IS NOT NULL AND r.lead_id BETWEEN {lo} AND {hi})"
)
REVERSAL_PROBE = (
    "(SELECT r.id FROM scoring_scoreentry r "
    "WHERE r.lead_id = e.lead_id AND r.reversal_of_id = e.id) IS NULL"
)


def _active_entries(rule_filter: str) -> str:
    """The active awards (revaluations left out) with their effective points; the first
    parameter is the rules with revaluations (``revaluations.effective_points_sql``)."""
    return f"""
        SELECT e.id, e.lead_id, e.model_id, e.rule_id, e.activity_id, e.kind, e.bonus,
               {effective_points_sql("e")}, e.at
        FROM scoring_scoreentry e
        WHERE e.model_id = %s AND e.lead_id BETWEEN %s AND %s
          AND e.kind IN ('fit', 'engagement') {rule_filter}
          AND e.reversal_of_id IS NULL AND {COUNTED}
          AND {NOT_REVERSED.format(lo="%s", hi="%s")}
    """


def apply_diff(cursor: Any, scope: Scope) -> tuple[int, int]:
    """Append reversals and new entries in one statement.

    The active entries are copied to a temporary table first, so the ledger is read
    once. One hash full join of the active entries with the awards, on the award's key
    (lead, rule, activity, bonus), pairs them up: an entry without an award, or whose
    award is now worth other points, is reversed; an award without an entry worth its
    points is appended. The leads are locked: nobody else writes their entries between
    the two statements.
    """
    model, lo, hi, now, rule_ids = scope.model, scope.lo, scope.hi, scope.now, scope.rule_ids
    rule_filter = "AND e.rule_id = ANY(%s)" if rule_ids is not None else ""
    active_params: list[Any] = [revalued_rules(cursor, model.id, lo, hi), model.id, lo, hi]
    if rule_ids is not None:
        active_params.append(sorted(rule_ids))
    if scope.leads is not None:
        # Leads outside the locked set are left to whoever holds them.
        rule_filter += " AND e.lead_id = ANY(%s)"
        active_params.append(scope.leads)
    active_params += [lo, hi]  # NOT_REVERSED
    half_life = model.half_life_days
    decay = (
        "CASE WHEN p.kind = 'engagement' AND %s::float8 IS NOT NULL THEN "
        "power(0.5::float8, date_part('epoch', %s::timestamptz - p.at) / (%s::float8 * 86400.0)) "
        "ELSE 1.0 END"
    )
    sql = f"""
        WITH pairs AS MATERIALIZED (
            SELECT a.id, a.lead_id, a.model_id, a.rule_id, a.activity_id, a.kind, a.bonus,
                   a.points, a.at,
                   d.lead_id AS d_lead_id, d.rule_id AS d_rule_id,
                   d.activity_id AS d_activity_id, d.bonus AS d_bonus,
                   d.points AS d_points, d.at AS d_at
            FROM scoring_active a
            FULL JOIN scoring_desired d
              ON d.lead_id = a.lead_id AND d.rule_id = a.rule_id AND d.bonus = a.bonus
             AND COALESCE(d.activity_id, 0) = COALESCE(a.activity_id, 0)
            WHERE a.id IS NULL OR d.lead_id IS NULL OR d.points <> a.points
        ),
        reversals AS (
            INSERT INTO scoring_scoreentry
                (lead_id, model_id, rule_id, activity_id, kind, bonus, points, reason, at,
                 created_at, by_id, reversal_of_id)
            SELECT p.lead_id, p.model_id, p.rule_id, p.activity_id, p.kind, p.bonus,
                   -(p.points * {decay}),
                   CASE WHEN p.d_lead_id IS NOT NULL THEN 'Rule changed'
                        ELSE 'No longer applies' END || ': reverses entry ' || p.id,
                   %s, %s, NULL, p.id
            FROM pairs p
            WHERE p.id IS NOT NULL
            RETURNING lead_id, kind, points, at, true AS is_reversal
        ),
        appended AS (
            INSERT INTO scoring_scoreentry
                (lead_id, model_id, rule_id, activity_id, kind, bonus, points, reason, at,
                 created_at, by_id, reversal_of_id)
            SELECT p.d_lead_id, %s, p.d_rule_id, p.d_activity_id,
                   CASE WHEN p.d_activity_id IS NULL THEN 'fit' ELSE 'engagement' END,
                   p.d_bonus, p.d_points, r.reason, p.d_at, %s, NULL, NULL
            FROM pairs p
            JOIN scoring_reasons r ON r.rule_id = p.d_rule_id AND r.bonus = p.d_bonus
            WHERE p.d_lead_id IS NOT NULL
            RETURNING lead_id, kind, points, at, false AS is_reversal
        ),
        changes AS (SELECT * FROM reversals UNION ALL SELECT * FROM appended)
        INSERT INTO scoring_delta
        SELECT lead_id,
               COALESCE(sum(points) FILTER (WHERE kind = 'fit'), 0),
               COALESCE(sum(points * CASE WHEN %s::float8 IS NULL THEN 1.0 ELSE power(0.5::float8,
                   GREATEST(date_part('epoch', %s::timestamptz - at), 0)
                   / (%s::float8 * 86400.0)) END) FILTER (WHERE kind = 'engagement'), 0),
               bool_or(is_reversal AND kind = 'engagement'),
               max(at) FILTER (WHERE NOT is_reversal AND kind = 'engagement'),
               count(*) FILTER (WHERE is_reversal),
               count(*) FILTER (WHERE NOT is_reversal)
        FROM changes GROUP BY lead_id
    """
    cursor.execute("SET LOCAL enable_nestloop = off")  # see NOT_REVERSED
    cursor.execute(f"INSERT INTO scoring_active {_active_entries(rule_filter)}", active_params)
    cursor.execute("RESET enable_nestloop")
    params = [
        half_life,
        now,
        half_life,
        now,
        now,
        model.id,
        now,
        half_life,
        now,
        half_life,
    ]
    # Without statistics on the temporary tables the planner sorts both sides for a
    # merge join; one hash of the active entries costs about half as much.
    cursor.execute("SET LOCAL enable_mergejoin = off")
    cursor.execute(sql, params)
    cursor.execute("RESET enable_mergejoin")
    cursor.execute(
        "INSERT INTO scoring_touched SELECT lead_id FROM scoring_delta ON CONFLICT DO NOTHING"
    )
    cursor.execute(
        "SELECT COALESCE(sum(reversed), 0), COALESCE(sum(appended), 0) FROM scoring_delta"
    )
    reversed_, appended = cursor.fetchone()
    cursor.execute("ANALYZE scoring_delta")
    return reversed_, appended


def revalue(cursor: Any, scope: Scope, rule_id: int, points: float, reason: str) -> int:
    """Append one revaluation entry for each of the scope's leads holding awards of the
    rule not worth ``points`` yet (``scoring.revaluations``), worth the difference they
    make now, and record it as the lead's delta; how many entries it wrote.

    Reads the rule's entries of the range through the index ``(rule, lead)``, and the
    leads' revaluations of it through their partial index; writes nothing per award.
    """
    model, lo, hi, now = scope.model, scope.lo, scope.hi, scope.now
    half_life = model.half_life_days
    # The awards' effective points as ``effective_points_sql`` defines them, but through
    # one hash join with each lead's latest revaluation of the rule: a change reads every
    # award of the rule, and a lookup an award would cost an index probe each.
    sql = f"""
        WITH latest AS (
            SELECT DISTINCT ON (v.lead_id) v.lead_id, v.id, v.revalued_to
            FROM scoring_scoreentry v
            WHERE v.lead_id = ANY(%s) AND v.rule_id = %s AND v.revalued_to IS NOT NULL
              AND v.model_id = %s
            ORDER BY v.lead_id, v.id DESC
        ),
        awards AS (
            SELECT e.lead_id, e.kind, e.at,
                   CASE WHEN l.id > e.id THEN l.revalued_to ELSE e.points END AS points
            FROM scoring_scoreentry e
            LEFT JOIN latest l ON l.lead_id = e.lead_id
            WHERE e.rule_id = %s AND e.lead_id BETWEEN %s AND %s AND e.lead_id = ANY(%s)
              AND e.model_id = %s AND e.kind IN ('fit', 'engagement') AND NOT e.bonus
              AND e.reversal_of_id IS NULL AND e.revalued_to IS NULL
              AND {NOT_REVERSED.format(lo="%s", hi="%s")}
        ),
        moved AS (
            SELECT lead_id, kind, count(*) AS matches, min(points) AS low,
                   max(points) AS high,
                   sum((%s::float8 - points) * CASE WHEN kind = 'engagement'
                       AND %s::float8 IS NOT NULL THEN power(0.5::float8,
                       GREATEST(date_part('epoch', %s::timestamptz - at), 0)
                       / (%s::float8 * 86400.0)) ELSE 1.0 END) AS value
            FROM awards WHERE points <> %s::float8
            GROUP BY lead_id, kind
        ),
        written AS (
            INSERT INTO scoring_scoreentry
                (lead_id, model_id, rule_id, activity_id, kind, bonus, points, reason, at,
                 created_at, by_id, reversal_of_id, revalued_to)
            SELECT lead_id, %s, %s, NULL, kind, false, value,
                   left(%s || ' on ' || matches
                        || CASE WHEN matches = 1 THEN ' match' ELSE ' matches' END
                        || CASE WHEN low = high THEN ', from ' || low ELSE '' END
                        || ' to ' || %s::float8 || ' points', 300),
                   %s, %s, NULL, NULL, %s
            FROM moved
            RETURNING lead_id, kind, points
        )
        INSERT INTO scoring_delta
        SELECT lead_id,
               COALESCE(sum(points) FILTER (WHERE kind = 'fit'), 0),
               COALESCE(sum(points) FILTER (WHERE kind = 'engagement'), 0),
               false, NULL, 0, count(*)
        FROM written GROUP BY lead_id
    """
    leads = scope.leads or []
    params = [
        *[leads, rule_id, model.id],
        *[rule_id, lo, hi, leads, model.id, lo, hi],
        *[points, half_life, now, half_life, points],
        *[model.id, rule_id, reason, points, now, now, points],
    ]
    cursor.execute(sql, params)
    written = cursor.rowcount
    cursor.execute(
        "INSERT INTO scoring_touched SELECT lead_id FROM scoring_delta ON CONFLICT DO NOTHING"
    )
    cursor.execute("ANALYZE scoring_delta")
    return written

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
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .decay import decay_params, decay_sql
from .regex_dialects import postgres_regex
from .rules import ENGAGEMENT, FIT, RuleSpec
from .ruleset import CompiledModel
from .sql import activity_test, fit_condition

DESIRED_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS scoring_desired (
    lead_id bigint NOT NULL,
    rule_id bigint NOT NULL,
    activity_id bigint,
    bonus boolean NOT NULL,
    points float8 NOT NULL,
    at timestamptz NOT NULL
) ON COMMIT DELETE ROWS
"""
# The reason each rule writes, looked up only for the awards a rescore appends: the
# awards themselves carry none, so the rows a range sorts, hashes and stores stay narrow.
REASONS_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS scoring_reasons (
    rule_id bigint NOT NULL,
    bonus boolean NOT NULL,
    reason varchar(300) NOT NULL,
    PRIMARY KEY (rule_id, bonus)
) ON COMMIT DELETE ROWS
"""
DELTA_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS scoring_delta (
    lead_id bigint PRIMARY KEY,
    fit float8 NOT NULL,
    engagement float8 NOT NULL,
    engagement_reversed boolean NOT NULL,
    last_appended timestamptz,
    reversed int NOT NULL,
    appended int NOT NULL
) ON COMMIT DELETE ROWS
"""
ACTIVE_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS scoring_active (
    id bigint NOT NULL,
    lead_id bigint NOT NULL,
    model_id bigint NOT NULL,
    rule_id bigint,
    activity_id bigint,
    kind varchar(12) NOT NULL,
    bonus boolean NOT NULL,
    points float8 NOT NULL,
    at timestamptz NOT NULL
) ON COMMIT DELETE ROWS
"""
TOUCHED_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS scoring_touched (lead_id bigint PRIMARY KEY) ON COMMIT DELETE ROWS
"""


# The plans of a rescore's statements depend on these tables' statistics, which go
# stale as the rescore itself writes them (a first rescore writes millions of entries).
STATISTICS_TABLES = ["scoring_scoreentry", "scoring_leadscore"]
STALE_SHARE = 0.2


def refresh_statistics() -> list[str]:
    """ANALYZE the scoring tables where more than a fifth of the rows changed since the
    last ANALYZE; returns their names.

    Autovacuum does this on its own schedule, and not at all where it is switched off;
    with stale statistics the planner takes the ledger for nearly empty and scans the
    whole of it for every range (seconds each) instead of the range's entries.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(%s) "
            "AND n_mod_since_analyze > 1000 + %s * n_live_tup",
            [STATISTICS_TABLES, STALE_SHARE],
        )
        stale = [name for (name,) in cursor.fetchall()]
        for name in stale:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(name)}")
    return stale


@dataclass(frozen=True)
class Scope:
    """One id range of one model at one moment: what every statement of a rescore shares."""

    model: CompiledModel
    segment: str
    segment_params: list[Any]
    lo: int
    hi: int
    now: datetime
    rule_ids: set[int] | None
    leads: list[int] | None = None  # only these leads of the range (locked), or all


@dataclass
class RangeResult:
    leads: int
    reversed: int
    appended: int
    changed: list[tuple[int, int, str]]  # lead id, old score, old band
    surges: list[tuple[int, float]]  # lead id, points earned within the surge window


def _segment_clause(
    model: CompiledModel, segment_ids: list[int], lead: str = "l.id"
) -> tuple[str, list[Any]]:
    if model.is_default:
        return "TRUE", []
    return (
        "EXISTS (SELECT 1 FROM leads_lead_product_interests s "
        f"WHERE s.lead_id = {lead} AND s.productline_id = ANY(%s))",
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
        cursor.execute(REASONS_TABLE)
        cursor.execute(TOUCHED_TABLE)
        cursor.execute(DELTA_TABLE)
        cursor.execute(ACTIVE_TABLE)
        cursor.execute(
            "TRUNCATE scoring_desired, scoring_reasons, scoring_touched, scoring_delta, "
            "scoring_active"
        )
        _store_reasons(cursor, rules)
        # The window sorts of a range fit in memory instead of spilling to disk.
        cursor.execute("SELECT set_config('work_mem', %s, true)", [settings.SCORING_WORK_MEM])
        # JIT-compiling these statements costs about 200 ms each and saves less than that:
        # each range is one pass over a few hundred thousand rows.
        cursor.execute("SELECT set_config('jit', 'off', true)")
        fit = [r for r in rules if r.kind == FIT]
        engagement = [r for r in rules if r.kind == ENGAGEMENT]
        types = sorted({r.activity_type for r in engagement})
        only: list[int] | None = None
        if rule_ids is not None and not fit:
            # A change to engagement rules can only touch leads with activities of their
            # types or entries from them: found through indexes, so the work follows the
            # rule's matches, not the number of leads or activities.
            cursor.execute(
                "SELECT lead_id FROM leads_activity "
                "WHERE type = ANY(%s) AND lead_id BETWEEN %s AND %s "
                "UNION SELECT lead_id FROM scoring_scoreentry "
                "WHERE rule_id = ANY(%s) AND lead_id BETWEEN %s AND %s",
                [types, lo, hi, sorted(rule_ids), lo, hi],
            )
            only = sorted(lead_id for (lead_id,) in cursor.fetchall())
            if not only:
                return RangeResult(0, 0, 0, [], [])
        # Lock the leads so real-time scoring waits for this chunk or runs after it.
        if only is None:
            cursor.execute(
                "SELECT id, score, band FROM leads_lead WHERE id BETWEEN %s AND %s "
                "ORDER BY id FOR UPDATE",
                [lo, hi],
            )
        else:
            cursor.execute(
                "SELECT id, score, band FROM leads_lead WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                [only],
            )
        before = {lead_id: (score, band) for lead_id, score, band in cursor.fetchall()}
        # Once locked, not before: scoring that committed while this range waited used a
        # later "now", and its awards must not look like the future (and be reversed).
        now = max(now, timezone.now())
        if fit:
            sql, params = fit_awards_sql(fit, (segment, segment_params), lo, hi, now)
            cursor.execute(f"INSERT INTO scoring_desired {sql}", params)
        if engagement:
            activity_segment = _segment_clause(model, segment_ids, "a.lead_id")
            sql, params = engagement_awards_sql(
                engagement, activity_segment, lo, hi, now, leads=only
            )
            cursor.execute(f"INSERT INTO scoring_desired {sql}", params)
        scope = Scope(model, segment, segment_params, lo, hi, now, rule_ids, only)
        reversed_, appended = _apply_diff(cursor, scope)
        gone: list[int] = []
        leads = _recompute_states(cursor, scope, gone)
        surges = _mark_surges(cursor, scope)
        changed = _materialize(cursor, scope, before, gone)
    return RangeResult(leads, reversed_, appended, changed, surges)


def _store_reasons(cursor: Any, rules: list[RuleSpec]) -> None:
    """The frozen reason of each rule's award and bonus, for the entries appended."""
    rows = [(rule.id, False, rule.description[:300]) for rule in rules]
    rows += [
        (rule.id, True, f"Bonus: {rule.description}"[:300])
        for rule in rules
        if rule.kind == ENGAGEMENT and rule.bonus_count and rule.bonus_points
    ]
    cursor.execute(
        "INSERT INTO scoring_reasons "
        "SELECT * FROM unnest(%s::bigint[], %s::boolean[], %s::varchar[])",
        [[row[0] for row in rows], [row[1] for row in rows], [row[2] for row in rows]],
    )


def fit_awards_sql(
    rules: list[RuleSpec], segment: tuple[str, list[Any]], lo: int, hi: int, now: datetime
) -> tuple[str, list[Any]]:
    """One scan of the leads selects the awards of every fit rule."""
    rows, params = [], []
    for rule in rules:
        condition, condition_params = fit_condition(rule)
        rows.append(f"(%s::bigint, %s::float8, {condition})")
        params += [rule.id, float(rule.points), *condition_params]
    segment_sql, segment_params = segment
    sql = f"""
        SELECT l.id AS lead_id, r.rule_id, NULL::bigint AS activity_id, false AS bonus,
               r.points, %s::timestamptz AS at
        FROM leads_lead l LEFT JOIN leads_company c ON c.id = l.company_id
        CROSS JOIN LATERAL (VALUES {", ".join(rows)}) AS r(rule_id, points, ok)
        WHERE r.ok AND {segment_sql} AND l.id BETWEEN %s AND %s
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
                SELECT a.lead_id, a.id, a.occurred_at, r.rule_id, r.day_cap, r.lead_cap,
                       r.bonus_count, (a.occurred_at AT TIME ZONE 'UTC')::date AS day,
                       row_number() OVER (
                           PARTITION BY a.lead_id, r.rule_id,
                                        (a.occurred_at AT TIME ZONE 'UTC')::date
                           ORDER BY a.occurred_at, a.id) AS n_day
                FROM leads_activity a JOIN rules r ON r.type = a.type
                WHERE a.lead_id BETWEEN %s AND %s AND a.occurred_at <= %s
                  AND {segment_sql}{only}
                  AND {match_sql}
            ) d
        ) m
        JOIN rules r ON r.rule_id = m.rule_id
        CROSS JOIN LATERAL (VALUES (false), (true)) AS b(bonus)
        WHERE CASE WHEN b.bonus THEN m.n_day = m.bonus_count
                   ELSE m.n_day <= m.day_cap AND m.n_lead <= m.lead_cap END
    """
    only_params: list[Any] = []
    if leads is not None:
        only_params = [leads, sorted({rule.activity_type for rule in rules})]
    return sql, [*params, lo, hi, now, *segment_params, *only_params, *match_params]


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
    return f"""
        SELECT e.id, e.lead_id, e.model_id, e.rule_id, e.activity_id, e.kind, e.bonus,
               e.points, e.at
        FROM scoring_scoreentry e
        WHERE e.model_id = %s AND e.lead_id BETWEEN %s AND %s
          AND e.kind IN ('fit', 'engagement') {rule_filter}
          AND e.reversal_of_id IS NULL
          AND {NOT_REVERSED.format(lo="%s", hi="%s")}
    """


def _apply_diff(cursor: Any, scope: Scope) -> tuple[int, int]:
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
    active_params: list[Any] = [model.id, lo, hi]
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
        "power(0.5, EXTRACT(EPOCH FROM (%s::timestamptz - p.at)) / (%s::float8 * 86400.0)) "
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
               COALESCE(sum(points * CASE WHEN %s::float8 IS NULL THEN 1.0 ELSE power(0.5,
                   GREATEST(EXTRACT(EPOCH FROM (%s::timestamptz - at)), 0)
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


def _score_columns(model: CompiledModel, now: datetime) -> tuple[str, list[Any]]:
    """CTEs ``effective`` and ``scored`` over a relation ``sums`` (lead_id, fit,
    adjustment, engagement at now, last_engaged_at): the same formula as
    ``scoring.engine.state_from``."""
    t = model.thresholds
    sql = """
        effective AS (
            SELECT s.*, s.engagement - LEAST(
                CASE WHEN s.last_engaged_at IS NULL THEN 0 ELSE %s * floor(GREATEST(
                    EXTRACT(EPOCH FROM (%s::timestamptz - s.last_engaged_at)), 0)
                    / 604800.0) END,
                GREATEST(s.engagement, 0)) AS eff
            FROM sums s
        ),
        scored AS (
            SELECT e.*, LEAST(floor(e.fit + e.adjustment + e.eff + 0.5), %s) AS score,
                   e.fit + e.adjustment AS total_fit
            FROM effective e
        ),
        banded AS (
            SELECT s.*,
                   CASE WHEN score >= %s THEN 'hot' WHEN score >= %s THEN 'warm'
                        ELSE 'cold' END AS band,
                   CASE WHEN total_fit >= %s THEN 'A' WHEN total_fit >= %s THEN 'B'
                        WHEN total_fit >= %s THEN 'C' ELSE 'D' END AS grade,
                   CASE WHEN total_fit >= %s AND eff >= %s THEN 'hot'
                        WHEN total_fit >= %s THEN 'target'
                        WHEN eff >= %s THEN 'researcher' ELSE 'cold' END AS quadrant
            FROM scored s
        )
    """
    params = [
        model.idle_week_penalty,
        now,
        t.max_points if t.max_points is not None else 2**31 - 1,
        t.hot,
        t.warm,
        t.grade_a,
        t.grade_b,
        t.grade_c,
        t.grade_b,
        t.engaged,
        t.grade_b,
        t.engaged,
    ]
    return sql, params


def _recompute_states(cursor: Any, scope: Scope, gone: list[int]) -> int:
    """Bring ``LeadScore`` up to date for the leads the rescore touched.

    Leads that left the model's segment lose their score in it and are added to ``gone``.

    Where the stored state is current (same decay settings), the ledger rows just
    written are its exact delta: ``e(now) = e(t) * decay(now - t) + new``. Leads
    without a current state, or (with an idle penalty) whose engagement lost an award,
    which may move the last engagement time back, are summed from the ledger instead.
    """
    count = _recompute_from_ledger(cursor, scope)
    count += _apply_deltas(cursor, scope)
    model, segment, lo, hi = scope.model, scope.segment, scope.lo, scope.hi
    if scope.rule_ids is None:
        leads = f"SELECT l.id FROM leads_lead l WHERE l.id BETWEEN %s AND %s AND {segment}"
        lead_params = [lo, hi, *scope.segment_params]
        # Leads that left the segment keep no score in this model; touching them lets
        # ``_materialize`` choose their primary score again.
        cursor.execute(
            "DELETE FROM scoring_leadscore WHERE model_id = %s "
            f"AND lead_id BETWEEN %s AND %s AND lead_id NOT IN ({leads}) RETURNING lead_id",
            [model.id, lo, hi, *lead_params],
        )
        gone.extend(lead_id for (lead_id,) in cursor.fetchall())
        cursor.execute(
            "INSERT INTO scoring_touched SELECT unnest(%s::bigint[]) ON CONFLICT DO NOTHING",
            [gone],
        )
        # Thresholds or bands may have changed: every lead's materialized score is checked.
        cursor.execute(
            "INSERT INTO scoring_touched SELECT lead_id FROM scoring_leadscore "
            "WHERE model_id = %s AND lead_id BETWEEN %s AND %s ON CONFLICT DO NOTHING",
            [model.id, lo, hi],
        )
    return count


def _recompute_from_ledger(cursor: Any, scope: Scope) -> int:
    model, segment, lo, hi, now = scope.model, scope.segment, scope.lo, scope.hi, scope.now
    stale = (
        "SELECT {lead} AS id FROM {source} "
        "LEFT JOIN scoring_leadscore ls ON ls.lead_id = {lead} AND ls.model_id = %s "
        "WHERE {where} (ls.id IS NULL OR ls.decay_version <> %s)"
    )
    if scope.rule_ids is None:
        targets = stale.format(
            lead="l.id",
            source="leads_lead l",
            where=f"l.id BETWEEN %s AND %s AND {segment} AND",
        )
        target_params = [model.id, lo, hi, *scope.segment_params, model.decay_version]
    else:
        targets = stale.format(lead="d.lead_id", source="scoring_delta d", where="")
        target_params = [model.id, model.decay_version]
    if model.idle_week_penalty:
        # Losing an award may move the last engagement back, which the idle penalty reads.
        targets += " UNION SELECT lead_id FROM scoring_delta WHERE engagement_reversed"
    hl = model.half_life_days
    score_sql, score_params = _score_columns(model, now)
    sql = f"""
        WITH targets AS ({targets}),
        sums AS (
            SELECT t.id AS lead_id,
                   COALESCE(sum(e.points) FILTER (WHERE e.kind = 'fit'), 0) AS fit,
                   COALESCE(sum(e.points) FILTER (WHERE e.kind = 'manual'), 0) AS adjustment,
                   COALESCE(sum(e.points * CASE WHEN %s::float8 IS NULL THEN 1.0 ELSE
                       power(0.5, GREATEST(EXTRACT(EPOCH FROM (%s::timestamptz - e.at)), 0)
                             / (%s::float8 * 86400.0)) END)
                       FILTER (WHERE e.kind = 'engagement'), 0) AS engagement,
                   max(e.at) FILTER (WHERE e.kind = 'engagement') AS last_engaged_at
            FROM targets t
            LEFT JOIN scoring_scoreentry e
              ON e.lead_id = t.id AND e.model_id = %s
             AND (e.kind = 'manual' OR (e.reversal_of_id IS NULL AND {REVERSAL_PROBE}))
            GROUP BY t.id
        ),
        {score_sql}
        INSERT INTO scoring_leadscore
            (lead_id, model_id, fit, adjustment, engagement, engagement_at, last_engaged_at,
             score, band, grade, quadrant, is_primary, surged_at, decay_version, updated_at)
        SELECT lead_id, %s, fit, adjustment, engagement, %s, last_engaged_at, score,
               band, grade, quadrant, false, NULL, %s, %s
        FROM banded
        ON CONFLICT (lead_id, model_id) DO UPDATE SET
            fit = EXCLUDED.fit, adjustment = EXCLUDED.adjustment,
            engagement = EXCLUDED.engagement, engagement_at = EXCLUDED.engagement_at,
            last_engaged_at = EXCLUDED.last_engaged_at, score = EXCLUDED.score,
            band = EXCLUDED.band, grade = EXCLUDED.grade, quadrant = EXCLUDED.quadrant,
            decay_version = EXCLUDED.decay_version, updated_at = EXCLUDED.updated_at
    """
    params = [
        *target_params,
        hl,
        now,
        hl,
        model.id,
        *score_params,
        model.id,
        now,
        model.decay_version,
        now,
    ]
    cursor.execute(sql, params)
    return cursor.rowcount


def _apply_deltas(cursor: Any, scope: Scope) -> int:
    """``e(now) = e(t) * decay(now - t) + new`` for leads whose state is current."""
    model, now = scope.model, scope.now
    hl = model.half_life_days
    score_sql, score_params = _score_columns(model, now)
    sql = f"""
        WITH sums AS (
            SELECT ls.lead_id, ls.fit + d.fit AS fit, ls.adjustment,
                   ls.engagement * CASE WHEN %s::float8 IS NULL THEN 1.0 ELSE power(0.5,
                       GREATEST(EXTRACT(EPOCH FROM (%s::timestamptz - ls.engagement_at)), 0)
                       / (%s::float8 * 86400.0)) END + d.engagement AS engagement,
                   CASE WHEN d.last_appended IS NULL THEN ls.last_engaged_at
                        ELSE GREATEST(ls.last_engaged_at, d.last_appended) END
                       AS last_engaged_at
            FROM scoring_delta d
            JOIN scoring_leadscore ls ON ls.lead_id = d.lead_id AND ls.model_id = %s
            WHERE ls.decay_version = %s AND ls.updated_at < %s
              AND ls.lead_id BETWEEN %s AND %s
        ),
        {score_sql}
        UPDATE scoring_leadscore ls SET
            fit = b.fit, engagement = b.engagement, engagement_at = %s,
            last_engaged_at = b.last_engaged_at, score = b.score, band = b.band,
            grade = b.grade, quadrant = b.quadrant, updated_at = %s
        FROM banded b
        WHERE ls.lead_id = b.lead_id AND ls.model_id = %s AND ls.lead_id BETWEEN %s AND %s
    """
    bounds = [scope.lo, scope.hi]
    params = [
        *[hl, now, hl, model.id, model.decay_version, now, *bounds],
        *[*score_params, now, now, model.id, *bounds],
    ]
    cursor.execute(sql, params)
    return cursor.rowcount


def _mark_surges(cursor: Any, scope: Scope) -> list[tuple[int, float]]:
    """Leads that earned engagement dated within the model's surge window and now have
    its surge points there: the same test as ``Batch._state``, at most once per window.

    Only the few leads with an entry appended inside the window are read, and whether
    each of their entries was reversed is one index lookup (``REVERSAL_PROBE``): this
    runs after the range's own reversals were written.
    """
    model, now = scope.model, scope.now
    if not model.surge_points:
        return []
    since = now - timedelta(hours=model.surge_hours)
    cursor.execute(
        f"""
        WITH recent AS (
            SELECT e.lead_id, sum(e.points) AS points
            FROM scoring_delta d
            JOIN scoring_scoreentry e
              ON e.lead_id = d.lead_id AND e.model_id = %s AND e.at >= %s
            WHERE d.last_appended >= %s AND d.lead_id BETWEEN %s AND %s
              AND e.kind = 'engagement' AND e.points > 0 AND e.reversal_of_id IS NULL
              AND {REVERSAL_PROBE}
            GROUP BY e.lead_id
            HAVING sum(e.points) >= %s
        )
        UPDATE scoring_leadscore ls SET surged_at = %s
        FROM recent
        WHERE ls.lead_id = recent.lead_id AND ls.model_id = %s
          AND (ls.surged_at IS NULL OR ls.surged_at < %s)
        RETURNING ls.lead_id, recent.points
        """,
        [
            *[model.id, since, since, scope.lo, scope.hi],
            *[model.surge_points, now, model.id, since],
        ],
    )
    return sorted(cursor.fetchall())


def _materialize(
    cursor: Any, scope: Scope, before: dict[int, tuple[int, str]], gone: list[int]
) -> list[tuple[int, int, str]]:
    """Mark each touched lead's primary score and copy it onto the lead.

    Returns (lead id, old score, old band) for every lead whose score or band changed.
    Every touched lead lies in the scope's id range, which each statement states, so
    the leads and their scores are read through their indexes, not in full.
    """
    now, lo, hi = scope.now, scope.lo, scope.hi
    cursor.execute("ANALYZE scoring_touched")
    cursor.execute(
        """
        UPDATE scoring_leadscore ls SET is_primary = (ls.model_id = best.model_id), updated_at = %s
        FROM (
            SELECT DISTINCT ON (x.lead_id) x.lead_id, x.model_id
            FROM scoring_leadscore x JOIN scoring_scoringmodel m ON m.id = x.model_id
            WHERE x.lead_id IN (SELECT lead_id FROM scoring_touched) AND m.status = 'active'
              AND x.lead_id BETWEEN %s AND %s
            ORDER BY x.lead_id, m.priority DESC, m.is_default DESC, m.id
        ) best
        WHERE ls.lead_id = best.lead_id AND ls.is_primary <> (ls.model_id = best.model_id)
          AND ls.lead_id BETWEEN %s AND %s
        """,
        [now, lo, hi, lo, hi],
    )
    cursor.execute(
        decay_sql(postgres=True, touched_only=True),
        decay_params(now, postgres=True, lo=lo, hi=hi),
    )
    # A lead no active model scores any more has no score, as in the per-lead path.
    if gone:
        cursor.execute(
            """
            UPDATE leads_lead l SET score = 0, fit_score = 0, engagement_score = 0,
                   engagement_at = %s, band = 'cold', grade = 'D', quadrant = 'cold'
            WHERE l.id = ANY(%s)
              AND NOT EXISTS (SELECT 1 FROM scoring_leadscore ls
                              WHERE ls.lead_id = l.id AND ls.is_primary)
            """,
            [now, gone],
        )
    cursor.execute(
        "SELECT id, score, band FROM leads_lead "
        "WHERE id IN (SELECT lead_id FROM scoring_touched) AND id BETWEEN %s AND %s",
        [lo, hi],
    )
    return [
        (lead_id, *before[lead_id])
        for lead_id, score, band in cursor.fetchall()
        if lead_id in before and before[lead_id] != (score, band)
    ]

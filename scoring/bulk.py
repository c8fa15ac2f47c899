"""Set-based rescoring on PostgreSQL: the ledger diff and the scores in a few statements.

``rescore_range`` does for every lead in an id range what ``scoring.engine.Batch``
does for a handful, without loading rows into Python:

1. the awards the rules give go into a temporary table, one statement per rule,
   with window functions for the per-day and per-lead caps and the bonus;
2. one statement appends a reversal for every active ledger entry no award
   supports any more, and an entry for every award the ledger lacks;
3. one upsert recomputes each touched lead's ``LeadScore`` from its active entries
   and the decay formula, and one update copies the primary score onto the lead;
   the touched leads' companies then have their account scores summed again
   (``scoring.accounts``), unless the caller sums every account once at its end (a
   rescore job: each range's leads belong to companies whose people are spread over
   every range, so summing them range by range would read every lead once a range).

Restricting the rules to one (``rule_ids``) turns it into the delta of a single
rule change: only that rule's matches and the leads they touch are visited.

This module holds the range's frame (temporary tables, locks, statistics); the steps
are ``scoring.bulk_awards`` (1), ``scoring.bulk_ledger`` (2) and ``scoring.bulk_states``
(3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .accounts import accounts_refresh
from .bulk_awards import engagement_awards_sql, fit_awards_sql
from .bulk_ledger import apply_diff, revalue
from .bulk_scope import Scope
from .bulk_states import mark_surges, materialize, recompute_states
from .lead_sets import segment_sql
from .revaluations import revaluable
from .rules import ENGAGEMENT, FIT, RuleSpec
from .ruleset import CompiledModel

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
# The leads whose score the range summed from the ledger: their delta is in that sum.
RECOMPUTED_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS scoring_recomputed (lead_id bigint PRIMARY KEY)
ON COMMIT DELETE ROWS
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


@dataclass
class RangeResult:
    leads: int
    reversed: int
    appended: int
    changed: list[tuple[int, int | None, str]]  # lead id, old score (None: none), old band
    surges: list[tuple[int, float]]  # lead id, points earned within the surge window
    # The range touched more companies than ``accounts_at_most``: their accounts were not
    # summed, and the caller sums every company.
    accounts_left: bool = False


def _segment_clause(
    model: CompiledModel, segment_ids: list[int], lead: str = "l.id"
) -> tuple[str, list[Any]]:
    return segment_sql(is_default=model.is_default, segment_ids=segment_ids, lead=lead)


def rescore_range(
    *,
    model: CompiledModel,
    segment_ids: list[int],
    lo: int,
    hi: int,
    now: datetime,
    rule_ids: set[int] | None = None,
    accounts_at_most: int | None = None,
    points_before: int | None = None,
) -> RangeResult:
    """Rescore leads ``lo <= id <= hi`` in ``model``; call inside ``transaction.atomic()``.

    ``points_before``: only the points of the one rule of ``rule_ids`` changed, from
    these; when that only revalues its awards (``revaluations.revaluable``), the range
    appends one revaluation entry a lead instead of deriving the rule's awards again.

    The account scores of the companies whose leads it rescored are summed in the same
    transaction, unless there are more than ``accounts_at_most`` of them: then they are
    left to the caller (``RangeResult.accounts_left``)."""
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
        cursor.execute(RECOMPUTED_TABLE)
        cursor.execute(DELTA_TABLE)
        cursor.execute(ACTIVE_TABLE)
        cursor.execute(
            "TRUNCATE scoring_desired, scoring_reasons, scoring_touched, scoring_recomputed, "
            "scoring_delta, scoring_active"
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
        revalued = rules[0] if len(rules) == 1 and revaluable(rules[0], points_before) else None
        if revalued is not None:
            # Only the leads holding entries of the rule can hold awards to revalue.
            cursor.execute(
                "SELECT DISTINCT lead_id FROM scoring_scoreentry "
                "WHERE rule_id = %s AND lead_id BETWEEN %s AND %s",
                [revalued.id, lo, hi],
            )
            only = sorted(lead_id for (lead_id,) in cursor.fetchall())
            if not only:
                return RangeResult(0, 0, 0, [], [])
        elif rule_ids is not None and not fit:
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
        # Lock the leads so real-time scoring waits for this chunk or runs after it. A
        # lead without a score in any model shows 0 and is read as having none: its first
        # score crosses every threshold it reaches (``lead_scoring.crossed``).
        shown = (
            "SELECT id, CASE WHEN score = 0 AND NOT EXISTS (SELECT 1 FROM scoring_leadscore s "
            "WHERE s.lead_id = leads_lead.id) THEN NULL ELSE score END, band FROM leads_lead"
        )
        if only is None:
            cursor.execute(f"{shown} WHERE id BETWEEN %s AND %s ORDER BY id FOR UPDATE", [lo, hi])
        else:
            cursor.execute(f"{shown} WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [only])
        before = {lead_id: (score, band) for lead_id, score, band in cursor.fetchall()}
        # Once locked, not before: scoring that committed while this range waited used a
        # later "now", and its awards must not look like the future (and be reversed).
        now = max(now, timezone.now())
        scope = Scope(model, segment, segment_params, lo, hi, now, rule_ids, only)
        if revalued is not None:
            reason = f"{revalued.description[:200]}: points changed"
            reversed_, appended = 0, revalue(cursor, scope, revalued.id, revalued.points, reason)
        else:
            steps = (fit, engagement, (segment, segment_params))
            reversed_, appended = _derive(cursor, scope, segment_ids, *steps)
        gone: list[int] = []
        leads = recompute_states(cursor, scope, gone)
        surges = mark_surges(cursor, scope)
        changed = materialize(cursor, scope, before, gone)
        cursor.execute(
            "SELECT DISTINCT company_id FROM leads_lead WHERE company_id IS NOT NULL "
            "AND id IN (SELECT lead_id FROM scoring_touched) AND id BETWEEN %s AND %s",
            [lo, hi],
        )
        companies = [company_id for (company_id,) in cursor.fetchall()]
    left = accounts_at_most is not None and len(companies) > accounts_at_most
    if not left:
        accounts_refresh(company_ids=companies, now=now)
    return RangeResult(leads, reversed_, appended, changed, surges, accounts_left=left)


def _derive(
    cursor: Any,
    scope: Scope,
    segment_ids: list[int],
    fit: list[RuleSpec],
    engagement: list[RuleSpec],
    segment: tuple[str, list[Any]],
) -> tuple[int, int]:
    """Steps 1 and 2: the rules' awards, and the ledger brought to them; (reversed,
    appended)."""
    lo, hi, now = scope.lo, scope.hi, scope.now
    if fit:
        sql, params = fit_awards_sql(fit, segment, lo, hi, now)
        cursor.execute(f"INSERT INTO scoring_desired {sql}", params)
    if engagement:
        activity_segment = _segment_clause(scope.model, segment_ids, "a.lead_id")
        sql, params = engagement_awards_sql(
            engagement, activity_segment, lo, hi, now, leads=scope.leads
        )
        cursor.execute(f"INSERT INTO scoring_desired {sql}", params)
    return apply_diff(cursor, scope)


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

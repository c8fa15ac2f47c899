"""A candidate version and its live version scored set-based on PostgreSQL, for the preview.

The SQL twin of ``scoring.version_preview``'s per-lead scoring: the awards of each
version's rules (``scoring.bulk_awards``: the statements of the set-based rescore) go
into a temporary table, are summed per lead with the score formula of the rescore
(``scoring.bulk_states.score_columns``: decay, idle penalty, base score, caps, maximum,
band on the score the version decides on) into a temporary table of the leads with both
versions' fit, engagement, score and band, the live predictive model's score, their stage
and outcome, and the counts ``VersionTallies`` keeps are grouped out of it. Only the
closed leads come back one by one (their scores, outcome and date), for the ROC AUC and
the deciles. It writes no ledger entry and no score: the temporary tables live in a
transaction that is rolled back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from .bulk_awards import engagement_awards_sql, fit_awards_sql
from .bulk_states import score_columns
from .lead_sets import segment_sql
from .models import ScoringModel
from .rules import ENGAGEMENT, FIT, RuleSpec
from .ruleset import CompiledModel
from .selectors import RuleReach

AWARDS_TABLE = """
    CREATE TEMP TABLE scoring_preview_awards (
        version smallint NOT NULL, lead_id bigint NOT NULL, rule_id bigint NOT NULL,
        kind varchar(20) NOT NULL, points float8 NOT NULL, at timestamptz NOT NULL,
        bonus boolean NOT NULL
    ) ON COMMIT DROP
"""
SCORES_TABLE = """
    CREATE TEMP TABLE scoring_preview_scores (
        version smallint NOT NULL, lead_id bigint NOT NULL, fit float8 NOT NULL,
        engagement float8 NOT NULL, score int NOT NULL, band varchar(10) NOT NULL,
        predictive int
    ) ON COMMIT DROP
"""
# One row a lead: both versions side by side (rule scores, bands on the decided scores),
# the predictive score both read, the lead's stage, when it came, and its outcome (won,
# and when; lost, and when the last deal was lost; open: NULL), as
# ``scoring.version_preview.lead_outcomes`` reads the deals.
LEADS_TABLE = """
    CREATE TEMP TABLE scoring_preview ON COMMIT DROP AS
    SELECT l.id AS lead_id, l.stage, l.created_at,
           lv.fit AS live_fit, lv.engagement AS live_engagement, lv.score AS live_score,
           lv.band AS live_band,
           cv.fit, cv.engagement, cv.score, cv.band, lv.predictive,
           o.won, o.closed_at
    FROM scoring_preview_scores lv
    JOIN scoring_preview_scores cv ON cv.lead_id = lv.lead_id AND cv.version = 1
    JOIN leads_lead l ON l.id = lv.lead_id
    LEFT JOIN (
        SELECT DISTINCT ON (d.lead_id) d.lead_id, d.status = 'won' AS won,
               COALESCE(d.closed_at, d.created_at) AS closed_at
        FROM leads_deal d WHERE d.status <> 'open'
        ORDER BY d.lead_id, d.status = 'won' DESC, d.closed_at DESC NULLS FIRST, d.id DESC
    ) o ON o.lead_id = l.id
    WHERE lv.version = 0
"""


def segment_clause(model: ScoringModel, lead: str = "l.id") -> tuple[str, list[Any]]:
    """The SQL test that a lead is one ``model`` scores (``lead_sets.segment_leads``)."""
    ids = [] if model.is_default else list(model.segment_product_lines.values_list("pk", flat=True))
    return segment_sql(is_default=model.is_default, segment_ids=ids, lead=lead)


def awards_insert(
    live: CompiledModel, candidate: CompiledModel, segment: ScoringModel, now: datetime
) -> list[tuple[str, list[Any]]]:
    """The statements that put both versions' awards to the leads of ``segment`` into the
    awards table (version 0 the live one's, 1 the candidate's): the rules of both in one
    scan of the leads and one of the activities, told apart by their ids. A candidate's
    rule that differs from a live one in its points only (as tuning mostly does) matches
    the same leads and activities: its awards are the live rule's, with its points, and
    the rows are not read again for it."""
    lo, hi = 0, 2**63 - 1
    statements = []
    twins = _twins(live, candidate)
    fit = [*live.fit_rules, *(r for r in candidate.fit_rules if r.id not in twins)]
    engagement = [
        *live.engagement_rules,
        *(r for r in candidate.engagement_rules if r.id not in twins),
    ]
    mine = sorted(candidate.rules_by_id) or [0]
    into = (
        "INSERT INTO scoring_preview_awards "
        "SELECT CASE WHEN a.rule_id = ANY(%s) THEN 1 ELSE 0 END, a.lead_id, a.rule_id, %s, "
        "a.points, a.at, a.bonus FROM ({sql}) a"
    )
    if fit:
        sql, params = fit_awards_sql(fit, segment_clause(segment), lo, hi, now)
        statements.append((into.format(sql=sql), [mine, FIT, *params]))
    if engagement:
        sql, params = engagement_awards_sql(
            engagement, segment_clause(segment, "a.lead_id"), lo, hi, now
        )
        statements.append((into.format(sql=sql), [mine, ENGAGEMENT, *params]))
    if twins:
        rows, params = [], []
        for rule in (*candidate.fit_rules, *candidate.engagement_rules):
            if rule.id in twins:
                rows.append("(%s::bigint, %s::bigint, %s::float8, %s::float8)")
                params += [twins[rule.id], rule.id, float(rule.points), float(rule.bonus_points)]
        statements.append(
            (
                f"""
                INSERT INTO scoring_preview_awards
                SELECT 1, a.lead_id, t.rule_id, a.kind,
                       CASE WHEN a.bonus THEN t.bonus_points ELSE t.points END, a.at, a.bonus
                FROM scoring_preview_awards a
                JOIN (VALUES {", ".join(rows)}) AS t(live_id, rule_id, points, bonus_points)
                  ON t.live_id = a.rule_id
                WHERE a.version = 0
                """,
                params,
            )
        )
    return statements


def _shape(rule: RuleSpec) -> RuleSpec | None:
    """What a rule's awards depend on but their points: None for a fit rule whose points
    follow a number (per unit), whose awards differ with its points."""
    if rule.kind == FIT and rule.per_unit is not None:
        return None
    bonus = 1 if rule.bonus_count and rule.bonus_points else 0
    return replace(rule, id=0, points=0, description="", bonus_points=bonus)


def _twins(live: CompiledModel, candidate: CompiledModel) -> dict[int, int]:
    """Candidate rule id → a live rule that gives the same leads awards for the same
    activities, with the same caps, windows and bonus count (its points aside)."""
    found: dict[RuleSpec, int] = {}
    for rule in (*live.fit_rules, *live.engagement_rules):
        shape = _shape(rule)
        if shape is not None:
            found.setdefault(shape, rule.id)
    twins = {}
    for rule in (*candidate.fit_rules, *candidate.engagement_rules):
        shape = _shape(rule)
        if shape is not None and shape in found:
            twins[rule.id] = found[shape]
    return twins


def sums_sql(
    version: int,
    model: CompiledModel,
    segment: ScoringModel,
    now: datetime,
    predictive_of: ScoringModel | None = None,
) -> tuple[str, list[Any]]:
    """A SELECT of each lead of ``segment`` with its score in ``model`` from the awards
    table: fit, manual adjustments of that model, engagement decayed to ``now`` and the
    last engagement, put through the rescore's score formula, banded on the score the
    model decides on with the lead's predictive score in ``predictive_of`` (None: none)."""
    segment_sql, segment_params = segment_clause(segment)
    hl = model.half_life_days
    formula, formula_params = score_columns(model, now)
    # Only a version deciding on the predictive score reads it (one join).
    predictive, joined, predictive_params = "NULL::integer", "", []
    if predictive_of is not None:
        predictive = "p.predictive_score"
        joined = "LEFT JOIN scoring_leadscore p ON p.lead_id = l.id AND p.model_id = %s"
        predictive_params = [predictive_of.pk]
    sql = f"""
        WITH awards AS (
            SELECT a.lead_id,
                   sum(a.points) FILTER (WHERE a.kind = 'fit') AS fit,
                   sum(a.points * CASE WHEN %s::float8 IS NULL THEN 1.0 ELSE
                       power(0.5::float8, GREATEST(date_part('epoch', %s::timestamptz - a.at), 0)
                             / (%s::float8 * 86400.0)) END)
                       FILTER (WHERE a.kind = 'engagement') AS engagement,
                   max(a.at) FILTER (WHERE a.kind = 'engagement') AS last_engaged_at
            FROM scoring_preview_awards a WHERE a.version = %s
            GROUP BY a.lead_id
        ),
        adjustments AS (
            SELECT e.lead_id, sum(e.points) AS total FROM scoring_scoreentry e
            WHERE e.model_id = %s AND e.kind = 'manual' GROUP BY e.lead_id
        ),
        sums AS (
            SELECT l.id AS lead_id, COALESCE(a.fit, 0) AS fit,
                   COALESCE(m.total, 0) AS adjustment,
                   COALESCE(a.engagement, 0) AS engagement, a.last_engaged_at,
                   {predictive} AS predictive
            FROM leads_lead l
            LEFT JOIN awards a ON a.lead_id = l.id
            LEFT JOIN adjustments m ON m.lead_id = l.id
            {joined}
            WHERE {segment_sql}
        ),
        {formula}
        SELECT lead_id, total_fit, shown_eff, score, band, predictive FROM banded
    """
    params = [hl, now, hl, version, model.id, *predictive_params, *segment_params]
    return sql, [*params, *formula_params]


def score_versions_sql(
    *,
    live: CompiledModel,
    candidate: CompiledModel,
    segment: ScoringModel,
    now: datetime,
    predictive_of: ScoringModel | None = None,
) -> None:
    """Fill the temporary table ``scoring_preview`` (``LEADS_TABLE``) and keep the awards
    in ``scoring_preview_awards``; both versions read the predictive scores of
    ``predictive_of`` (None: none). Call inside a transaction that is rolled back."""
    with connection.cursor() as cursor:
        # As the set-based rescore: the window sorts fit in memory, no JIT.
        cursor.execute("SELECT set_config('work_mem', %s, true)", [settings.SCORING_WORK_MEM])
        cursor.execute("SELECT set_config('jit', 'off', true)")
        cursor.execute(AWARDS_TABLE)
        cursor.execute(SCORES_TABLE)
        for sql, params in awards_insert(live, candidate, segment, now):
            cursor.execute(sql, params)
        cursor.execute("ANALYZE scoring_preview_awards")
        for version, model in enumerate((live, candidate)):
            sql, params = sums_sql(version, model, segment, now, predictive_of)
            cursor.execute(
                f"INSERT INTO scoring_preview_scores SELECT %s, s.* FROM ({sql}) s",
                [version, *params],
            )
        cursor.execute(LEADS_TABLE)
        cursor.execute("ANALYZE scoring_preview")


def tallies_sql(
    *,
    live: CompiledModel,
    candidate: CompiledModel,
    segment: ScoringModel,
    now: datetime,
    since: datetime,
    predictive_of: ScoringModel | None = None,
) -> dict[str, Any]:
    """What ``VersionTallies`` holds, grouped out of the temporary tables: each version's
    (score, predictive score) counts, open leads by (stage, live band, candidate score,
    predictive score), recent leads by (live score, candidate score, predictive score)
    for those created since ``since``, the closed leads in id order, and the reach of
    each of the candidate's rules (the live version's is left empty: the page reads a
    live model's from its ledger). The predictive scores are ``predictive_of``'s (None:
    none)."""
    found: dict[str, Any] = {}
    with transaction.atomic():
        score_versions_sql(
            live=live, candidate=candidate, segment=segment, now=now, predictive_of=predictive_of
        )
        with connection.cursor() as cursor:
            found["scored"], found["live_scores"] = _counted(
                cursor, "SELECT live_score, predictive, count(*) FROM scoring_preview GROUP BY 1, 2"
            )
            _, found["candidate_scores"] = _counted(
                cursor, "SELECT score, predictive, count(*) FROM scoring_preview GROUP BY 1, 2"
            )
            _, found["open_leads"] = _counted(
                cursor,
                "SELECT stage, live_band, score, predictive, count(*) FROM scoring_preview "
                "WHERE won IS NULL GROUP BY 1, 2, 3, 4",
            )
            _, found["recent"] = _counted(
                cursor,
                "SELECT live_score, score, predictive, count(*) FROM scoring_preview "
                "WHERE created_at >= %s GROUP BY 1, 2, 3",
                [since],
            )
            cursor.execute(
                "SELECT live_score, score, won, closed_at, predictive FROM scoring_preview "
                "WHERE won IS NOT NULL ORDER BY lead_id"
            )
            found["closed"] = cursor.fetchall()
            # The candidate's rules only: the live version's reach is read from its
            # ledger (``scoring.selectors.rule_reach``).
            cursor.execute(
                "SELECT version, rule_id, count(DISTINCT lead_id), sum(points) "
                "FROM scoring_preview_awards WHERE version = 1 GROUP BY 1, 2"
            )
            reach: dict[int, dict[int, RuleReach]] = {live.id: {}, candidate.id: {}}
            for version, rule_id, leads, points in cursor.fetchall():
                model = (live, candidate)[version]
                reach[model.id][rule_id] = RuleReach(leads=leads, points=points)
            found["rules"] = reach
        transaction.set_rollback(True)
    return found


def _counted(cursor: Any, sql: str, params: list[Any] | None = None) -> tuple[int, Counter[Any]]:
    """A GROUP BY whose last column is the count, as a Counter keyed by the other
    columns (one column: the value itself), and the total."""
    cursor.execute(sql, params or [])
    counts: Counter[Any] = Counter()
    for *key, n in cursor.fetchall():
        counts[key[0] if len(key) == 1 else tuple(key)] += n
    return sum(counts.values()), counts

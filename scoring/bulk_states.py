"""Scores from the ledger in SQL (step 3 of ``scoring.bulk``): each touched lead's
``LeadScore`` recomputed from its entries or their delta, its surge, and its primary
score copied onto the lead, with the formula of ``scoring.state.state_from``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .bulk_ledger import REVERSAL_PROBE
from .bulk_scope import Scope
from .decay import decay_params, decay_sql
from .revaluations import COUNTED, effective_points_sql, revalued_rules
from .ruleset import CompiledModel
from .score_formula import BLEND, PREDICTIVE, RULES, decision_sql


def score_columns(model: CompiledModel, now: datetime) -> tuple[str, list[Any]]:
    """CTEs ``effective``, ``capped``, ``scored`` and ``banded`` over a relation ``sums``
    (lead_id, fit, adjustment, engagement at now, last_engaged_at, predictive score):
    the same formula as ``scoring.state.state_from``, bands on the score the model
    decides on."""
    t = model.thresholds
    # The basis is one of three words and the share a whole number: written in, as the
    # expression names each more than once.
    if t.decide_on not in (RULES, PREDICTIVE, BLEND):
        raise ValueError(f"Unknown decision basis {t.decide_on!r}")
    decision = decision_sql("score", "predictive", f"'{t.decide_on}'", str(int(t.predictive_share)))
    sql = """
        effective AS (
            SELECT s.*, s.engagement - LEAST(
                CASE WHEN s.last_engaged_at IS NULL THEN 0 ELSE %s * floor(GREATEST(
                    date_part('epoch', %s::timestamptz - s.last_engaged_at), 0)
                    / 604800.0) END,
                GREATEST(s.engagement, 0)) AS eff
            FROM sums s
        ),
        capped AS (
            SELECT e.*, LEAST(e.fit + e.adjustment, %s) AS total_fit,
                   LEAST(e.eff, %s) AS shown_eff
            FROM effective e
        ),
        scored AS (
            SELECT c.*, LEAST(floor(%s + c.total_fit + c.shown_eff + 0.5), %s) AS score
            FROM capped c
        ),
        decided AS (
            SELECT s.*, {decision} AS decision FROM scored s
        ),
        banded AS (
            SELECT s.*,
                   CASE WHEN decision >= %s THEN 'hot' WHEN decision >= %s THEN 'warm'
                        ELSE 'cold' END AS band,
                   CASE WHEN total_fit >= %s THEN 'A' WHEN total_fit >= %s THEN 'B'
                        WHEN total_fit >= %s THEN 'C' ELSE 'D' END AS grade,
                   CASE WHEN total_fit >= %s AND shown_eff >= %s THEN 'hot'
                        WHEN total_fit >= %s THEN 'target'
                        WHEN shown_eff >= %s THEN 'researcher' ELSE 'cold' END AS quadrant
            FROM decided s
        )
    """.replace("{decision}", decision)
    params = [
        model.idle_week_penalty,
        now,
        _cap(t.fit_cap),
        _cap(t.engagement_cap),
        t.base,
        _cap(t.max_points),
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


def _cap(cap: int | None) -> int:
    """A cap as a bound SQL's LEAST can take: none is beyond any score."""
    return cap if cap is not None else 2**31 - 1


def recompute_states(cursor: Any, scope: Scope, gone: list[int]) -> int:
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
        # ``materialize`` choose their primary score again.
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
    score_sql, score_params = score_columns(model, now)
    # Only a model deciding on the predictive score reads it (one lookup a lead).
    predictive = (
        "NULL::integer"
        if model.thresholds.decide_on == RULES
        else "(SELECT x.predictive_score FROM scoring_leadscore x "
        f"WHERE x.lead_id = t.id AND x.model_id = {int(model.id)})"
    )
    sql = f"""
        WITH targets AS ({targets}),
        sums AS (
            SELECT t.id AS lead_id, a.fit, a.adjustment, a.engagement, a.last_engaged_at,
                   {predictive} AS predictive
            FROM targets t
            -- Each target's entries summed on their own, through the ledger's lead index:
            -- a join the planner may turn into a scan of every entry of the range for each
            -- target when its statistics lag behind what the transaction wrote (a first
            -- rescore writes millions of entries before any ANALYZE sees them).
            CROSS JOIN LATERAL (
                SELECT COALESCE(sum(p.points) FILTER (WHERE e.kind = 'fit'), 0) AS fit,
                       COALESCE(sum(e.points) FILTER (WHERE e.kind = 'manual'), 0) AS adjustment,
                       COALESCE(sum(p.points * CASE WHEN %s::float8 IS NULL THEN 1.0 ELSE
                           power(0.5::float8,
                                 GREATEST(date_part('epoch', %s::timestamptz - e.at), 0)
                                 / (%s::float8 * 86400.0)) END)
                           FILTER (WHERE e.kind = 'engagement'), 0) AS engagement,
                       max(e.at) FILTER (WHERE e.kind = 'engagement') AS last_engaged_at
                FROM scoring_scoreentry e
                -- The awards' effective points (``scoring.revaluations``).
                CROSS JOIN LATERAL (SELECT {effective_points_sql("e")} AS points) p
                WHERE e.lead_id = t.id AND e.model_id = %s
                  AND (e.kind = 'manual' OR (e.reversal_of_id IS NULL AND {COUNTED}
                                             AND {REVERSAL_PROBE}))
            ) a
        ),
        {score_sql},
        written AS (
            INSERT INTO scoring_leadscore
                (lead_id, model_id, fit, adjustment, engagement, engagement_at,
                 last_engaged_at, score, band, grade, quadrant, is_primary, surged_at,
                 decay_version, created_at, updated_at)
            SELECT lead_id, %s, fit, adjustment, engagement, %s, last_engaged_at, score,
                   band, grade, quadrant, false, NULL, %s, %s, %s
            FROM banded
            ON CONFLICT (lead_id, model_id) DO UPDATE SET
                fit = EXCLUDED.fit, adjustment = EXCLUDED.adjustment,
                engagement = EXCLUDED.engagement, engagement_at = EXCLUDED.engagement_at,
                last_engaged_at = EXCLUDED.last_engaged_at, score = EXCLUDED.score,
                band = EXCLUDED.band, grade = EXCLUDED.grade, quadrant = EXCLUDED.quadrant,
                decay_version = EXCLUDED.decay_version, updated_at = EXCLUDED.updated_at
            RETURNING lead_id
        )
        INSERT INTO scoring_recomputed SELECT lead_id FROM written ON CONFLICT DO NOTHING
    """
    params = [
        *target_params,
        hl,
        now,
        hl,
        revalued_rules(cursor, model.id, lo, hi),
        model.id,
        *score_params,
        model.id,
        now,
        model.decay_version,
        now,
        now,
    ]
    cursor.execute(sql, params)
    return cursor.rowcount


def _apply_deltas(cursor: Any, scope: Scope) -> int:
    """``e(now) = e(t) * decay(now - t) + new`` for leads whose state is current.

    The leads summed from the ledger just before are left out by their ids, not by the
    time their row was written: a score written at the same instant, or by a worker
    whose clock runs ahead, is as current as any other and still needs its delta."""
    model, now = scope.model, scope.now
    hl = model.half_life_days
    score_sql, score_params = score_columns(model, now)
    sql = f"""
        WITH sums AS (
            SELECT ls.lead_id, ls.fit + d.fit AS fit, ls.adjustment,
                   ls.engagement * CASE WHEN %s::float8 IS NULL THEN 1.0 ELSE power(0.5::float8,
                       GREATEST(date_part('epoch', %s::timestamptz - ls.engagement_at), 0)
                       / (%s::float8 * 86400.0)) END + d.engagement AS engagement,
                   CASE WHEN d.last_appended IS NULL THEN ls.last_engaged_at
                        ELSE GREATEST(ls.last_engaged_at, d.last_appended) END
                       AS last_engaged_at,
                   ls.predictive_score AS predictive
            FROM scoring_delta d
            JOIN scoring_leadscore ls ON ls.lead_id = d.lead_id AND ls.model_id = %s
            WHERE ls.decay_version = %s
              AND NOT EXISTS (SELECT 1 FROM scoring_recomputed r WHERE r.lead_id = d.lead_id)
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
        *[hl, now, hl, model.id, model.decay_version, *bounds],
        *[*score_params, now, now, model.id, *bounds],
    ]
    cursor.execute(sql, params)
    return cursor.rowcount


def mark_surges(cursor: Any, scope: Scope) -> list[tuple[int, float]]:
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
              AND e.revalued_to IS NULL AND {REVERSAL_PROBE}
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


def materialize(
    cursor: Any, scope: Scope, before: dict[int, tuple[int | None, str]], gone: list[int]
) -> list[tuple[int, int | None, str]]:
    """Mark each touched lead's primary score and copy it onto the lead.

    Returns (lead id, old score, old band) for every lead whose score or band changed,
    and every lead scored for the first time (old score None).
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

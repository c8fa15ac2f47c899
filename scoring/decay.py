"""The decay: the set-based statement that carries each lead's primary score to a moment
in time, and ``scores_decay``, beat's nightly run of it over every lead.

It reads the primary ``LeadScore`` (engagement stored at ``engagement_at``) and its
model, applies ``e(now) = e(t) * 0.5 ** ((now - t) / half_life)`` and the idle-week
penalty, and writes score, engagement, band and quadrant on the lead. Each statement
covers one range of lead ids: the nightly beat job runs it range after range, each in a
transaction of its own, and a rescore runs it for the leads of the range it rescored.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .lead_sets import lead_id_ranges
from .reactions import BandChange, bands_announce
from .score_formula import decision_sql

# Seconds from {col} to now, never negative (decay never runs backwards in time). On
# PostgreSQL in float8: ``date_part`` rather than ``EXTRACT``, which computes in numeric
# (2.3 times the time over a million rows).
_ELAPSED = {
    True: "GREATEST(date_part('epoch', %(now)s::timestamptz - {col}), 0)",
    False: "max((julianday(%(now)s) - julianday({col})) * 86400.0, 0)",
}

_HALF = {True: "0.5::float8", False: "0.5"}


def decay_params(now: datetime, *, postgres: bool, lo: int, hi: int) -> dict[str, Any]:
    """The parameters of ``decay_sql``: the time to decay to and the lead ids ``lo..hi``."""
    # SQLite stores UTC text without an offset; compare like with like.
    at: Any = now if postgres else now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return {"now": at, "week": 7 * 86400.0, "day": 86400.0, "lo": lo, "hi": hi}


def decay_factor_sql(at: str, half_life_days: str, *, postgres: bool) -> str:
    """How much of a value stored at the column ``at`` is left at ``%(now)s`` with the
    half-life in days of the column ``half_life_days`` (NULL: no decay), as SQL over
    ``decay_params``: ``0.5 ** ((now - at) / half_life)``."""
    return (
        f"CASE WHEN {half_life_days} IS NULL THEN 1.0 "
        f"ELSE power({_HALF[postgres]}, {_ELAPSED[postgres].format(col=at)} "
        f"/ ({half_life_days} * %(day)s)) END"
    )


def _at_most(value: str, cap: str, *, postgres: bool) -> str:
    """``value``, or ``cap`` where that is lower; a NULL cap is no cap."""
    if postgres:
        return f"LEAST({value}, {cap})"  # LEAST skips NULLs
    return f"min({value}, COALESCE({cap}, 9e18))"


@cache
def decay_sql(*, postgres: bool, touched_only: bool = False, returning: bool = False) -> str:
    """The decay UPDATE, or with ``returning`` a SELECT of the bands it will change:
    (lead, model, old band, new band, score), to run just before the UPDATE in the
    same transaction.
    """
    elapsed = _ELAPSED[postgres]
    decayed = "ls.engagement * " + decay_factor_sql(
        "ls.engagement_at", "m.decay_half_life_days", postgres=postgres
    )
    idle_weeks = (
        "CASE WHEN ls.last_engaged_at IS NULL THEN 0 ELSE "
        f"floor({elapsed.format(col='ls.last_engaged_at')} / %(week)s) END"
    )
    penalty = f"(m.idle_week_penalty * {idle_weeks})"
    effective = (
        f"(({decayed}) - CASE WHEN ({decayed}) <= 0 THEN 0 "
        f"WHEN {penalty} > ({decayed}) THEN ({decayed}) ELSE {penalty} END)"
    )
    # Fit and engagement as they count, each up to its cap (``score_formula.shown_parts``),
    # and the score up to the maximum. LEAST and SQLite's min() name each operand once, so
    # the decay is not computed once more for each branch of a CASE.
    fit = _at_most("(ls.fit + ls.adjustment)", "m.fit_cap", postgres=postgres)
    effective = _at_most(effective, "m.engagement_cap", postgres=postgres)
    raw = f"floor(m.base_score + {fit} + {effective} + 0.5)"
    score = _at_most(raw, "m.max_points", postgres=postgres)
    # The range bounds both tables, so each is read through its index instead of in
    # full for every range.
    only = " AND ls.lead_id BETWEEN %(lo)s AND %(hi)s"
    if touched_only:
        only += " AND ls.lead_id IN (SELECT lead_id FROM scoring_touched)"
    # After a rescore, leave alone a lead whose state did not change and whose score,
    # band, grade and quadrant come out the same: its (engagement, time) pair stays true.
    unchanged = (
        " AND (sub.updated_at >= %(now)s OR (leads_lead.score, leads_lead.band, leads_lead.grade,"
        " leads_lead.quadrant, leads_lead.fit_score) IS DISTINCT FROM"
        " (sub.score, sub.band, sub.grade, sub.quadrant, sub.fit_score))"
        if touched_only
        else ""
    )
    # The nightly run also reports the leads whose band it changed, for ``bands_changed``:
    # PostgreSQL's RETURNING only sees the new row, so the old band comes from a join.
    old_band = ", cur.band AS old_band" if returning else ""
    # The band reads the score the model decides on (``score_formula.decision_score``).
    decision = decision_sql("score", "predictive", "decide_on", "predictive_share")
    current = " JOIN leads_lead cur ON cur.id = ls.lead_id" if returning else ""
    sub = f"""
        SELECT lead_id, model_id, effective, score, updated_at{", old_band" if returning else ""},
               floor(total_fit + 0.5) AS fit_score,
               CASE WHEN {decision} >= hot_from THEN 'hot'
                    WHEN {decision} >= warm_from THEN 'warm' ELSE 'cold' END AS band,
               CASE WHEN total_fit >= grade_a_from THEN 'A'
                    WHEN total_fit >= grade_b_from THEN 'B'
                    WHEN total_fit >= grade_c_from THEN 'C' ELSE 'D' END AS grade,
               CASE WHEN total_fit >= grade_b_from AND effective >= engaged_from THEN 'hot'
                    WHEN total_fit >= grade_b_from THEN 'target'
                    WHEN effective >= engaged_from THEN 'researcher'
                    ELSE 'cold' END AS quadrant
        FROM (
            SELECT ls.lead_id, ls.model_id, ls.updated_at, {effective} AS effective,
                   {score} AS score, {fit} AS total_fit,
                   m.hot_from, m.warm_from, m.grade_a_from, m.grade_b_from,
                   m.grade_c_from, m.engaged_from, ls.predictive_score AS predictive,
                   m.decide_on, m.predictive_share{old_band}
            FROM scoring_leadscore ls
            JOIN scoring_scoringmodel m ON m.id = ls.model_id{current}
            WHERE ls.is_primary{only}
        ) AS raw
    """
    if returning:
        # The changes are read first, in the same transaction: PostgreSQL's RETURNING
        # only sees the new row, SQLite's not the FROM clause, and a statement that
        # carries the old band through the UPDATE costs many times the UPDATE itself.
        return f"""
            SELECT sub.lead_id, sub.model_id, sub.old_band, sub.band, sub.score
            FROM ({sub}) AS sub WHERE sub.old_band <> sub.band
        """
    update = f"""
        UPDATE leads_lead SET
            engagement_score = sub.effective,
            engagement_at = %(now)s,
            score = sub.score,
            fit_score = sub.fit_score,
            band = sub.band,
            grade = sub.grade,
            quadrant = sub.quadrant
        FROM ({sub}) AS sub
        WHERE leads_lead.id = sub.lead_id AND leads_lead.id BETWEEN %(lo)s AND %(hi)s{unchanged}
    """
    return update


def scores_decay(*, now: datetime | None = None) -> int:
    """Bring every lead's materialized score to ``now``: one set-based UPDATE per range
    of ``SCORING_DECAY_RANGE`` lead ids, each range a transaction of its own.

    Only the lead row changes: its primary ``LeadScore`` keeps the engagement at
    the time it was last scored, and the decay formula carries it forward. Leads
    whose band the decay changed are announced (``bands_changed``, one a model and
    range) after their range commits. Returns the number of leads updated.
    """
    now = now or timezone.now()
    postgres = connection.vendor == "postgresql"
    return sum(
        _decay_range(now, lo, hi, postgres=postgres)
        for lo, hi in lead_id_ranges(settings.SCORING_DECAY_RANGE)
    )


def _decay_range(now: datetime, lo: int, hi: int, *, postgres: bool) -> int:
    params = decay_params(now, postgres=postgres, lo=lo, hi=hi)
    with transaction.atomic(), connection.cursor() as cursor:
        if postgres:
            # Lock first, then read: an UPDATE that found a lead locked by real-time
            # scoring would, once let through, write the engagement it read before that
            # scoring committed. Real-time scoring of a lead waits for one range at most;
            # rows that only reference these leads (NO KEY) do not wait at all.
            cursor.execute(
                "SELECT id FROM leads_lead WHERE id BETWEEN %s AND %s "
                "ORDER BY id FOR NO KEY UPDATE",
                [lo, hi],
            )
        cursor.execute(decay_sql(postgres=postgres, returning=True), params)
        changes = cursor.fetchall()
        cursor.execute(decay_sql(postgres=postgres), params)
        updated = cursor.rowcount
        moved: dict[int, list[BandChange]] = defaultdict(list)
        for lead_id, model_id, old_band, new_band, score in changes:
            moved[model_id].append((lead_id, old_band, new_band, int(score)))
        for model_id, bands in sorted(moved.items()):
            bands_announce(model_id, sorted(bands))
    return updated

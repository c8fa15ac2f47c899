"""The score formula on plain values: decay, the idle penalty, thresholds, and the score,
band, grade and quadrant they give; also a lead's score over time.

The set-based SQL (``scoring.bulk_states``, ``scoring.decay``) reproduces these exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

SECONDS_PER_DAY = 86_400.0


def decay_factor(elapsed_seconds: float, half_life_days: float | None) -> float:
    """How much of a value is left after ``elapsed_seconds`` with the given half-life."""
    if not half_life_days or elapsed_seconds <= 0:
        return 1.0
    return 0.5 ** (elapsed_seconds / (half_life_days * SECONDS_PER_DAY))


def decayed(
    value: float, since: datetime | None, until: datetime, half_life_days: float | None
) -> float:
    """``e(until) = e(since) * 0.5 ** ((until - since) / half_life)``."""
    if since is None:
        return value
    return value * decay_factor((until - since).total_seconds(), half_life_days)


def engagement_at(
    entries: Iterable[tuple[float, datetime]], when: datetime, half_life_days: float | None
) -> float:
    """The engagement that ledger entries (points, at) add up to at ``when``."""
    return sum(
        points * decay_factor((when - at).total_seconds(), half_life_days)
        for points, at in entries
        if at <= when
    )


def score_series(
    entries: Iterable[tuple[datetime, bool, float, datetime]],
    *,
    now: datetime,
    points: int,
    half_life_days: float | None,
    thresholds: Thresholds,
) -> list[tuple[datetime, int]]:
    """The score at ``points`` evenly spaced times from the first entry to ``now``.

    ``entries`` are ledger entries as (at, is engagement, points, counts from): an entry
    counts from ``counts from`` (its own time, or later: ``history_entries``), and an
    engagement entry decays from its own time. The fit at a time is the sum of the fit
    entries counting by then; the engagement the decayed sum of the engagement ones.
    Computed in one pass in time order: the engagement at a point is the one at the
    point before, decayed over the step, plus the entries that start to count within
    the step, each decayed from its own time; a lead with thousands of entries costs one
    sort, not one sum per point.
    """
    ordered = sorted(entries, key=lambda entry: entry[3])
    if not ordered:
        return []
    start = ordered[0][3]
    step = max((now - start) / max(points - 1, 1), timedelta(seconds=1))
    fit = engagement = 0.0
    previous = start
    taken = 0
    series = []
    for i in range(points):
        # The last point is ``now`` itself: timedelta division rounds to microseconds.
        when = now if i == points - 1 else min(start + step * i, now)
        engagement *= decay_factor((when - previous).total_seconds(), half_life_days)
        while taken < len(ordered) and ordered[taken][3] <= when:
            at, is_engagement, value, _ = ordered[taken]
            if is_engagement:
                engagement += value * decay_factor((when - at).total_seconds(), half_life_days)
            else:
                fit += value
            taken += 1
        previous = when
        series.append((when, total_score(fit, engagement, thresholds)))
    return series


def history_entries(
    entries: Iterable[tuple[datetime, bool, float, datetime]],
    first_scored: datetime | None = None,
) -> list[tuple[datetime, bool, float, datetime]]:
    """Ledger entries (at, is engagement, points, written at) as ``score_series`` counts
    them: the score at a time is the one the lead had then.

    The entries of the lead's first scoring (``first_scored``; without it, the earliest
    written) count from their own time, so that a history imported or recorded before
    the lead was first scored is drawn. Every later entry counts from when it was
    written or from its own time, whichever is later: an award that a rule change dates
    in the past, or an activity that arrived late, does not rewrite a time before the
    ledger knew it, so the history across a rule change shows the points of the rule as
    it was at each moment.
    """
    listed = list(entries)
    if not listed:
        return []
    first = first_scored or min(written for _, _, _, written in listed)
    return [
        (at, kind, points, at if written <= first else max(at, written))
        for at, kind, points, written in listed
    ]


def idle_penalty(last_engaged_at: datetime | None, when: datetime, per_week: int) -> float:
    """``per_week`` points for every whole week without engagement."""
    if not per_week or last_engaged_at is None:
        return 0.0
    weeks = int((when - last_engaged_at).total_seconds() // (7 * SECONDS_PER_DAY))
    return float(max(weeks, 0) * per_week)


@dataclass(frozen=True)
class Thresholds:
    hot: int = 80
    warm: int = 30
    grade_a: int = 60
    grade_b: int = 40
    grade_c: int = 20
    engaged: int = 30
    max_points: int | None = None
    # What every lead of the model starts from (``ScoringModel.base_score``).
    base: int = 0
    # How far fit (with adjustments) and engagement count; None: without limit.
    fit_cap: int | None = None
    engagement_cap: int | None = None
    # What bands and the MQL/SQL thresholds read (``decision_score``): the rule score, the
    # predictive score, or a blend with this share of the predictive one.
    decide_on: str = "rules"
    predictive_share: int = 50


def capped(value: float, cap: int | None) -> float:
    return value if cap is None or value <= cap else float(cap)


def shown_parts(fit: float, engagement: float, thresholds: Thresholds) -> tuple[float, float]:
    """Fit (adjustments included) and engagement (decayed, net of the idle penalty) as
    they count in the score: each up to its cap. Grades, quadrants and the lead's fit and
    engagement scores read these."""
    return capped(fit, thresholds.fit_cap), capped(engagement, thresholds.engagement_cap)


def round_half_up(value: float) -> int:
    """Rounding that SQL reproduces exactly: ``floor(x + 0.5)``."""
    return math.floor(value + 0.5)


def score_sum(fit: float, engagement: float, thresholds: Thresholds) -> float:
    """The score before rounding and the model's maximum: the base score, the fit
    (adjustments included) and the engagement (decayed, net of the idle penalty), each
    of these two up to its cap."""
    return thresholds.base + sum(shown_parts(fit, engagement, thresholds))


def total_score(fit: float, engagement: float, thresholds: Thresholds) -> int:
    score = round_half_up(score_sum(fit, engagement, thresholds))
    if thresholds.max_points is not None:
        score = min(score, thresholds.max_points)
    return score


RULES, PREDICTIVE, BLEND = "rules", "predictive", "blend"


def decision_score(score: int, predictive: int | None, thresholds: Thresholds) -> int:
    """The score bands, the MQL and SQL thresholds, hand-offs and nurture decide on.

    The rule score, or with a model deciding on the predictive score (0 to 100) that
    score, or a blend: ``predictive_share`` per cent of the predictive score and the
    rest of the rule score (both on 0 to 100: ``ScoringModel.clean``), rounded half up.
    A lead without a predictive score (none live yet, or not scored by it yet) is
    decided on its rule score. SQL reproduces this exactly (``decision_sql``).
    """
    if predictive is None or thresholds.decide_on == RULES:
        return score
    if thresholds.decide_on == PREDICTIVE:
        return predictive
    share = thresholds.predictive_share
    # floor(x / 100 + 0.5) in whole numbers: exact, as the SQL is.
    return (2 * ((100 - share) * score + share * predictive) + 100) // 200


# The score each basis decides on, in words.
DECISION_NAMES = {RULES: "Score", PREDICTIVE: "Predictive score", BLEND: "Blended score"}


def decision_name(thresholds: Thresholds, predictive: int | None) -> str:
    """What ``decision_score`` gave, in words: "Score", "Predictive score" or "Blended score"."""
    if predictive is None:
        return DECISION_NAMES[RULES]
    return DECISION_NAMES[thresholds.decide_on]


def decision_text(score: int, predictive: int | None, thresholds: Thresholds) -> str:
    """Which score the band and thresholds read, in a sentence ("" when the rule score,
    as for most models)."""
    if thresholds.decide_on == RULES:
        return ""
    if predictive is None:
        return "Banded on the rule score until the predictive model scores this lead."
    if thresholds.decide_on == PREDICTIVE:
        return f"Banded on the predictive score, {predictive}."
    share = thresholds.predictive_share
    return (
        f"Banded on a blend of {100 - share}% rule score ({score}) and {share}% predictive "
        f"score ({predictive}): {decision_score(score, predictive, thresholds)}."
    )


def decision_sql(score: str, predictive: str, decide_on: str, share: str) -> str:
    """``decision_score`` as a SQL expression of four SQL operands (columns or
    placeholders), for PostgreSQL and SQLite alike."""
    return (
        f"(CASE WHEN {predictive} IS NULL OR {decide_on} = '{RULES}' THEN {score} "
        f"WHEN {decide_on} = '{PREDICTIVE}' THEN {predictive} "
        f"ELSE floor(((100 - {share}) * {score} + {share} * {predictive}) / 100.0 + 0.5) END)"
    )


def band_for(score: float, thresholds: Thresholds) -> str:
    if score >= thresholds.hot:
        return "hot"
    if score >= thresholds.warm:
        return "warm"
    return "cold"


def grade_for(fit: float, thresholds: Thresholds) -> str:
    fit = capped(fit, thresholds.fit_cap)
    if fit >= thresholds.grade_a:
        return "A"
    if fit >= thresholds.grade_b:
        return "B"
    if fit >= thresholds.grade_c:
        return "C"
    return "D"


def quadrant_for(fit: float, engagement: float, thresholds: Thresholds) -> str:
    """The quadrant's stored value ("hot" is shown as "Prime": ``leads.models.Quadrant``)."""
    fit, engagement = shown_parts(fit, engagement, thresholds)
    good_fit = fit >= thresholds.grade_b
    engaged = engagement >= thresholds.engaged
    if good_fit and engaged:
        return "hot"
    if good_fit:
        return "target"
    if engaged:
        return "researcher"
    return "cold"

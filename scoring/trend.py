"""The score trend: whether a lead's score rose, held or fell over the last seven days.

Defined once, here, on plain values; the leads list, Next up, the lead page's
explanation and the API all ask ``score_trend``. The score seven days ago is the lead's
score at the nightly snapshot of the day seven days before today, UTC
(``scoring.snapshots``).

- **rising**: the score now is at least ``max(5 points, 10 % of the score then)`` above it;
- **falling**: at least that much below it;
- **steady**: anything in between;
- **new**: no score seven days ago (the lead is younger than that, or no snapshot was
  taken yet).

Why these thresholds: the default bands are 50 points wide (warm from 30, hot from 80),
so 5 points is a tenth of the warm band, the smallest change worth a rep's look; below
it lie the day-to-day moves of decay (a 30-day half-life takes about 15 % off
engagement in a week: an idle lead with 30 engagement points loses under 5 and stays
steady). The 10 % keeps the trend meaningful where engagement is unbounded and scores
run into the hundreds: a lead at 400 moving by 5 has not really moved.
"""

from __future__ import annotations

from django.db import models

TREND_DAYS = 7
TREND_MIN_POINTS = 5
TREND_SHARE = 0.10


class Trend(models.TextChoices):
    RISING = "rising", "Rising"
    STEADY = "steady", "Steady"
    FALLING = "falling", "Falling"
    NEW = "new", "New"


# What the lists show for each trend: an arrow, or a dash for a lead without one yet.
TREND_ARROWS = {
    Trend.RISING: "↑",
    Trend.STEADY: "→",
    Trend.FALLING: "↓",
    Trend.NEW: "\N{EN DASH}",
}


def trend_margin(before: int) -> float:
    """How far the score must move from ``before`` to rise or fall."""
    return max(TREND_MIN_POINTS, TREND_SHARE * abs(before))


def score_trend(score: int, before: int | None) -> Trend:
    """The trend of a lead scoring ``score`` now and ``before`` seven days ago (``None``:
    no score then)."""
    if before is None:
        return Trend.NEW
    change = score - before
    margin = trend_margin(before)
    if change >= margin:
        return Trend.RISING
    if change <= -margin:
        return Trend.FALLING
    return Trend.STEADY


def trend_text(trend: str, before: int | None) -> str:
    """The trend in words, for an ``aria-label`` or a title: "Rising: 32 seven days ago"."""
    label = Trend(trend).label
    if before is None:
        return f"{label}: no score {TREND_DAYS} days ago"
    return f"{label}: {before} {TREND_DAYS} days ago"

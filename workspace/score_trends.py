"""The score trend as the workspace shows it: an arrow with its words, for the leads
list, Next up and the lead page (``workspace/_score_trend.html``). The trend itself is
``scoring.trend``'s."""

from __future__ import annotations

from scoring.trend import TREND_ARROWS, TREND_DAYS, score_trend, trend_text


def trend_badge(score: int, before: int | None) -> dict[str, str]:
    """The trend of a lead scoring ``score`` now and ``before`` seven days ago: its
    value (``trend``), arrow and words."""
    trend = score_trend(score, before)
    return {"trend": trend.value, "arrow": TREND_ARROWS[trend], "text": trend_text(trend, before)}


def trend_sentence(score: int, before: int | None) -> str:
    """The trend in a sentence, for the lead page's explanation."""
    trend = score_trend(score, before)
    if before is None:
        return f"No score {TREND_DAYS} days ago yet, so no trend."
    return f"{trend.label}: {before} {TREND_DAYS} days ago, {score} now."

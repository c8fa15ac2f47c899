"""Pure statistics over aggregated counts: no ORM, tested without a database.

Every function takes the few rows an aggregate query returned (counts per score, per
rule), never one row per lead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Lift lives with scoring, which suggests weights from it too; the reports call it from here.
from scoring.lift import Lift as Lift
from scoring.lift import lift_with_interval as lift_with_interval

# A rule is judged only with at least this many closed leads on each side of it.
MIN_CLOSED = 5
# A rule that matches at least this share of the leads tells them apart from nothing.
NEARLY_EVERYONE = 0.9


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when there is nothing to divide by."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def roc_auc(counts: Iterable[tuple[float, int, int]]) -> float | None:
    """The area under the ROC curve of a score against won/lost, from
    ``(score, won, lost)`` counts: the chance that a won lead outscores a lost one,
    ties counting half (the Mann-Whitney rank sum). None without both outcomes."""
    rows = sorted(counts)
    total_won = sum(won for _, won, _ in rows)
    total_lost = sum(lost for _, _, lost in rows)
    if not total_won or not total_lost:
        return None
    lost_below = 0
    pairs = 0.0
    for _, won, lost in rows:
        pairs += won * (lost_below + lost / 2)
        lost_below += lost
    return pairs / (total_won * total_lost)


@dataclass(frozen=True)
class RuleVerdict:
    action: str  # "prune", "reweight" or ""
    evidence: str


def rule_verdict(
    *, points: int, matched: int, leads: int, lift: Lift, closed_in: int, closed_out: int
) -> RuleVerdict:
    """Whether a rule should be pruned or re-weighted, and the evidence for it."""
    share = ratio(matched, leads) or 0.0
    if leads and share >= NEARLY_EVERYONE:
        return RuleVerdict("prune", f"fires on {share:.0%} of leads: it sets nobody apart")
    if closed_in < MIN_CLOSED or closed_out < MIN_CLOSED or lift.value is None:
        return RuleVerdict("", "too few closed leads to judge")
    interval = f"lift {lift.value:.2f}, 95 % interval {lift.low:.2f} to {lift.high:.2f}"
    if points > 0 and lift.high is not None and lift.high < 1:
        return RuleVerdict(
            "reweight", f"adds {points} points but its leads convert less: {interval}"
        )
    if points < 0 and lift.low is not None and lift.low > 1:
        return RuleVerdict(
            "reweight", f"takes {-points} points but its leads convert more: {interval}"
        )
    if lift.includes_one:
        return RuleVerdict("prune", f"no signal: {interval} includes 1")
    return RuleVerdict("", interval)


def scores_backwards(conversions: list[tuple[str, float | None]]) -> bool:
    """Whether the highest band that closed anything converts worse than the lowest one.

    ``conversions`` lists (band, won/closed) from the highest band to the lowest.
    """
    measured = [rate for _, rate in conversions if rate is not None]
    return len(measured) >= 2 and measured[0] < measured[-1]

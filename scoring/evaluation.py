"""How well a score separates won leads from lost ones, on plain values: the ROC AUC,
conversion by score decile, the lift of a group, and a histogram of scores.

A preview of a model version (``scoring.version_preview``) gives these the scores it computed;
nothing here reads the database.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def roc_auc(scored: Sequence[tuple[float, bool]]) -> float | None:
    """The area under the ROC curve of ``(score, won)`` pairs: the chance that a won
    lead outscores a lost one, ties counting half (the Mann-Whitney rank sum, with
    tied scores given their average rank). None without both won and lost leads."""
    won = sum(1 for _, is_won in scored if is_won)
    lost = len(scored) - won
    if not won or not lost:
        return None
    ordered = sorted(score for score, _ in scored)
    # The average 1-based rank of each distinct score.
    ranks: dict[float, float] = {}
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[start]:
            end += 1
        ranks[ordered[start]] = (start + end) / 2 + 1
        start = end + 1
    rank_sum = sum(ranks[score] for score, is_won in scored if is_won)
    return (rank_sum - won * (won + 1) / 2) / (won * lost)


def conversion(won: int, closed: int) -> float | None:
    return won / closed if closed else None


def lift(won: int, closed: int, base_won: int, base_closed: int) -> float | None:
    """How many times as often a group converts as all closed leads."""
    rate, base = conversion(won, closed), conversion(base_won, base_closed)
    if rate is None or not base:
        return None
    return rate / base


@dataclass(frozen=True)
class Group:
    """Closed leads of one band or decile: how many, how many won, and the score range."""

    label: str
    won: int
    closed: int
    low: float | None = None
    high: float | None = None

    @property
    def conversion(self) -> float | None:
        return conversion(self.won, self.closed)


def deciles(scored: Sequence[tuple[float, bool]]) -> list[Group]:
    """The closed leads ranked by score (highest first; among equal scores in the order
    given) cut into ten groups as equal as can be, the first ``n % 10`` one larger;
    fewer groups with fewer than ten leads."""
    ranked = sorted(enumerate(scored), key=lambda item: (-item[1][0], item[0]))
    groups: list[Group] = []
    size, extra = divmod(len(ranked), 10)
    start = 0
    for tile in range(10):
        end = start + size + (1 if tile < extra else 0)
        part = [pair for _, pair in ranked[start:end]]
        start = end
        if not part:
            continue
        groups.append(
            Group(
                label=str(10 - tile),
                won=sum(1 for _, is_won in part if is_won),
                closed=len(part),
                low=min(score for score, _ in part),
                high=max(score for score, _ in part),
            )
        )
    return groups


@dataclass(frozen=True)
class Bin:
    """Scores from ``low`` up to (not including) ``high``, counted for each version."""

    low: int
    high: int
    counts: tuple[int, ...]


def histogram(*series: Sequence[int], bins: int = 12) -> list[Bin]:
    """One histogram for several series of scores over the same bins, of a round width
    (1, 2, 5, 10, 20, 50, … points) chosen so that the scores fill at most ``bins``."""
    values = [score for scores in series for score in scores]
    if not values:
        return []
    low, high = min(values), max(values)
    width = _round_width((high - low + 1) / bins)
    first = math.floor(low / width) * width
    count = (high - first) // width + 1
    edges = [first + width * i for i in range(count + 1)]
    tallies = [[0] * count for _ in series]
    for tally, scores in zip(tallies, series, strict=True):
        for score in scores:
            tally[(score - first) // width] += 1
    return [
        Bin(low=edges[i], high=edges[i + 1], counts=tuple(tally[i] for tally in tallies))
        for i in range(count)
    ]


def _round_width(raw: float) -> int:
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= raw:
                return step * magnitude
        magnitude *= 10


def lowest_won(scored: Sequence[tuple[float, bool]]) -> float | None:
    """The lowest score of a won lead: a threshold above it leaves a won lead below."""
    won = [score for score, is_won in scored if is_won]
    return min(won) if won else None


def won_share_floor(scored: Sequence[tuple[float, bool]], share: float) -> float | None:
    """The highest score that at least ``share`` (0 to 1) of the won leads reach: a
    threshold there keeps that share of them at or above it."""
    won = sorted((score for score, is_won in scored if is_won), reverse=True)
    if not won:
        return None
    return won[max(math.ceil(share * len(won)) - 1, 0)]

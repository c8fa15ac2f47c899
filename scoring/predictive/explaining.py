"""A predictive score, 0 to 100, and why, in words: pure, no database.

The score is the calibrated chance of conversion in per cent. A lead's factors walk from
the average lead of the training data (the *baseline*) to the lead itself, one raw
input at a time, the inputs that move the chance most on their own first: each factor is
the change its step makes. The steps telescope, so the factors sum exactly to the score
minus the baseline (rounded to whole points, largest remainders first). For the
logistic regression each step is its coefficients' contribution; for gradient boosting
it is the same walk through the trees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .encoding import Encoding, describe
from .features import RawFrame


@dataclass(frozen=True)
class Factor:
    text: str
    points: int


@dataclass(frozen=True)
class Explanation:
    score: int
    baseline: int
    factors: tuple[Factor, ...]  # every input that moved the score, largest first

    @property
    def up(self) -> list[Factor]:
        return [f for f in self.factors if f.points > 0][:3]

    @property
    def down(self) -> list[Factor]:
        return [f for f in self.factors if f.points < 0][:3]

    @property
    def others(self) -> int:
        """What the factors not among the top ones add up to: with the baseline and the
        top factors, the score."""
        shown = sum(f.points for f in [*self.up, *self.down])
        return self.score - self.baseline - shown


def probabilities(estimator: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(estimator.predict_proba(x)[:, 1], dtype=float)


def as_scores(p: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(p, 0, 1) * 100).astype(int)


def explain(
    *,
    estimator: Any,
    encoding: Encoding,
    reference: np.ndarray,
    x: np.ndarray,
    frame: RawFrame,
    row: int,
) -> Explanation:
    """The score of row ``row`` of ``x`` (encoded from ``frame``) and its factors."""
    groups = list(encoding.groups().items())
    lead = x[row]
    alone = np.repeat(reference[None, :], len(groups) + 1, axis=0)
    for i, (_, cols) in enumerate(groups):
        alone[i + 1, cols] = lead[cols]
    p_alone = probabilities(estimator, alone)
    order = sorted(range(len(groups)), key=lambda i: -abs(p_alone[i + 1] - p_alone[0]))
    path = np.repeat(reference[None, :], len(groups) + 1, axis=0)
    for step, i in enumerate(order, start=1):
        path[step:, groups[i][1]] = lead[groups[i][1]]
    p_path = probabilities(estimator, path)
    score, baseline = (int(s) for s in as_scores(p_path[[-1, 0]]))
    steps = np.diff(p_path) * 100
    points = whole_points(steps, score - baseline)
    specs = {spec.key: spec for spec in encoding.specs}
    factors = [
        Factor(describe(specs[groups[i][0]], frame, row, encoding), int(points[step]))
        for step, i in enumerate(order)
        if points[step]
    ]
    factors.sort(key=lambda f: -abs(f.points))
    return Explanation(score, baseline, tuple(factors))


def whole_points(values: np.ndarray, total: int) -> np.ndarray:
    """``values`` rounded to whole numbers that sum to ``total`` (the values' own sum,
    rounded): floors, then one more for the largest remainders (or one less for the
    smallest)."""
    floors = np.floor(values).astype(int)
    rest = values - floors
    missing = total - int(floors.sum())
    order = np.argsort(-rest, kind="stable")
    if missing >= 0:
        for k in range(missing):
            floors[order[k % len(order)]] += 1
    else:
        for k in range(-missing):
            floors[order[::-1][k % len(order)]] -= 1
    return floors


def signed(points: int) -> str:
    return f"+{points}" if points > 0 else f"\N{MINUS SIGN}{abs(points)}" if points < 0 else "0"

"""Single-rule lift: how many times as often the closed leads a rule matches convert as
the others, with its 95 % interval. Plain arithmetic on counts, no ORM; the reports'
rule effectiveness and the suggested weights (``scoring.suggestions``) both use it."""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Lift:
    """How many times as often leads with a trait convert as leads without it."""

    value: float | None
    low: float | None
    high: float | None

    @property
    def includes_one(self) -> bool:
        return self.low is not None and self.high is not None and self.low <= 1 <= self.high


def lift_with_interval(won_in: int, closed_in: int, won_out: int, closed_out: int) -> Lift:
    """The conversion of the matched group over the others (a risk ratio) with its 95 %
    interval on the log scale; half a lead is added to every cell when one is empty
    (Haldane's correction) so the interval stays finite."""
    if not closed_in or not closed_out:
        return Lift(None, None, None)
    a, n1, c, n2 = float(won_in), float(closed_in), float(won_out), float(closed_out)
    if a == 0 or c == 0 or a == n1 or c == n2:
        a, n1, c, n2 = a + 0.5, n1 + 1, c + 0.5, n2 + 1
    value = (a / n1) / (c / n2)
    se = math.sqrt(max(1 / a - 1 / n1 + 1 / c - 1 / n2, 0.0))
    center = math.log(value)
    # The point estimate is the plain ratio wherever it exists; only the interval
    # needs the correction.
    exact = (won_in / closed_in) / (won_out / closed_out) if won_out else value
    return Lift(exact, math.exp(center - Z95 * se), math.exp(center + Z95 * se))

"""What generation carries from lead to lead, and the time arithmetic every part of the
generator shares: whole seconds on the anchor's grid, never after the anchor."""

from __future__ import annotations

import functools
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from demo.cast import DemoCast
from demo.config import DemoConfig
from demo.propensity import behaviour_scale


@dataclass
class _Ctx:
    """What generation carries from lead to lead."""

    config: DemoConfig
    cast: DemoCast
    rng: random.Random
    name_orders: dict[str, list[int]]
    companies_by_industry: Counter[str] = field(default_factory=Counter)
    serial: int = 0

    @property
    def now(self) -> datetime:
        return self.config.now

    @functools.cached_property
    def behaviour_scale(self) -> float:
        return behaviour_scale(self.config.activities_per_lead)

    def at(self, seconds_before_now: float) -> datetime:
        """A whole second, ``seconds_before_now`` before the anchor."""
        return _after(self.config.now, -seconds_before_now)


def _uniform_time(ctx: _Ctx, start: datetime, end: datetime) -> datetime:
    span = max((end - start).total_seconds(), 0)
    return _after(start, ctx.rng.uniform(0, span))


def _between(ctx: _Ctx, low: datetime, wanted: datetime, high: datetime) -> datetime:
    return min(max(wanted, low), high, ctx.now)


def _after(moment: datetime, seconds: float) -> datetime:
    """``moment`` moved by whole seconds, so every time stays on the anchor's grid."""
    return moment + timedelta(seconds=int(seconds))

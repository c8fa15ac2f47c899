"""What every statement of a set-based rescore of one id range shares (``scoring.bulk``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .ruleset import CompiledModel


@dataclass(frozen=True)
class Scope:
    """One id range of one model at one moment: what every statement of a rescore shares."""

    model: CompiledModel
    segment: str
    segment_params: list[Any]
    lo: int
    hi: int
    now: datetime
    rule_ids: set[int] | None
    leads: list[int] | None = None  # only these leads of the range (locked), or all

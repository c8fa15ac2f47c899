"""Raw inputs (``features.RawFrame``) as the numbers a classifier reads, and back in words.

Pick-lists become one column per level seen at least ``MIN_LEVEL_COUNT`` times (and in
``MIN_LEVEL_SHARE`` of the leads), the rarer levels pooled in an "other" column and the
missing ones (placeholders included) in a "missing" column. Numbers are read as they
are, or as ``log1p`` when never negative (counts, revenue), the missing ones set to the
median and flagged in a column of their own. Pure functions, no database.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .features import FieldSpec, RawFrame

MIN_LEVEL_COUNT = 10
MIN_LEVEL_SHARE = 0.01
MAX_LEVELS = 30
OTHER, MISSING = "(other)", "(missing)"


@dataclass(frozen=True)
class Column:
    name: str
    group: str  # the raw input's key


@dataclass(frozen=True)
class Encoding:
    specs: tuple[FieldSpec, ...]
    levels: dict[str, tuple[str, ...]]
    medians: dict[str, float]
    logged: frozenset[str]
    flagged: frozenset[str]  # numbers with a missing-value column
    columns: tuple[Column, ...]

    def groups(self) -> dict[str, list[int]]:
        """Each raw input's columns."""
        out: dict[str, list[int]] = {}
        for index, column in enumerate(self.columns):
            out.setdefault(column.group, []).append(index)
        return out


def fit_encoding(frame: RawFrame) -> Encoding:
    n = len(frame.lead_ids)
    floor = max(MIN_LEVEL_COUNT, MIN_LEVEL_SHARE * n)
    levels, medians, logged, flagged, columns = {}, {}, set(), set(), []
    for spec in frame.specs:
        if spec.kind == "categorical":
            counts = Counter(v for v in frame.categorical[spec.key] if v is not None)
            kept = tuple(level for level, c in counts.most_common(MAX_LEVELS) if c >= floor)
            levels[spec.key] = kept
            names = [f"{spec.key}={level}" for level in kept] + [
                f"{spec.key}={OTHER}",
                f"{spec.key}={MISSING}",
            ]
            columns += [Column(name, spec.key) for name in names]
            continue
        values = frame.numeric[spec.key]
        known = values[~np.isnan(values)]
        if known.size and known.min() >= 0:
            logged.add(spec.key)
        transformed = np.log1p(known) if spec.key in logged else known
        medians[spec.key] = float(np.median(transformed)) if known.size else 0.0
        columns.append(Column(spec.key, spec.key))
        if known.size < n:
            flagged.add(spec.key)
            columns.append(Column(f"{spec.key}={MISSING}", spec.key))
    return Encoding(
        tuple(frame.specs), levels, medians, frozenset(logged), frozenset(flagged), tuple(columns)
    )


def encode(encoding: Encoding, frame: RawFrame) -> np.ndarray:
    """The matrix of ``frame`` under ``encoding``: one row per lead, one column per
    ``encoding.columns``."""
    n = len(frame.lead_ids)
    out = np.zeros((n, len(encoding.columns)))
    col = 0
    for spec in encoding.specs:
        if spec.kind == "categorical":
            kept = encoding.levels[spec.key]
            index = {level: i for i, level in enumerate(kept)}
            for row, value in enumerate(frame.categorical[spec.key]):
                if value is None:
                    out[row, col + len(kept) + 1] = 1
                else:
                    out[row, col + index.get(value, len(kept))] = 1
            col += len(kept) + 2
            continue
        values = frame.numeric[spec.key]
        missing = np.isnan(values)
        if spec.key in encoding.logged:
            values = np.log1p(np.clip(values, 0, None))
        out[:, col] = np.where(missing, encoding.medians[spec.key], values)
        col += 1
        if spec.key in encoding.flagged:
            out[:, col] = missing
            col += 1
    return out


COUNTED = ("n_", "seconds_on_site", "employee_count")


def describe(spec: FieldSpec, frame: RawFrame, row: int, encoding: Encoding) -> str:
    """A raw input's value for one lead, as a rep reads it: "3 page views in the last 7
    days", "Industry: Software", "Budget not given"."""
    if spec.kind == "categorical":
        level = frame.categorical[spec.key][row]
        if level is None:
            return f"{spec.label} not given"
        return f"{spec.label}: {level}"
    value = float(frame.numeric[spec.key][row])
    if np.isnan(value):
        if spec.key == "days_since_activity":
            return "no activity yet"
        return f"{spec.label[:1].upper()}{spec.label[1:]} not given"
    if spec.key == "days_since_activity":
        return f"{value:.0f} days since the last activity"
    if spec.key.startswith(COUNTED):
        return f"{value:,.0f} {spec.label}"
    return f"{spec.label[:1].upper()}{spec.label[1:]}: {value:,.6g}"

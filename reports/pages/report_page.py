"""What a report page holds (facts, charts, tables, notices, options), as its page
template and its CSV export both render it, and the wording the pages share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reports.charts import Chart
from reports.tables import Table, show

NO_CLOSED = (
    "No closed leads in this range for this model yet: conversion, lift and ROC AUC "
    "need won or lost deals."
)


@dataclass
class ReportPage:
    facts: list[tuple[str, str]] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    alert: str = ""
    options: list[dict[str, Any]] = field(default_factory=list)

    def table(self, key: str | None) -> Table | None:
        if not key:
            return self.tables[0] if self.tables else None
        return next((t for t in self.tables if t.key == key), None)


def pct(value: float | None) -> str:
    return show(value, "pct")

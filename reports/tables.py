"""A report's tables: columns with a kind that says how to show and export each value.

The page and the CSV export render the same rows; only the formatting differs (units and
rounding on the page, plain numbers in the file).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import HttpResponse

# Characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # text, int, pct, float, ratio, money, hours, days

    @property
    def numeric(self) -> bool:
        return self.kind != "text"

    @property
    def csv_label(self) -> str:
        units = {"pct": " (%)", "hours": " (hours)", "days": " (days)"}
        return self.label + units.get(self.kind, "")


@dataclass
class Table:
    key: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    empty: str = "Nothing to show for this range and these filters."
    note: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    def display_rows(self) -> list[list[tuple[str, bool]]]:
        return [
            [(show(row.get(c.key), c.kind), c.numeric) for c in self.columns] for row in self.rows
        ]

    def csv_rows(self) -> Iterable[list[Any]]:
        yield [guard(c.csv_label) for c in self.columns]
        for row in self.rows:
            yield [export(row.get(c.key), c.kind) for c in self.columns]


def show(value: Any, kind: str) -> str:
    """A value as the page shows it."""
    if value is None or value == "":
        return "\N{EN DASH}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "pct":
        return f"{value * 100:.1f} %"
    if kind == "money":
        return f"{value:,.2f} {settings.HOTLIST_CURRENCY}"
    if kind == "float":
        return f"{value:,.2f}"
    if kind == "ratio":
        return f"{value:.3f}"
    if kind in ("hours", "days"):
        return f"{value:,.1f} {'h' if kind == 'hours' else 'd'}"
    return str(value)


def export(value: Any, kind: str) -> Any:
    """A value as the CSV file holds it: plain numbers, text that cannot run as a formula."""
    if value is None:
        return ""
    if kind == "int":
        return int(value)
    if kind == "pct":
        return round(value * 100, 2)
    if kind in ("money", "float"):
        return f"{value:.2f}"
    if kind in ("hours", "days"):
        return round(value, 2)
    if kind == "ratio":
        return round(value, 4)
    return guard(str(value))


def guard(text: str) -> str:
    """Text a spreadsheet shows as text: a leading ``'`` before a formula character."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_response(table: Table, *, filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerows(table.csv_rows())
    return response

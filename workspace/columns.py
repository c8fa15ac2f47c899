"""The leads list's columns: which a person may choose, what each reads, and what an
export of the list writes for it.

The chosen columns travel in the list's URL as ``cols`` (repeated: ``cols=phone&cols=
source``) and in saved views. A URL without ``cols`` shows the default columns; a
``cols`` that is present but empty (the chooser with every box cleared) shows only the
name and the score, which are always there. Unknown names are ignored, on the list
and in its export alike, so that an old bookmark keeps working after a column goes.

Columns that live in other tables (the next task, the last sales touch, the predictive
score of the lead's primary scoring model) are read as
subqueries of the page's one query, so a page costs the same number of queries
whatever its rows and columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Expression, OuterRef, QuerySet, Subquery
from django.http import QueryDict
from django.utils import timezone

from leads.models import SALES_TOUCH_TYPES, Activity, Lead, Source, Task
from scoring.selectors import predictive_score_subquery
from workspace.formats import house_date
from workspace.keyset import PREDICTIVE_KEY

COLUMNS_PARAM = "cols"
SOURCE_LABELS = dict(Source.choices)


@dataclass(frozen=True)
class ListColumn:
    """One optional column: its heading, the ``values()`` names or annotations its cell
    reads, and the export's columns (``leads.exports``) that hold the same facts."""

    key: str
    label: str
    default: bool
    exports: tuple[str, ...]
    reads: tuple[str, ...] = ()
    annotations: dict[str, Callable[[], Expression | Subquery]] = field(default_factory=dict)


def _next_task_due() -> Subquery:
    """When the lead's earliest open task is due."""
    return Subquery(_next_task().values("due_at")[:1])


def _next_task_title() -> Subquery:
    return Subquery(_next_task().values("title")[:1])


def _next_task() -> QuerySet[Task]:
    return Task.objects.open().filter(lead=OuterRef("pk")).order_by("due_at", "pk")


def _last_touch() -> Subquery:
    """When a rep last called, met or got a reply from the lead (``activity_timeline_idx``)."""
    touches = Activity.objects.filter(lead=OuterRef("pk"), type__in=sorted(SALES_TOUCH_TYPES))
    return Subquery(touches.order_by("-occurred_at").values("occurred_at")[:1])


# In the order the table shows them; the name comes first and the score last, always.
COLUMNS: dict[str, ListColumn] = {
    column.key: column
    for column in (
        ListColumn("company", "Company", True, ("company",)),
        ListColumn("owner", "Owner", True, ("owner",)),
        ListColumn("stage", "Stage", True, ("stage",)),
        ListColumn("stage_changed", "Stage changed", True, ("stage_changed_at",)),
        ListColumn("last_activity", "Last activity", True, ("last_activity_at",)),
        ListColumn("phone", "Phone", False, ("phone",), reads=("phone",)),
        ListColumn("source", "Source", False, ("source",), reads=("source",)),
        ListColumn(
            "next_task",
            "Next task",
            False,
            ("next_task", "next_task_due_at"),
            annotations={"next_task_due": _next_task_due, "next_task_title": _next_task_title},
        ),
        ListColumn(
            "last_touch",
            "Last touch",
            False,
            ("last_touch_at",),
            annotations={"last_touch_at": _last_touch},
        ),
        ListColumn("created", "Created", False, ("created_at",), reads=("created_at",)),
        ListColumn(
            "predictive",
            "Predictive",
            False,
            ("predictive_score",),
            annotations={PREDICTIVE_KEY: predictive_score_subquery},
        ),
        ListColumn("grade", "Grade", True, ("grade",)),
    )
}
DEFAULT_COLUMNS = tuple(key for key, column in COLUMNS.items() if column.default)
# What every export of the list starts and ends with: the lead, its name, its score.
EXPORT_LEADING = ("id", "first_name", "last_name", "email")
EXPORT_TRAILING = ("score", "band")


def chosen_columns(params: QueryDict) -> tuple[list[str], bool]:
    """The columns the query string chooses, in the table's order, and whether it chose
    any (``cols`` present) rather than leaving the defaults. Unknown names are ignored."""
    if COLUMNS_PARAM not in params:
        return list(DEFAULT_COLUMNS), False
    asked = set(params.getlist(COLUMNS_PARAM))
    return [key for key in COLUMNS if key in asked], True


def rows_with_columns(
    leads: QuerySet[Lead], *, fields: Sequence[str], keys: Sequence[str]
) -> QuerySet[Lead, dict[str, Any]]:
    """The page's ``values()`` query of ``fields``, reading what the chosen columns need
    as well, all in the one query."""
    reads: list[str] = []
    annotations: dict[str, Expression | Subquery] = {}
    for key in keys:
        column = COLUMNS[key]
        reads.extend(column.reads)
        annotations.update({name: make() for name, make in column.annotations.items()})
    rows = leads.values(*fields, *reads)
    return rows.annotate(**annotations) if annotations else rows


def export_names(keys: Sequence[str]) -> list[str]:
    """The export's columns for the chosen list columns, in the table's order."""
    names = [name for key in keys for name in COLUMNS[key].exports]
    return list(dict.fromkeys([*EXPORT_LEADING, *names, *EXPORT_TRAILING]))


def column_cells(row: dict[str, Any]) -> dict[str, Any]:
    """The optional columns' cells of one page row that are not in every row."""
    due = row.get("next_task_due")
    touched = row.get("last_touch_at")
    created = row.get("created_at")
    return {
        "phone": row.get("phone", ""),
        "source": SOURCE_LABELS.get(row.get("source", ""), row.get("source", "")),
        "next_task": row.get("next_task_title") or "",
        "next_task_due": _day(due) if due else "",
        "next_task_due_iso": timezone.localtime(due).isoformat() if due else "",
        "last_touch": _day(touched) if touched else "",
        "last_touch_iso": timezone.localtime(touched).isoformat() if touched else "",
        "created": _day(created) if created else "",
        "created_iso": timezone.localtime(created).isoformat() if created else "",
        "predictive": row.get(PREDICTIVE_KEY),
    }


def _day(moment: Any) -> str:
    return house_date(timezone.localtime(moment))

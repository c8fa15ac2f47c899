"""Lists of leads taken out as files: the columns, the rows and the CSV and XLSX encodings.

Every surface that exports (the leads list, the REST API, the admin) hands over the
leads it shows, already narrowed to the caller's view and filters and in its own
order, and the columns to write; this module reads them in one statement through a
cursor, ``EXPORT_CHUNK`` rows at a time, so that a million leads cost what a few
thousand do in memory. One statement is also one snapshot: a lead whose score changes
while the file is written is neither skipped nor written twice, whatever the order.

Columns are named as the REST API names the lead's fields (``first_name``,
``utm_source``), values are stored values (``mql``, ``hot``), so a file goes back in
through an import without a value map; the company and the owner are written by name.
Custom fields are ``custom.<key>`` columns, one per definition. A higher app adds the
columns it keeps in its own tables (scoring: ``predictive_score``) through
``export_column_register``, read as annotations of the one statement. Times are the site's
time zone: ISO 8601 with the offset in CSV, date-time cells in XLSX.

A CSV cell opened by a spreadsheet is a formula when it starts with ``=``, ``+``,
``-`` or ``@`` (OWASP's "CSV injection"): such text gets a leading ``'``. XLSX cells
are typed, so text is written as text and never read as a formula.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from operator import itemgetter
from typing import IO, Any

import xlsxwriter
from django.db import connections, transaction
from django.db.models import Expression, Max, QuerySet, Subquery
from django.utils import timezone
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from .custom_fields import CustomFieldDefinition, FieldType
from .models import SALES_TOUCH_TYPES, Activity, Lead, ProductLine, Task

# Rows fetched from the cursor at a time, and looked up together for the columns that
# read another table (product interests).
EXPORT_CHUNK = 2000
# CSV rows encoded into one piece of the response.
CSV_ROWS_PER_CHUNK = 500
# What an XLSX sheet holds (Excel's limit), its header included; more rows continue on
# another sheet.
XLSX_SHEET_ROWS = 1_048_576

CUSTOM_PREFIX = "custom."
# What makes a spreadsheet read a CSV cell as a formula (OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
XLSX_DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
XLSX_DATE_FORMAT = "yyyy-mm-dd"

Cell = str | int | float | bool | Decimal | dt.datetime | dt.date | None


class UnknownColumn(ValueError):
    """A column name that is neither a lead column nor a defined custom field."""


@dataclass(frozen=True)
class ExportColumn:
    """One column of the file: what it reads from each lead and what it writes.

    ``reads`` are ``values_list`` names; ``value`` turns them into the cell (None: the
    one read as it is). ``per_chunk`` instead looks its cells up for a chunk of lead
    ids at once, for a column that lives in another table. ``annotations`` (name, maker)
    are added to the leads' statement first, for ``reads`` to name: a column of another
    table read in the same statement, and so in the same snapshot, as the rest.
    """

    name: str
    reads: tuple[str, ...] = ()
    value: Callable[..., Cell] | None = None
    per_chunk: Callable[[list[int]], dict[int, Cell]] | None = None
    annotations: tuple[tuple[str, Callable[[], Expression | Subquery]], ...] = ()


def _owner_name(first: str | None, last: str | None, username: str | None) -> str:
    """The owner as ``User.__str__`` names them; empty for the unassigned pool."""
    if username is None:
        return ""
    return f"{first} {last}".strip() or username


def _product_interests(lead_ids: list[int]) -> dict[int, Cell]:
    """Each lead's product lines, by slug, comma-separated. The lines are a short
    catalogue, read whole: joining it to each chunk's links would cost more."""
    slugs = dict(ProductLine.objects.values_list("pk", "slug"))
    links = Lead.product_interests.through.objects.filter(lead_id__in=lead_ids).values_list(
        "lead_id", "productline_id"
    )
    found: dict[int, list[str]] = {}
    for lead_id, line_id in links:
        found.setdefault(lead_id, []).append(slugs[line_id])
    return {lead_id: ", ".join(sorted(names)) for lead_id, names in found.items()}


def _field(name: str) -> ExportColumn:
    return ExportColumn(name, (name,))


LEAD_COLUMNS: tuple[ExportColumn, ...] = (
    _field("id"),
    _field("first_name"),
    _field("last_name"),
    _field("email"),
    _field("phone"),
    _field("job_title"),
    _field("seniority"),
    _field("department"),
    ExportColumn("company", ("company__name",), lambda name: name or ""),
    ExportColumn("company_domain", ("company__domain",), lambda domain: domain or ""),
    ExportColumn(
        "owner", ("owner__first_name", "owner__last_name", "owner__username"), _owner_name
    ),
    ExportColumn("owner_email", ("owner__email",), lambda email: email or ""),
    _field("stage"),
    _field("stage_changed_at"),
    _field("score"),
    _field("fit_score"),
    _field("band"),
    _field("grade"),
    _field("quadrant"),
    _field("last_activity_at"),
    _field("country"),
    _field("region"),
    _field("city"),
    _field("source"),
    _field("campaign"),
    _field("utm_source"),
    _field("utm_medium"),
    _field("utm_campaign"),
    _field("utm_term"),
    _field("utm_content"),
    ExportColumn("product_interests", per_chunk=_product_interests),
    _field("budget"),
    _field("authority"),
    _field("need"),
    _field("timeline"),
    _field("email_status"),
    _field("disqualification_reason"),
    _field("created_at"),
    _field("updated_at"),
)
# Columns other apps keep, each placed after a lead column (``export_column_register``).
_REGISTERED: dict[str, tuple[ExportColumn, str]] = {}


def export_column_register(column: ExportColumn, *, after: str) -> None:
    """Write ``column`` in every whole file, after the lead column ``after``, and let it
    be asked for by name: a column an app above ``leads`` keeps in its own tables, read
    as an annotation (``ExportColumn.annotations``) so that its cells cost no query of
    their own. Call from the app's ``AppConfig.ready``."""
    if after not in {lead_column.name for lead_column in LEAD_COLUMNS}:
        raise ValueError(f"No lead column {after!r} to place {column.name!r} after.")
    _REGISTERED[column.name] = (column, after)


def lead_columns() -> tuple[ExportColumn, ...]:
    """The lead's columns of a whole file, in order: its own fields and, each after the
    field it was placed after, the columns other apps registered."""
    columns: list[ExportColumn] = []
    for column in LEAD_COLUMNS:
        columns.append(column)
        columns.extend(extra for extra, after in _REGISTERED.values() if after == column.name)
    return tuple(columns)


def lead_column_names() -> tuple[str, ...]:
    return tuple(column.name for column in lead_columns())


def _next_tasks(lead_ids: list[int]) -> dict[int, Task]:
    """Each lead's earliest open task (by due time, then id)."""
    tasks = Task.objects.open().filter(lead_id__in=lead_ids).order_by("lead_id", "due_at", "pk")
    found: dict[int, Task] = {}
    for task in tasks.only("lead_id", "title", "due_at"):
        assert task.lead_id is not None
        found.setdefault(task.lead_id, task)
    return found


def _next_task_titles(lead_ids: list[int]) -> dict[int, Cell]:
    return {lead_id: task.title for lead_id, task in _next_tasks(lead_ids).items()}


def _next_task_due(lead_ids: list[int]) -> dict[int, Cell]:
    return {lead_id: task.due_at for lead_id, task in _next_tasks(lead_ids).items()}


def _last_touches(lead_ids: list[int]) -> dict[int, Cell]:
    """When a rep last called, met or got a reply from each lead."""
    touches = (
        Activity.objects.filter(lead_id__in=lead_ids, type__in=sorted(SALES_TOUCH_TYPES))
        .values("lead_id")
        .annotate(last=Max("occurred_at"))
        .order_by()
    )
    return {row["lead_id"]: row["last"] for row in touches}


# Columns the leads list can show (``workspace.columns``) that are not the lead's own
# fields: written when asked for by name, not in the whole file.
WORK_COLUMNS: tuple[ExportColumn, ...] = (
    ExportColumn("next_task", per_chunk=_next_task_titles),
    ExportColumn("next_task_due_at", per_chunk=_next_task_due),
    ExportColumn("last_touch_at", per_chunk=_last_touches),
)


def _custom_value(key: str, field_type: str) -> Callable[[Any], Cell]:
    """A custom field's stored JSON value as a cell: dates as dates, the rest as stored."""

    def value(values: Any) -> Cell:
        found = values.get(key) if isinstance(values, dict) else None
        if field_type == FieldType.DATE and isinstance(found, str):
            try:
                return dt.date.fromisoformat(found)
            except ValueError:
                return found
        if isinstance(found, list | dict):
            return str(found)
        return found

    return value


def custom_columns() -> list[ExportColumn]:
    """A ``custom.<key>`` column per custom field definition, in the definitions' order."""
    return [
        ExportColumn(
            f"{CUSTOM_PREFIX}{definition.key}",
            ("custom_fields",),
            _custom_value(definition.key, definition.field_type),
        )
        for definition in CustomFieldDefinition.objects.all()
    ]


def export_columns(names: Sequence[str] | None = None) -> list[ExportColumn]:
    """The columns called ``names``, in that order; every lead column and every custom
    field when None. Raises ``UnknownColumn`` naming the first one that is neither."""
    available = {column.name: column for column in (*lead_columns(), *custom_columns())}
    if names is None:
        return list(available.values())
    available.update({column.name: column for column in WORK_COLUMNS})
    unknown = [name for name in names if name not in available]
    if unknown:
        raise UnknownColumn(f"Unknown column: {unknown[0]}.")
    return [available[name] for name in dict.fromkeys(names)]


# --- Rows ------------------------------------------------------------------------------


def leads_export_rows(*, leads: QuerySet[Lead], columns: Sequence[ExportColumn]) -> Iterator[list]:
    """The cells of ``columns`` for each lead of ``leads``, in the queryset's order (by id
    when it has none), read through one cursor in chunks of ``EXPORT_CHUNK`` rows.

    ``leads`` is what the caller shows: already within ``Lead.objects.visible_to`` and
    its filters. On PostgreSQL the rows are read in a transaction of their own, so the
    cursor streams them instead of being copied whole on the server first (a cursor
    opened outside a transaction must outlive it), and the file is one snapshot.
    """
    reads = list(dict.fromkeys(["id", *(name for column in columns for name in column.reads)]))
    position = {name: index for index, name in enumerate(reads)}
    if not leads.ordered:
        leads = leads.order_by("id")
    annotations = {name: make() for column in columns for name, make in column.annotations}
    if annotations:
        leads = leads.annotate(**annotations)
    query = leads.prefetch_related(None).values_list(*reads)
    with _one_snapshot(leads.db):
        rows = query.iterator(chunk_size=EXPORT_CHUNK)
        try:
            while chunk := list(islice(rows, EXPORT_CHUNK)):
                cells = _cell_getters(columns, position, chunk)
                for row in chunk:
                    yield [cell(row) for cell in cells]
        finally:
            # Within the transaction, which the server-side cursor does not outlive.
            rows.close()  # type: ignore[attr-defined]  # QuerySet.iterator() is a generator


def _cell_getters(
    columns: Sequence[ExportColumn], position: dict[str, int], chunk: list[tuple]
) -> list[Callable[[tuple], Cell]]:
    """For each column, what reads its cell from a row of ``chunk`` (whose first value is
    the lead's id); the columns of another table are looked up for the chunk first."""
    getters: list[Callable[[tuple], Cell]] = []
    for column in columns:
        places = [position[name] for name in column.reads]
        if column.per_chunk is not None:
            getters.append(_looked_up(column.per_chunk([row[0] for row in chunk])))
        elif column.value is None:
            getters.append(itemgetter(places[0]))
        else:
            getters.append(_computed(column.value, places))
    return getters


def _looked_up(found: dict[int, Cell]) -> Callable[[tuple], Cell]:
    return lambda row: found.get(row[0], "")


def _computed(value: Callable[..., Cell], places: list[int]) -> Callable[[tuple], Cell]:
    return lambda row: value(*[row[place] for place in places])


@contextmanager
def _one_snapshot(using: str) -> Iterator[None]:
    """A transaction around the export's reads on PostgreSQL; nothing elsewhere (on
    SQLite one statement is one snapshot already, and its transactions take the write
    lock up front, which would stop every writer while the file is written)."""
    if connections[using].vendor != "postgresql":
        yield
        return
    with transaction.atomic(using=using):
        yield


# --- CSV -------------------------------------------------------------------------------


def csv_text(value: str) -> str:
    """Text a spreadsheet shows as text: a leading ``'`` when it would start a formula
    (as ``csv_chunks`` writes each text cell)."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def _csv_cell(value: Cell, zone: dt.tzinfo) -> str | int | float:
    """A cell that is not text (``csv_chunks`` writes text itself, the commonest cell)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value  # the csv module writes numbers as Python does
    if isinstance(value, dt.datetime):
        return value.astimezone(zone).replace(microsecond=0).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def csv_chunks(*, header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> Iterator[bytes]:
    """The CSV file of ``rows`` under ``header``, as UTF-8 pieces of a few hundred rows,
    times in the current time zone (the site's).

    Starts with a byte order mark, by which Excel knows the file is UTF-8 (without it,
    it reads the system's code page and garbles every accent).
    """
    zone = timezone.get_current_timezone()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(header)
    for count, row in enumerate(rows, start=1):
        writer.writerow(
            [
                (f"'{value}" if value.startswith(FORMULA_STARTS) else value)
                if type(value) is str
                else _csv_cell(value, zone)
                for value in row
            ]
        )
        if count % CSV_ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


# --- XLSX ------------------------------------------------------------------------------


class _XlsxSheets:
    """Rows of one workbook across as many sheets as they need, each with the header."""

    def __init__(self, workbook: xlsxwriter.Workbook, header: Sequence[str]) -> None:
        self.workbook, self.header = workbook, list(header)
        self.sheet: Any = None
        self.sheets = 0
        self.row = XLSX_SHEET_ROWS
        self.datetime = workbook.add_format({"num_format": XLSX_DATETIME_FORMAT})
        self.date = workbook.add_format({"num_format": XLSX_DATE_FORMAT})

    def next_row(self) -> int:
        if self.row == XLSX_SHEET_ROWS:
            self.sheets += 1
            self.sheet = self.workbook.add_worksheet(
                "Leads" if self.sheets == 1 else f"Leads {self.sheets}"
            )
            self.sheet.write_row(0, 0, self.header)
            self.row = 1
        self.row += 1
        return self.row - 1


def xlsx_write(*, header: Sequence[str], rows: Iterable[Sequence[Cell]], file: IO[bytes]) -> None:
    """Write the XLSX workbook of ``rows`` under ``header`` to ``file``, times in the
    current time zone (the site's).

    XlsxWriter's constant-memory mode writes each row out as it comes, with text inline
    rather than in a shared table, so memory stays flat; beyond a sheet's rows the rows
    continue on a new sheet with the header again. Text is always text (never a formula,
    a number or a link), without the control characters the file's XML cannot hold.
    """
    zone = timezone.get_current_timezone()
    workbook = xlsxwriter.Workbook(
        file,
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
        },
    )
    sheets = _XlsxSheets(workbook, header)
    for values in rows:
        row = sheets.next_row()
        sheet = sheets.sheet
        for column, value in enumerate(values):
            if value is None or value == "":
                continue
            if isinstance(value, str):
                sheet.write_string(row, column, ILLEGAL_CHARACTERS_RE.sub("", value))
            elif isinstance(value, bool):
                sheet.write_boolean(row, column, value)
            elif isinstance(value, int | float | Decimal):
                sheet.write_number(row, column, float(value))
            elif isinstance(value, dt.datetime):
                local = value.astimezone(zone).replace(tzinfo=None, microsecond=0)
                sheet.write_datetime(row, column, local, sheets.datetime)
            elif isinstance(value, dt.date):
                sheet.write_datetime(row, column, value, sheets.date)
            else:
                sheet.write_string(row, column, str(value))
    if sheets.sheet is None:
        sheets.next_row()
    workbook.close()

"""Writing the generated rows: ``bulk_create`` on any database, ``COPY`` on PostgreSQL for
big worlds, in chunks of whole companies with their leads so memory stays bounded."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from django.db import connection, models
from django.utils import timezone

from demo.rows import InterestRow, LeadBundle
from leads.models import (
    Activity,
    Company,
    Deal,
    Lead,
    Note,
    StageChange,
    Task,
)

Row = Any


@dataclass(frozen=True, slots=True)
class Column:
    """How one model column is filled from a generated row."""

    attname: str
    column: str
    read: Callable[[Row], Any]
    copy_text: Callable[[Any], str]
    on_row: bool  # False: the model's default (or the wall clock for auto_now)


_COLUMNS: dict[tuple[type[models.Model], type], list[Column]] = {}


def columns_for(model: type[models.Model], row_type: type) -> list[Column]:
    """The model's concrete columns but the primary key, read off ``row_type`` rows by
    attribute name where the row has one."""
    key = (model, row_type)
    if key not in _COLUMNS:
        _COLUMNS[key] = [
            _column(f, row_type) for f in model._meta.concrete_fields if not f.primary_key
        ]
    return _COLUMNS[key]


def _column(f: models.Field[Any, Any], row_type: type) -> Column:
    read: Callable[[Row], Any]
    on_row = hasattr(row_type, f.attname)
    if on_row:
        read = attrgetter(f.attname)
    elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
        read = _wall_clock
    else:
        read = _constant(f.get_default())
    assert f.column is not None  # a concrete field's
    return Column(f.attname, f.column, read, _copy_text_for(f), on_row)


def _wall_clock(row: Row) -> datetime:
    return timezone.now()


def _constant(value: Any) -> Callable[[Row], Any]:
    return lambda row: value


class BulkWriter:
    """Rows through ``bulk_create`` in batches: any database."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size

    def insert(self, model: type[models.Model], rows: Sequence[Row], *, with_ids: bool) -> None:
        if not rows:
            return
        columns = [c for c in columns_for(model, type(rows[0])) if c.on_row]
        objs = [model(**{c.attname: c.read(row) for c in columns}) for row in rows]
        model._default_manager.bulk_create(objs, batch_size=self.batch_size)
        if with_ids:
            for row, obj in zip(rows, objs, strict=True):
                row.id = obj.pk


class CopyWriter:
    """Rows through PostgreSQL's ``COPY ... FROM STDIN``, one text buffer per table and
    chunk. Ids that other rows point at are drawn from the table's sequence first.

    Django's foreign keys are ``DEFERRABLE INITIALLY DEFERRED``: inside one long
    transaction every copied row would queue its checks until commit, millions of
    them. Checking them at the end of each COPY keeps the server's memory bounded;
    the setting lasts until the surrounding transaction ends.
    """

    def __init__(self) -> None:
        self.cursor = connection.cursor()
        self.cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    def insert(self, model: type[models.Model], rows: Sequence[Row], *, with_ids: bool) -> None:
        if not rows:
            return
        columns = columns_for(model, type(rows[0]))
        names = [c.column for c in columns]
        cells = [(c.read, c.copy_text) for c in columns]
        prefix: Callable[[Row], str] = _no_prefix
        if with_ids:
            for row, pk in zip(rows, self._reserve_ids(model, len(rows)), strict=True):
                row.id = pk
            pk_column = model._meta.pk.column
            assert pk_column is not None  # a concrete field's
            names.insert(0, pk_column)
            prefix = _id_prefix
        buffer = io.StringIO()
        write = buffer.write
        for row in rows:
            write(prefix(row) + "\t".join([text(read(row)) for read, text in cells]) + "\n")
        buffer.seek(0)
        quote = connection.ops.quote_name
        sql = (
            f"COPY {quote(model._meta.db_table)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
        )
        self.cursor.cursor.copy_expert(sql, buffer)

    def _reserve_ids(self, model: type[models.Model], count: int) -> list[int]:
        self.cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [model._meta.db_table, model._meta.pk.column, count],
        )
        return [pk for (pk,) in self.cursor.fetchall()]


def _no_prefix(row: Row) -> str:
    return ""


def _id_prefix(row: Row) -> str:
    return f"{row.id}\t"


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_escape(value: Any) -> str:
    return "\\N" if value is None else str(value).translate(_COPY_ESCAPES)


def _copy_json(value: Any) -> str:
    if value == {}:  # most page views
        return "{}"
    return json.dumps(value, ensure_ascii=False).translate(_COPY_ESCAPES)


def _copy_datetime(value: datetime | None) -> str:
    return "\\N" if value is None else value.isoformat()


def _copy_plain(value: Any) -> str:
    return "\\N" if value is None else str(value)


def _copy_bool(value: bool | None) -> str:
    return "\\N" if value is None else ("t" if value else "f")


def _copy_text_for(f: models.Field[Any, Any]) -> Callable[[Any], str]:
    """COPY's text format for a field: \\N for NULL, blanks and backslashes escaped."""
    if isinstance(f, models.JSONField):
        return _copy_json
    if isinstance(f, models.DateTimeField):
        return _copy_datetime
    if isinstance(f, models.BooleanField):
        return _copy_bool
    if isinstance(f, models.IntegerField | models.FloatField | models.DecimalField):
        return _copy_plain
    if isinstance(f, models.ForeignKey):
        return _copy_plain
    return _copy_escape


def write_groups(groups: Sequence[LeadBundle], writer: BulkWriter | CopyWriter) -> None:
    """Write a chunk of groups: companies and leads first (their ids are needed), then
    everything that points at a lead."""
    companies = [g.company for g in groups if g.company is not None]
    writer.insert(Company, companies, with_ids=True)
    leads = [lead for g in groups for lead in g.leads]
    written_at = timezone.now()
    for lead in leads:
        lead.updated_at = written_at
    writer.insert(Lead, leads, with_ids=True)
    interests = [InterestRow(lead, pk) for lead in leads for pk in lead.products]
    writer.insert(Lead.product_interests.through, interests, with_ids=False)
    for model, attribute in (
        (Activity, "activities"),
        (StageChange, "stage_changes"),
        (Deal, "deals"),
        (Task, "tasks"),
        (Note, "notes"),
    ):
        rows = [row for lead in leads for row in getattr(lead, attribute)]
        writer.insert(model, rows, with_ids=False)

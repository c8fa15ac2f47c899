"""Inserting an import's new rows in bulk: ``COPY`` on PostgreSQL, ``bulk_create`` elsewhere.

A chunk of an import creates up to a few thousand rows of one table at a time (leads,
companies, activities, stage changes, and a change record for each). Through
``bulk_create`` Django compiles every cell into the statement, which costs more than
the database takes to store the rows; ``COPY … FROM STDIN`` takes them as text. Rows
that need their ids (to be referred to, or recorded for undo) draw them from the table's
sequence first, in one statement, and are copied with them.

Values are written as the columns store them: text escaped for ``COPY``'s text format,
``None`` as NULL, datetimes in ISO 8601 with their offset, JSON through its field's
encoder. A value the database refuses (an overlong text, a broken constraint) fails the
whole ``COPY``, as it would fail the INSERT.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, router
from django.db.models import Field, JSONField, Model
from django.db.models.expressions import BaseExpression

# COPY's text format: a backslash starts an escape; tabs, newlines and carriage returns
# would end the cell or the row.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
NULL = "\\N"


def copy_text(value: Any) -> str:
    """One cell in COPY's text format."""
    kind = type(value)
    if kind is str:
        return _escaped(value)
    if value is None:
        return NULL
    if kind is int or kind is float or kind is decimal.Decimal:
        return str(value)
    if kind is bool:
        return "t" if value else "f"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return _escaped(json_text(value))
    return _escaped(str(value))


def copy_lines(rows: Iterable[Sequence[Any]]) -> str:
    """Rows in COPY's text format, a line each. Each distinct datetime is converted once:
    the time a chunk is written recurs in every row of it."""
    times: dict[dt.datetime, str] = {}

    def time_text(value: dt.datetime) -> str:
        text = times.get(value)
        if text is None:
            text = times[value] = value.isoformat()
        return text

    convert: dict[type, Callable[[Any], str]] = {
        str: _escaped,
        int: str,
        type(None): _null,
        dt.datetime: time_text,
        bool: _boolean,
        dict: _json_cell,
        decimal.Decimal: str,
    }
    get = convert.get
    return "".join(
        "\t".join([(get(type(value)) or copy_text)(value) for value in row]) + "\n" for row in rows
    )


def _null(value: None) -> str:
    return NULL


def _boolean(value: bool) -> str:
    return "t" if value else "f"


def _json_cell(value: dict[str, Any]) -> str:
    # An empty object, the commonest (a change record's "before" of a new row), as it is.
    return "{}" if not value else _escaped(json_text(value))


def _escaped(text: str) -> str:
    # Looking for the four characters is quicker than translating every one.
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_ESCAPES)
    return text


def json_text(value: Any, encoder: type[json.JSONEncoder] | None = DjangoJSONEncoder) -> str:
    """A JSON value as text (an empty object, the commonest, without encoding it)."""
    if not value and isinstance(value, dict):
        return "{}"
    if encoder is DjangoJSONEncoder:
        # Django's encoder differs from the plain one only in the values that one
        # refuses (dates, decimals, UUIDs…): tried first, the plain one, which is made
        # once, spares making an encoder for each value.
        try:
            return json.dumps(value)
        except TypeError:
            pass
    return json.dumps(value, cls=encoder)


def rows_copy(model: type[Model], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Insert ``rows`` (one value per column, the columns' own names) into the model's
    table; the ids the table gives them are not read back.

    On PostgreSQL one ``COPY``; elsewhere ``bulk_create`` of instances made from the
    rows (the columns' names are then the fields' attribute names, as ``lead_id``).
    Name every column that needs a value: one left out takes the table's default, and
    Django keeps most defaults in Python, not in the table.
    """
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        names = list(columns)
        model._default_manager.bulk_create(
            [model(**dict(zip(names, row, strict=True))) for row in rows], batch_size=1000
        )
        return
    text = copy_lines(rows)
    if text:
        _copy(connection, model._meta.db_table, columns, text)


def rows_insert(
    model: type[Model], columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[int]:
    """Insert ``rows`` as ``rows_copy`` does and answer their new ids, in order: on
    PostgreSQL drawn from the table's sequence before the ``COPY``, without building
    a model instance per row."""
    if not rows:
        return []
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        names = list(columns)
        objs = [model(**dict(zip(names, row, strict=True))) for row in rows]
        model._default_manager.bulk_create(objs, batch_size=1000)
        return [obj.pk for obj in objs]
    pk = model._meta.pk
    assert pk is not None
    ids = ids_reserve(model, len(rows))
    text = copy_lines([pk_value, *row] for pk_value, row in zip(ids, rows, strict=True))
    _copy(connection, model._meta.db_table, [_column(pk), *columns], text)
    return ids


def rows_stage(
    model: type[Model],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    numbers: Sequence[int],
) -> str:
    """Copy ``rows`` (one value per column of the model's table), each with its number
    in the file as the column ``import_row``, into a temporary table of those columns
    emptied at commit; its name (PostgreSQL only). For a statement that inserts from it
    and records what it inserted, in one pass over the rows."""
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    table = model._meta.db_table
    stage = f"{table}_import_staged"
    names = ", ".join(map(quote, columns))
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {quote(stage)} ON COMMIT DELETE ROWS "
            f"AS SELECT {names}, 0 AS import_row FROM {quote(table)} WITH NO DATA"
        )
        # Left over when a transaction around several chunks (a test's) never commits.
        cursor.execute(f"DELETE FROM {quote(stage)}")
    lines = copy_lines([*row, number] for row, number in zip(rows, numbers, strict=True))
    _copy(connection, stage, [*columns, "import_row"], lines)
    return stage


def objects_insert(objs: Sequence[Model]) -> None:
    """Insert new model instances (all of one model) and set their ids, as
    ``bulk_create`` does: on PostgreSQL with ids drawn from the table's sequence and one
    ``COPY``; elsewhere through ``bulk_create``.

    Fields set to a database default (``db_default`` without a Python default) send the
    batch through ``bulk_create`` as well.
    """
    if not objs:
        return
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    fields = [f for f in model._meta.concrete_fields if not f.generated]
    read = _row_reader(fields)
    rows: list[list[Any]] = []
    for obj in objs:
        values = read(obj)
        # The types of plain values, checked at once, spare an isinstance for each cell.
        if not _PLAIN_TYPES.issuperset(map(type, values)) and any(
            isinstance(value, BaseExpression) for value in values
        ):
            rows = []
            break
        rows.append(values)
    if connection.vendor != "postgresql" or not rows:
        model._default_manager.bulk_create(objs, batch_size=1000)
        return
    pk = model._meta.pk
    assert pk is not None
    ids = ids_reserve(model, len(objs))
    position = fields.index(pk)
    for obj, values, pk_value in zip(objs, rows, ids, strict=True):
        values[position] = pk_value
        obj.pk = pk_value
        obj._state.adding = False
        obj._state.db = connection.alias
    columns = [_column(field) for field in fields]
    _copy(connection, model._meta.db_table, columns, copy_lines(rows))


def ids_reserve(model: type[Model], count: int) -> list[int]:
    """``count`` ids from the sequence of the model's table, in order (PostgreSQL)."""
    connection = connections[router.db_for_write(model)]
    pk = model._meta.pk
    assert pk is not None
    with connection.cursor() as cursor:
        key = (connection.alias, model._meta.db_table)
        if key not in _SEQUENCES:
            # Looked up once: asked for in the statement below, it is looked up per id.
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [key[1], _column(pk)])
            _SEQUENCES[key] = cursor.fetchone()[0]
        cursor.execute(
            "SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [_SEQUENCES[key], count]
        )
        return sorted(pk_value for (pk_value,) in cursor.fetchall())


_SEQUENCES: dict[tuple[str, str], str] = {}


_PLAIN_TYPES = frozenset(
    {str, int, float, bool, type(None), dt.datetime, dt.date, decimal.Decimal, dict, list}
)


def _row_reader(fields: Sequence[Field]) -> Callable[[Model], list[Any]]:
    """How to read an instance's values for ``fields`` as the database takes them (the
    ``auto_now`` fields set, as ``bulk_create`` sets them; JSON through its field's
    encoder), in one ``attrgetter`` call rather than a call per field."""
    stamped = [
        f for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
    ]
    names = [field.attname for field in fields]
    get = operator.attrgetter(*names)
    encoded = [
        (index, field.encoder) for index, field in enumerate(fields) if isinstance(field, JSONField)
    ]

    def read(obj: Model) -> list[Any]:
        for field in stamped:
            field.pre_save(obj, True)
        values = list(get(obj)) if len(names) > 1 else [get(obj)]
        for index, encoder in encoded:
            value = values[index]
            if value is not None and not isinstance(value, BaseExpression):
                values[index] = json_text(value, encoder)
        return values

    return read


def _column(field: Field) -> str:
    if field.column is None:
        raise TypeError(f"{field} has no column.")
    return field.column


def _copy(connection: Any, table: str, columns: Sequence[str], text: str) -> None:
    quote = connection.ops.quote_name
    statement = f"COPY {quote(table)} ({', '.join(map(quote, columns))}) FROM STDIN"
    with connection.cursor() as cursor:
        cursor.copy_expert(statement, io.StringIO(text))

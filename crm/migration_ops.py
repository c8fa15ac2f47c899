"""Operations that migrations share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import migrations, models


def covering_index_swap(
    *,
    model_name: str,
    table: str,
    fields: Sequence[str],
    key: str,
    old: str,
    new: str,
    include: Sequence[str],
    old_include: Sequence[str] = (),
) -> migrations.SeparateDatabaseAndState:
    """Replace the index ``old`` by ``new`` on the same ``key`` (SQL, e.g.
    ``("owner_id", "score" DESC)``) that also holds the ``include`` columns, so the
    queries reading only those columns read the index alone.

    On PostgreSQL the new index is built CONCURRENTLY beside the old one, which is dropped
    only once the new one serves: the table never loses it and writes never block. Use
    it in a migration with ``atomic = False``. INCLUDE is PostgreSQL's alone: elsewhere
    the new index has the key columns, and so has the migration state (``fields``, as
    ``models.Index`` takes them).
    """

    def create(schema_editor: Any, name: str, columns: Sequence[str]) -> None:
        if schema_editor.connection.vendor != "postgresql":
            schema_editor.execute(f'CREATE INDEX "{name}" ON "{table}" {key}')
            return
        covered = " INCLUDE (" + ", ".join(f'"{c}"' for c in columns) + ")" if columns else ""
        schema_editor.execute(
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON "{table}" {key}{covered}'
        )

    def drop(schema_editor: Any, name: str) -> None:
        postgres = schema_editor.connection.vendor == "postgresql"
        schema_editor.execute(f'DROP INDEX {"CONCURRENTLY " if postgres else ""}IF EXISTS "{name}"')

    def swap(apps: Any, schema_editor: Any) -> None:
        create(schema_editor, new, include)
        drop(schema_editor, old)

    def unswap(apps: Any, schema_editor: Any) -> None:
        create(schema_editor, old, old_include)
        drop(schema_editor, new)

    return migrations.SeparateDatabaseAndState(
        database_operations=[migrations.RunPython(swap, unswap, elidable=False)],
        state_operations=[
            migrations.RemoveIndex(model_name=model_name, name=old),
            migrations.AddIndex(
                model_name=model_name, index=models.Index(fields=list(fields), name=new)
            ),
        ],
    )

"""What the writers of one chunk of rows share: the prepared rows, the outcome they
count into, the change records for undo, and the lookups (owners, leads by key, who may
change which lead).

A chunk is written in one transaction by one of ``imports.lead_rows``,
``imports.company_rows`` or ``imports.history_rows``; each reads what its rows name
with a query per kind of object, not one per row (each key through its index:
``ids_by_key``), and writes in bulk, new rows and change records with ``COPY``
(``imports.bulk_insert``).
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import F, Field, Model, Q
from django.db.models.functions import Lower

from crm.db import update_rows
from crm.models import User
from leads.company_domains import free_mail_domains
from leads.models import Lead

from .bulk_insert import rows_copy
from .mapping import MatchKey
from .models import ChangeAction, ImportChange, ImportRowError, ObjectType


@dataclass
class Prepared:
    """A row cleaned without errors: its number, its cells as read and its values."""

    number: int
    cells: list[Any]
    values: dict[str, Any]


# The columns of a change record and of a failed row, as ``ChunkOutcome`` keeps them.
CHANGE_COLUMNS = (
    "job_id",
    "row",
    "object_type",
    "object_id",
    "lead_id",
    "action",
    "before",
    "after",
    "undone",
)
ERROR_COLUMNS = ("job_id", "row", "values", "reason")


@dataclass
class ChunkOutcome:
    """What a chunk did, counted, with its change records and failed rows (kept as rows
    of ``CHANGE_COLUMNS`` and ``ERROR_COLUMNS``, stored by ``write``)."""

    job_id: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    changes: list[tuple[Any, ...]] = field(default_factory=list)
    errors: list[tuple[Any, ...]] = field(default_factory=list)

    def fail(self, row: Prepared | int, cells: list[Any] | None, reason: str) -> None:
        number = row.number if isinstance(row, Prepared) else row
        if isinstance(row, Prepared):
            cells = row.cells
        self.failed += 1
        self.errors.append((self.job_id, number, cells or [], reason))

    def record(
        self,
        row: Prepared,
        obj: Model,
        object_type: ObjectType,
        *,
        lead_id: int | None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        action = ChangeAction.UPDATED if before is not None else ChangeAction.CREATED
        self.changes.append(
            (
                self.job_id,
                row.number,
                object_type.value,
                obj.pk,
                lead_id,
                action.value,
                _json(before or {}),
                _json(after or {}),
                False,
            )
        )

    def record_created(
        self, row: Prepared, object_type: ObjectType, object_id: int, *, lead_id: int | None
    ) -> None:
        """Record a row created with nothing to check before undo deletes it."""
        self.changes.append(
            (
                self.job_id,
                row.number,
                object_type.value,
                object_id,
                lead_id,
                ChangeAction.CREATED.value,
                {},
                {},
                False,
            )
        )

    def write(self) -> None:
        """Store the change records and the failed rows; call in the chunk's transaction."""
        rows_copy(ImportChange, CHANGE_COLUMNS, self.changes)
        rows_copy(ImportRowError, ERROR_COLUMNS, self.errors)

    def counts(self) -> dict[str, int]:
        return {
            name: getattr(self, name)
            for name in ("created", "updated", "unchanged", "skipped", "failed")
        }


class Changed:
    """The stored rows a chunk changed, each with the fields changed in it (over all the
    chunk's rows that named it), written by ``write`` in one UPDATE per set of fields."""

    def __init__(self) -> None:
        self._rows: dict[int, tuple[Model, set[str]]] = {}

    def add(self, obj: Model, fields: set[str]) -> None:
        stored, already = self._rows.get(obj.pk, (obj, set()))
        self._rows[obj.pk] = (stored, already | fields)

    def ids_changing(self, names: Iterable[str]) -> list[int]:
        """The ids of the rows with a change to one of ``names``."""
        wanted = set(names)
        return [pk for pk, (_, fields) in self._rows.items() if fields & wanted]

    def write(self, **values: Any) -> None:
        """Write each row's changed fields, with ``values`` set on every row as well."""
        groups: dict[tuple[str, ...], list[Model]] = {}
        for obj, fields in self._rows.values():
            for name, value in values.items():
                setattr(obj, name, value)
            groups.setdefault(tuple(sorted(fields | set(values))), []).append(obj)
        for names, objs in groups.items():
            update_rows(objs, names)


# A table is analyzed again when more rows changed since its last ANALYZE than it had
# then: at most twenty times as an import grows it from a thousand rows to a billion.
STALE_SHARE = 1.0


def statistics_refresh(*models: type[Model]) -> list[str]:
    """ANALYZE the models' tables where more rows changed since the last ANALYZE than
    they had (PostgreSQL); their names.

    An import grows its tables many times over. Until autovacuum analyzes them (never,
    where it is switched off) the planner takes a table that was empty for empty and
    answers each chunk's lookups by reading the whole of it, which grows with every
    chunk.
    """
    if connection.vendor != "postgresql":
        return []
    tables = [model._meta.db_table for model in models]
    with connection.cursor() as cursor:
        # ``reltuples``: the rows the table had at its last ANALYZE (or VACUUM); -1 never.
        cursor.execute(
            "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
            "WHERE s.relname = ANY(%s) "
            "AND s.n_mod_since_analyze > 1000 + %s * greatest(c.reltuples, 0)",
            [tables, STALE_SHARE],
        )
        stale = [name for (name,) in cursor.fetchall()]
        for name in stale:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(name)}")
    return stale


def row_update(
    row: Prepared,
    obj: Model,
    wanted: dict[str, Any],
    outcome: ChunkOutcome,
    changed: Changed,
    *,
    object_type: ObjectType,
    lead_id: int | None,
) -> None:
    """Apply a row's values to a stored object (or one this chunk creates), recording
    the change for undo and counting it; the write is ``changed.write``."""
    fields = {name for name, value in wanted.items() if getattr(obj, name) != value}
    if not fields:
        outcome.unchanged += 1
        return
    before = {name: getattr(obj, name) for name in fields}
    for name in fields:
        setattr(obj, name, wanted[name])
    outcome.updated += 1
    if obj.pk is None:
        return  # created earlier in this chunk: the later row's values go in with it
    after = {name: wanted[name] for name in fields}
    outcome.record(row, obj, object_type, lead_id=lead_id, before=before, after=after)
    changed.add(obj, fields)


def _json(values: dict[str, Any]) -> dict[str, Any]:
    """Values as JSON keeps them: decimals as text, datetimes in ISO 8601."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, decimal.Decimal):
            value = str(value)
        elif isinstance(value, dt.datetime | dt.date):
            value = value.isoformat()
        out[name] = value
    return out


def stored_form(model: type[Model], name: str, value: Any) -> Any:
    """A recorded value as the field stores it (the reverse of ``_json``)."""
    field_obj = model._meta.get_field(name)
    if value is None:
        return None
    return field_obj.to_python(value)  # type: ignore[union-attr]


def same(model: type[Model], name: str, current: Any, recorded: Any) -> bool:
    return current == stored_form(model, name, recorded)


def ids_by_key(
    model: type[Model], column: str, keys: Iterable[str | None], *, lower: bool = False
) -> dict[str, int]:
    """The id of the row whose ``column`` (in lower case with ``lower``, as its unique
    index reads it) is each of ``keys``, by key; keys no row has are left out.

    On PostgreSQL each key is looked up through the index on its own (a lateral
    subquery). Asked as one ``IN`` list of a chunk's thousand keys, PostgreSQL may
    estimate a thousand index lookups dearer than reading the whole table, and read it:
    a table the import grows, for every chunk. For a column indexed only where it is
    not empty (a company's domain), empty keys are never looked up.
    """
    wanted = sorted({key for key in keys if key})
    if not wanted:
        return {}
    key_field = Lower(column) if lower else F(column)
    if connection.vendor != "postgresql":
        rows = model._default_manager.annotate(key=key_field).filter(key__in=wanted)
        return dict(rows.values_list("key", "pk"))
    quote = connection.ops.quote_name
    meta = model._meta
    field, pk = meta.get_field(column), meta.pk
    if not isinstance(field, Field) or not field.column or pk is None or not pk.column:
        raise TypeError(f"{model.__name__}.{column} is no column to look rows up by.")
    column_sql = quote(field.column)
    key_sql = f"lower({column_sql})" if lower else column_sql
    # A text column's partial index leaves out empty values, as this predicate does.
    where = "TRUE" if field.null else f"NOT ({column_sql} = '')"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT given.key, found.id
            FROM unnest(%s::text[]) AS given (key)
            CROSS JOIN LATERAL (
                SELECT {quote(pk.column)} AS id FROM {quote(meta.db_table)}
                WHERE {key_sql} = given.key AND {where}
                LIMIT 1
            ) AS found
            """,
            [wanted],
        )
        return dict(cursor.fetchall())


class Context:
    """Lookups a whole run shares: the people owners name, and who runs the import."""

    def __init__(self, *, user: User | None, match_key: str) -> None:
        self.user = user
        self.match_key = match_key
        self._people: dict[str, int | None] = {}
        self._free_mail: frozenset[str] | None = None

    def company_domain_of(self, email: str) -> str:
        """The email's domain when it can name a company (not a free-mail provider)."""
        domain = email.rpartition("@")[2]
        if self._free_mail is None:
            self._free_mail = free_mail_domains()
        return "" if domain in self._free_mail else domain

    def owner_id(self, name: str) -> int | None:
        """An active user's id by username or email (any case); None when there is none."""
        if name not in self._people:
            found = (
                User.objects.filter(is_active=True)
                .filter(Q(username__iexact=name) | Q(email__iexact=name))
                .order_by("pk")
                .values_list("pk", flat=True)
                .first()
            )
            self._people[name] = found
        return self._people[name]

    def leads_by_key(self, keys: Iterable[str]) -> dict[str, Lead]:
        """The leads the rows name by the match key, by that key."""
        ids = self.lead_ids_by_key(keys)
        leads = Lead.objects.in_bulk(list(ids.values()))
        return {key: leads[pk] for key, pk in ids.items() if pk in leads}

    def lead_ids_by_key(self, keys: Iterable[str | None]) -> dict[str, int]:
        """The ids of the leads the rows name by the match key, by that key (the rows of
        a lead's history need no more of the lead than its id)."""
        if self.match_key == MatchKey.EMAIL:
            return ids_by_key(Lead, "email", keys, lower=True)
        return ids_by_key(Lead, "external_id", keys)

    def changeable(self, lead_ids: Iterable[int]) -> set[int]:
        """Of these leads, the ones the person running the import may change (all of
        them for a command run by nobody in particular)."""
        ids = set(lead_ids)
        if self.user is None or self.user.sees_all_leads or not ids:
            return ids
        return set(
            Lead.objects.visible_to(self.user).filter(pk__in=ids).values_list("pk", flat=True)
        )

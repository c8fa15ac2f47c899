"""The few pieces of SQL the ORM does not express: seconds between two times, and
percentiles by group (``percentile_cont`` on PostgreSQL, the same interpolation in
window functions elsewhere), so that both databases return the same figures."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import FloatField, Func, QuerySet
from django.db.models.sql.compiler import SQLCompiler


def seconds_between(end: str, start: str) -> str:
    """SQL for the seconds from ``start`` to ``end`` (two SQL expressions)."""
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM ({end}) - ({start}))"
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


# A report's statements each read up to a million leads once: hashes of that size
# spill to disk at PostgreSQL's default work_mem, and the JIT compilation PostgreSQL
# starts at that size costs more than it saves on passes this short (a pass over the
# leads took about 15 % longer with it).
REPORT_WORK_MEM = "64MB"


@contextmanager
def report_reads() -> Iterator[None]:
    """One transaction for a report's reads, with the settings above (PostgreSQL; set
    locally, they end with the transaction, so other work on the connection keeps its
    own)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('jit', 'off', true), set_config('work_mem', %s, true)",
                    [REPORT_WORK_MEM],
                )
        yield


def queryset_sql(queryset: QuerySet[Any]) -> tuple[str, tuple[Any, ...]]:
    sql, params = queryset.query.sql_with_params()
    return sql, tuple(params)


def percentiles_by_group(
    source_sql: str, params: Sequence[Any], *, fractions: Sequence[float]
) -> dict[Any, tuple[int, list[float | None]]]:
    """For ``source_sql`` selecting ``(grp, val)`` rows: per group, the count of non-null
    values and the continuous percentile of each fraction (linear interpolation between
    the two nearest ranks, as PostgreSQL's ``percentile_cont``)."""
    if connection.vendor == "postgresql":
        columns = ", ".join(
            f"percentile_cont({float(p)}) WITHIN GROUP (ORDER BY val)" for p in fractions
        )
        sql = (
            f"SELECT grp, COUNT(val), {columns} FROM ({source_sql}) src "
            "WHERE val IS NOT NULL GROUP BY grp"
        )
    else:
        sql = _portable_percentiles(source_sql, fractions)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return {
        row[0]: (int(row[1]), [None if v is None else float(v) for v in row[2:]]) for row in rows
    }


def _portable_percentiles(source_sql: str, fractions: Sequence[float]) -> str:
    """Percentiles from row numbers: the value at rank ``p * (n - 1)``, interpolated.

    The rank is worked out in integer thousandths, whose division truncates on every
    database (a cast to integer rounds on some and truncates on others).
    """
    parts = []
    for i, p in enumerate(fractions):
        scaled = f"({round(p * 1000)} * (n - 1))"
        low = f"({scaled} / 1000)"
        parts.append(
            f"MAX(CASE WHEN rn = {low} THEN val END) AS lo{i}, "
            f"MAX(CASE WHEN rn = {low} + 1 THEN val END) AS hi{i}, "
            f"MAX({scaled} / 1000.0 - {low}) AS fr{i}"
        )
    picks = ", ".join(
        f"lo{i} + (COALESCE(hi{i}, lo{i}) - lo{i}) * fr{i}" for i in range(len(fractions))
    )
    return (
        f"SELECT grp, n, {picks} FROM ("
        f"SELECT grp, MAX(n) AS n, {', '.join(parts)} FROM ("
        "SELECT grp, val, ROW_NUMBER() OVER (PARTITION BY grp ORDER BY val) - 1 AS rn, "
        "COUNT(*) OVER (PARTITION BY grp) AS n "
        f"FROM ({source_sql}) src WHERE val IS NOT NULL) ranked GROUP BY grp) picked"
    )


class EpochSeconds(Func):
    """Seconds from the second expression to the first, as a float, on any database."""

    output_field = FloatField()
    arity = 2

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> tuple[str, tuple[str | int, ...]]:
        end_sql, end_params = compiler.compile(self.source_expressions[0])
        start_sql, start_params = compiler.compile(self.source_expressions[1])
        return seconds_between(end_sql, start_sql), (*end_params, *start_params)

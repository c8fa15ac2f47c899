"""The rollup of rule matches behind Rule effectiveness: how many leads each rule
matches, per day of creation and owner.

Which leads a rule matches is kept by the database from the ledger
(``scoring.models.RuleMatch``), current in every transaction. Counting those matches
over the leads in view during a request costs seconds at a million leads, so their
counts per (model, rule, day, owner) are rolled up (``RuleMatchCount``), counted again
on the bulk queue within a minute of every rescore job
(``scoring.signals.rescore_finished``), when the page finds them never counted on many
matches, nightly by beat (``REPORTS_REFRESH_HOUR``) and by ``python manage.py
reports_refresh``; the page says as of when. A count replaces every old row in one
transaction: a page reading meanwhile sees the old counts or the new ones, never half.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef
from django.db.models.functions import TruncDate
from django.utils import timezone

from crm.resilience import cache_call, task_enqueue
from leads.models import Lead
from scoring.models import LeadScore, RuleMatch

from .models import Rollup, RollupName, RuleMatchCount
from .sql import queryset_sql

# Memory for the count's joins and grouping, which spill to disk at the default.
REFRESH_WORK_MEM = "256MB"
# Counts written per INSERT on SQLite.
COUNTS_BATCH = 5_000


def _counts_sql() -> tuple[str, tuple[Any, ...]]:
    """The SELECT of the matches counted per model, rule, day of creation and owner, over
    the leads the model scores (the ones Rule effectiveness counts)."""
    scored = LeadScore.objects.filter(lead_id=OuterRef("lead_id"), model_id=OuterRef("model_id"))
    counts = (
        RuleMatch.objects.filter(Exists(scored))
        .order_by()
        .values("model_id", "rule_id", day=TruncDate("lead__created_at"), owner=F("lead__owner_id"))
        .annotate(leads=Count("*"))
        .values_list("model_id", "rule_id", "day", "owner", "leads")
    )
    return queryset_sql(counts)


def rule_matches_refresh() -> Rollup:
    """Count the rule matches again and record as of when; returns the record, whose
    ``rows`` are the matches counted.

    The counts are selected, then written: PostgreSQL runs a SELECT in parallel workers,
    never an ``INSERT … SELECT``, and the counts are a few rows for every million
    matches read. Runs in a transaction of its own. Called outside any transaction on
    PostgreSQL, it then vacuums the counts (which a transaction forbids).
    """
    started = time.perf_counter()
    as_of = timezone.now()
    table = RuleMatchCount._meta.db_table
    with transaction.atomic():
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL work_mem = %s", [REFRESH_WORK_MEM])
                # A second count at the same time waits for this one; readers do not.
                cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
            cursor.execute(*_counts_sql())
            counted = cursor.fetchall()
            cursor.execute(f"DELETE FROM {table}")
            _counts_write(cursor, counted)
        rollup, _ = Rollup.objects.update_or_create(
            name=RollupName.RULE_MATCHES,
            defaults={
                "built_at": as_of,
                "seconds": time.perf_counter() - started,
                "rows": sum(row[-1] for row in counted),
            },
        )
    _tidy(table)
    return rollup


def _counts_write(cursor: Any, counted: list[tuple[Any, ...]]) -> None:
    """Write the counts (model, rule, day, owner, leads): on PostgreSQL in one statement,
    a column an array."""
    if connection.vendor != "postgresql":
        RuleMatchCount.objects.bulk_create(
            [
                RuleMatchCount(model_id=model, rule_id=rule, day=day, owner_id=owner, leads=n)
                for model, rule, day, owner, n in counted
            ],
            batch_size=COUNTS_BATCH,
        )
        return
    columns = list(zip(*counted, strict=True)) if counted else [()] * 5
    cursor.execute(
        f"INSERT INTO {RuleMatchCount._meta.db_table} (model_id, rule_id, day, owner_id, leads) "
        "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::date[], %s::bigint[], %s::int[])",
        [list(column) for column in columns],
    )


def _tidy(table: str) -> None:
    """Clear the replaced rows and refresh the statistics: the pages' index-only scans
    need the visibility map, and servers may run without autovacuum."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table}")


def stale_lead_facts() -> list[int]:
    """The ids of the leads whose report facts (``Lead.furthest_step`` and
    ``Lead.deal_outcome``, which every report counts by) differ from their stage history
    and deals: none while every write keeps them. Read only; a few index probes per lead,
    seconds for a million."""
    return list(Lead.objects.stale_facts().order_by("pk").values_list("pk", flat=True))


# While a count of the rule matches waits on the bulk queue, later requests join it: it
# starts after them, so it counts what they changed. The mark is taken off when the
# count starts (``rule_matches_count_started``); it lapses on its own after this many
# seconds, should the task be lost.
REFRESH_QUEUED_SECONDS = 300
REFRESH_QUEUED_KEY = "reports:rule-matches-refresh-queued"


def rule_matches_refresh_request() -> bool:
    """Queue a count of the rule matches on the bulk queue, unless one is waiting there
    already; call after commit. Whether one was queued. When the cache cannot be reached
    the count is queued unmarked; when the broker cannot, the night's count catches up."""
    from .tasks import refresh_rollups  # the tasks module imports this one

    mark = partial(cache.add, REFRESH_QUEUED_KEY, 1, timeout=REFRESH_QUEUED_SECONDS)
    if not cache_call(mark, default=True, what="Rule matches refresh marker"):
        return False
    return task_enqueue(refresh_rollups, what="Count of the rule matches")


def rule_matches_count_started() -> None:
    """A queued count starts: a request from now on needs a count of its own."""
    cache_call(
        partial(cache.delete, REFRESH_QUEUED_KEY), default=None, what="Rule matches refresh marker"
    )


def rule_matches_on_rescore(sender: Any, **kwargs: Any) -> None:
    """``scoring.signals.rescore_finished`` receiver: a rescore changed which leads the
    rules match, so Rule effectiveness counts them again within a minute."""
    rule_matches_refresh_request()


def rollup_built(name: str) -> Rollup | None:
    """The record of a rollup's last rebuild, None when it was never built."""
    return Rollup.objects.filter(name=name).first()

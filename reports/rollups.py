"""The nightly rollup of rule matches: the ledger reduced to what Rule effectiveness counts.

Which leads a rule matched is the set of distinct (model, rule, lead) awards that were
never reversed. On a large ledger (tens of millions of entries) reducing it takes far
longer than a page may, so it is rebuilt on the bulk queue after every rescore job
(``scoring.signals.rescore_finished``), when the page finds it never built on a large
ledger, nightly by beat (``REPORTS_REFRESH_HOUR``) and by ``python manage.py
reports_refresh``; the page reads the rows and says when they were built.

Two tables: the matches themselves (``RuleMatch``) and their counts per day of creation
and owner (``RuleMatchCount``), which answer the page's usual scopes (a range of days,
the owners a person sees) without touching the matches. The rebuild is set-based
(``INSERT ... SELECT``) and replaces every old row in one transaction: a page reading
meanwhile sees the old rows or the new ones, never half.
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
from scoring.models import LeadScore, ScoreEntry

from .models import Rollup, RollupName, RuleMatch, RuleMatchCount
from .sql import queryset_sql

# Memory for the rebuild's DISTINCT and anti-join, which spill to disk at the default.
REFRESH_WORK_MEM = "256MB"


def _matches_sql() -> str:
    entries = ScoreEntry._meta.db_table
    return (
        f"INSERT INTO {RuleMatch._meta.db_table} (model_id, rule_id, lead_id) "
        f"SELECT DISTINCT e.model_id, e.rule_id, e.lead_id FROM {entries} e "
        "WHERE e.rule_id IS NOT NULL AND e.reversal_of_id IS NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {entries} r WHERE r.reversal_of_id = e.id)"
    )


def _counts_sql() -> tuple[str, tuple[Any, ...]]:
    """Matches counted per model, rule, day of creation and owner, over the leads the
    model scores (the ones Rule effectiveness counts)."""
    scored = LeadScore.objects.filter(lead_id=OuterRef("lead_id"), model_id=OuterRef("model_id"))
    counts = (
        RuleMatch.objects.filter(Exists(scored))
        .order_by()
        .values("model_id", "rule_id", day=TruncDate("lead__created_at"), owner=F("lead__owner_id"))
        .annotate(leads=Count("*"))
        .values_list("model_id", "rule_id", "day", "owner", "leads")
    )
    sql, params = queryset_sql(counts)
    table = RuleMatchCount._meta.db_table
    return f"INSERT INTO {table} (model_id, rule_id, day, owner_id, leads) {sql}", params


def rule_matches_refresh() -> Rollup:
    """Rebuild the rule matches from the ledger and record as of when; returns the record.

    Runs in a transaction of its own. Called outside any transaction on PostgreSQL, it
    then vacuums the two tables (which a transaction forbids).
    """
    started = time.perf_counter()
    as_of = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL work_mem = %s", [REFRESH_WORK_MEM])
                # A second rebuild at the same time waits for this one; readers do not.
                cursor.execute(f"LOCK TABLE {RuleMatch._meta.db_table} IN EXCLUSIVE MODE")
            cursor.execute(f"DELETE FROM {RuleMatchCount._meta.db_table}")
            cursor.execute(f"DELETE FROM {RuleMatch._meta.db_table}")
            cursor.execute(_matches_sql())
            rows = cursor.rowcount
            cursor.execute(*_counts_sql())
        rollup, _ = Rollup.objects.update_or_create(
            name=RollupName.RULE_MATCHES,
            defaults={
                "built_at": as_of,
                "seconds": time.perf_counter() - started,
                "rows": rows,
            },
        )
    _tidy(RuleMatch._meta.db_table)
    _tidy(RuleMatchCount._meta.db_table)
    return rollup


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


# At most one rebuild of the rule matches is queued per this many seconds.
REFRESH_QUEUED_SECONDS = 60
REFRESH_QUEUED_KEY = "reports:rule-matches-refresh-queued"


def rule_matches_refresh_request() -> bool:
    """Queue a rebuild of the rule matches on the bulk queue, unless one was queued in
    the last minute; call after commit. Whether one was queued. When the cache cannot
    be reached the rebuild is queued unmarked; when the broker cannot, the night's
    rebuild catches up."""
    from .tasks import refresh_rollups  # the tasks module imports this one

    mark = partial(cache.add, REFRESH_QUEUED_KEY, 1, timeout=REFRESH_QUEUED_SECONDS)
    if not cache_call(mark, default=True, what="Rule matches refresh marker"):
        return False
    return task_enqueue(refresh_rollups, what="Rebuild of the rule matches")


def rule_matches_on_rescore(sender: Any, **kwargs: Any) -> None:
    """``scoring.signals.rescore_finished`` receiver: a rescore changed the ledger, so
    Rule effectiveness counts again from it within a minute or two."""
    rule_matches_refresh_request()


def rollup_built(name: str) -> Rollup | None:
    """The record of a rollup's last rebuild, None when it was never built."""
    return Rollup.objects.filter(name=name).first()

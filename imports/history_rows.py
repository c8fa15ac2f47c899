"""Writing a chunk of a lead's history: activities (one row per event) and deals.

Activities are stored without the announcement that would score them in real time,
hand leads off or end nurture enrollments, and marked scored: the import scores their
leads once at the end, each activity at its own time with decay. They go in with
``COPY`` (``imports.bulk_insert``), and their leads' first and last activity times are
widened once the job's rows are in, lead by lead in batches, rather than with every
chunk. Each carries an idempotency key made from its lead and content, so the same
file imported again finds them stored ("unchanged").

Deals are matched by lead and name (any case); each lead's ``deal_outcome`` is worked
out again from its deals in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Max, Min
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone

from leads.models import Activity, Deal, DealStatus, Lead

from .bulk_insert import objects_insert, rows_insert, rows_stage
from .chunks import Changed, ChunkOutcome, Context, Prepared, row_update, statistics_refresh
from .mapping import MatchKey
from .models import ChangeAction, ImportChange, ImportJob, ObjectType

ACTIVITY_SOURCE = "import"
# Clocks differ: an event a few minutes "in the future" is taken as now-ish, not refused.
FUTURE_SLACK = dt.timedelta(hours=1)
# Leads whose activity times are widened in one transaction at the end of a job.
SPAN_BATCH = 5000


def _leads_of(
    rows: list[Prepared], context: Context, outcome: ChunkOutcome
) -> list[tuple[Prepared, int]]:
    """Each row with its lead's id by the match key, the person's visibility applied."""
    key_name = context.match_key
    known = context.lead_ids_by_key(row.values.get(key_name) for row in rows)
    allowed = context.changeable(known.values())
    label = "email" if key_name == MatchKey.EMAIL else "external id"
    found = []
    for row in rows:
        key = row.values.get(key_name)
        lead_id = known.get(key) if key else None
        if not key:
            outcome.fail(row, None, f"The row has no {label}, which leads are matched on.")
        elif lead_id is None:
            outcome.fail(row, None, f"No lead with the {label} “{key}”.")
        elif lead_id not in allowed:
            outcome.fail(row, None, "You may not change this lead (another team's).")
        else:
            found.append((row, lead_id))
    return found


def activity_key(lead_id: int, values: dict[str, Any]) -> str:
    """The idempotency key of an imported event: the same lead, type, time, page,
    duration and description make the same key, whichever file or job brings them."""
    parts = [
        str(lead_id),
        values["type"],
        values["occurred_at"].astimezone(dt.UTC).isoformat(),
        values.get("url", ""),
        str(values.get("duration_seconds", "")),
        values.get("description", ""),
    ]
    return "import-" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:48]


# The columns an imported activity fills, as ``write_activity_rows`` gives them.
ACTIVITY_COLUMNS = (
    "lead_id",
    "type",
    "occurred_at",
    "url",
    "duration_seconds",
    "properties",
    "source",
    "idempotency_key",
    "received_at",
    "scored_at",
)


def write_activity_rows(
    *, job: ImportJob, context: Context, rows: list[Prepared], outcome: ChunkOutcome
) -> None:
    """Store each row's event unless it is stored already (by its key) or dated in the
    future. The leads' first and last activity times are brought up to date once, when
    the job's rows are in (``activity_spans_widen``): written per chunk, they would
    write each lead's row again for every chunk that names it."""
    statistics_refresh(Activity)
    now = timezone.now()
    pending: dict[str, tuple[Prepared, int]] = {}
    for row, lead_id in _leads_of(rows, context, outcome):
        values = row.values
        if values["occurred_at"] > now + FUTURE_SLACK:
            outcome.fail(row, None, "The event is dated in the future.")
            continue
        key = activity_key(lead_id, values)
        if key in pending:
            outcome.unchanged += 1
            continue
        pending[key] = (row, lead_id)
    if not job.create_new:
        stored = _stored_keys(list(pending))
        outcome.unchanged += len(stored)
        outcome.skipped += len(pending) - len(stored)
        return
    if connection.vendor != "postgresql":
        _store_looked_up(pending, now, outcome)
        return
    stage = rows_stage(
        Activity,
        ACTIVITY_COLUMNS,
        [_activity(row.values, lead_id, key, now) for key, (row, lead_id) in pending.items()],
        numbers=[row.number for row, _ in pending.values()],
    )
    created = _activities_insert(stage, job_id=outcome.job_id)
    outcome.created += created
    outcome.unchanged += len(pending) - created  # the rest stored by an import before


def _activities_insert(stage: str, *, job_id: int) -> int:
    """Insert the staged activities whose key no stored activity holds, with a change
    record each, in one statement; how many (PostgreSQL).

    ``ON CONFLICT DO NOTHING`` reads the unique index once per row, as the insert has
    to, instead of a lookup beforehand, and skips a row another transaction stored
    meanwhile. The change records are made from the rows the insert returns, in the
    order of the file, without a round trip through Python for each."""
    quote = connection.ops.quote_name
    names = ", ".join(map(quote, ACTIVITY_COLUMNS))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH inserted AS (
                INSERT INTO {quote(Activity._meta.db_table)} ({names})
                SELECT {names} FROM {quote(stage)} ORDER BY import_row
                ON CONFLICT (source, idempotency_key) WHERE NOT (idempotency_key = '')
                DO NOTHING
                RETURNING id, lead_id, idempotency_key
            ), recorded AS (
                INSERT INTO {quote(ImportChange._meta.db_table)}
                    (job_id, "row", object_type, object_id, lead_id, action, before, after, undone)
                SELECT %s, staged.import_row, %s, inserted.id, inserted.lead_id, %s,
                    '{{}}', '{{}}', FALSE
                FROM inserted JOIN {quote(stage)} AS staged USING (idempotency_key)
                ORDER BY staged.import_row
            )
            SELECT count(*) FROM inserted
            """,
            [job_id, ObjectType.ACTIVITY.value, ChangeAction.CREATED.value],
        )
        return cursor.fetchone()[0]


def _stored_keys(keys: list[str]) -> set[str]:
    stored = Activity.objects.filter(source=ACTIVITY_SOURCE, idempotency_key__in=keys)
    return set(stored.values_list("idempotency_key", flat=True))


def _store_looked_up(
    pending: dict[str, tuple[Prepared, int]], now: dt.datetime, outcome: ChunkOutcome
) -> None:
    """Store the activities whose keys are not stored yet, looked up first (SQLite)."""
    stored = _stored_keys(list(pending))
    outcome.unchanged += len(stored)
    new = [(key, row, lead_id) for key, (row, lead_id) in pending.items() if key not in stored]
    rows = [_activity(row.values, lead_id, key, now) for key, row, lead_id in new]
    ids = rows_insert(Activity, ACTIVITY_COLUMNS, rows)
    for (_, row, lead_id), activity_id in zip(new, ids, strict=True):
        outcome.record_created(row, ObjectType.ACTIVITY, activity_id, lead_id=lead_id)
    outcome.created += len(new)


def _activity(values: dict[str, Any], lead_id: int, key: str, now: dt.datetime) -> tuple[Any, ...]:
    """An activity's row in the order of ``ACTIVITY_COLUMNS``."""
    description = values.get("description")
    return (
        lead_id,
        values["type"],
        values["occurred_at"],
        values.get("url", ""),
        values.get("duration_seconds"),
        {"description": description} if description is not None else {},
        ACTIVITY_SOURCE,
        key,
        now,
        now,
    )


def activity_spans_widen(*, lead_ids: Sequence[int], batch: int = SPAN_BATCH) -> None:
    """Widen the leads' first and last activity times to cover their stored activities,
    ``batch`` leads a transaction; call outside a transaction when an import's activity
    rows are in. Only rows whose times move are written; times only ever widen, so an
    activity stored meanwhile through the API keeps its lead's span as it set it."""
    ids = sorted(set(lead_ids))
    for start in range(0, len(ids), batch):
        with transaction.atomic():
            _spans_widen(ids[start : start + batch])


def _spans_widen(lead_ids: list[int]) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(WIDEN_SPANS, [lead_ids])
        return
    spans = (
        Activity.objects.filter(lead_id__in=lead_ids)
        .values("lead_id")
        .annotate(first=Min("occurred_at"), last=Max("occurred_at"))
        .order_by()
    )
    for span in spans:
        first, last = span["first"], span["last"]
        Lead.objects.filter(pk=span["lead_id"]).update(
            first_activity_at=Coalesce(Least(F("first_activity_at"), first), first),
            last_activity_at=Coalesce(Greatest(F("last_activity_at"), last), last),
        )


# LEAST and GREATEST pass over NULL: a lead without times takes its activities' span.
WIDEN_SPANS = """
UPDATE leads_lead AS lead
SET first_activity_at = LEAST(lead.first_activity_at, span.first_at),
    last_activity_at = GREATEST(lead.last_activity_at, span.last_at)
FROM (
    SELECT lead_id, min(occurred_at) AS first_at, max(occurred_at) AS last_at
    FROM leads_activity
    WHERE lead_id = ANY(%s::bigint[])
    GROUP BY lead_id
) AS span
WHERE lead.id = span.lead_id
    AND (
        lead.first_activity_at IS NULL
        OR lead.first_activity_at > span.first_at
        OR lead.last_activity_at IS NULL
        OR lead.last_activity_at < span.last_at
    )
"""


CENTS = Decimal("0.01")
MAX_AMOUNT = Decimal(10) ** 12
DEAL_COLUMNS = ("name", "amount", "currency", "status", "closed_at", "created_at", "lost_reason")


def write_deal_rows(
    *, job: ImportJob, context: Context, rows: list[Prepared], outcome: ChunkOutcome
) -> None:
    found = _leads_of(rows, context, outcome)
    lead_ids = sorted({lead_id for _, lead_id in found})
    Lead.objects.filter(pk__in=lead_ids).lock()
    known = {
        (deal.lead_id, deal.name.casefold()): deal
        for deal in Deal.objects.filter(lead_id__in=lead_ids)
    }
    new: list[tuple[Prepared, Deal]] = []
    changed = Changed()
    now = timezone.now()
    for row, lead_id in found:
        wanted, reason = _deal_values(row.values, now)
        if reason:
            outcome.fail(row, None, reason)
            continue
        deal = known.get((lead_id, wanted["name"].casefold()))
        if deal is None:
            if not job.create_new:
                outcome.skipped += 1
                continue
            wanted.setdefault("created_at", wanted.get("closed_at") or now)
            deal = Deal(lead_id=lead_id, **wanted)
            known[(lead_id, wanted["name"].casefold())] = deal
            new.append((row, deal))
            outcome.created += 1
        elif not job.update_existing:
            outcome.skipped += 1
        else:
            row_update(
                row, deal, wanted, outcome, changed, object_type=ObjectType.DEAL, lead_id=lead_id
            )
    objects_insert([deal for _, deal in new])
    for row, deal in new:
        outcome.record(row, deal, ObjectType.DEAL, lead_id=deal.lead_id)
    changed.write()
    Lead.objects.filter(pk__in=lead_ids).refresh_deal_outcome()


def _deal_values(values: dict[str, Any], now: dt.datetime) -> tuple[dict[str, Any], str]:
    """A deal's fields from a row, or why the row cannot be one."""
    wanted = {name: values[name] for name in DEAL_COLUMNS if name in values}
    status = wanted.setdefault("status", DealStatus.OPEN)
    if "amount" in wanted:
        amount = wanted["amount"].quantize(CENTS)
        if amount < 0:
            return wanted, "The amount cannot be negative."
        if amount >= MAX_AMOUNT:
            return wanted, "The amount is too large."
        wanted["amount"] = amount
    if status == DealStatus.OPEN:
        # An open deal's date is when it is expected to close, which Hotlist does not keep.
        wanted["closed_at"] = None
    elif "closed_at" not in wanted:
        return wanted, f"A {status} deal needs its close date."
    elif wanted["closed_at"] > now + FUTURE_SLACK:
        return wanted, "A closed deal cannot close in the future."
    return wanted, ""

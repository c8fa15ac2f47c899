"""Writing a chunk of a lead's history: activities (one row per event) and deals.

Activities are stored as the API's batches are (``leads.activities``), without the
announcement that would score them in real time, hand leads off or end nurture
enrollments, and marked scored: the import scores their leads once at the end, each
activity at its own time with decay. Each carries an idempotency key made from its
lead and content, so the same file imported again finds them stored ("unchanged").

Deals are matched by lead and name (any case); each lead's ``deal_outcome`` is worked
out again from its deals in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

from django.utils import timezone

from leads.activities import activities_record_many
from leads.models import Activity, Deal, DealStatus, Lead

from .chunks import Changed, ChunkOutcome, Context, Prepared, row_update
from .mapping import MatchKey
from .models import ImportJob, ObjectType

ACTIVITY_SOURCE = "import"
# Clocks differ: an event a few minutes "in the future" is taken as now-ish, not refused.
FUTURE_SLACK = dt.timedelta(hours=1)


def _leads_of(
    rows: list[Prepared], context: Context, outcome: ChunkOutcome
) -> list[tuple[Prepared, Lead]]:
    """Each row's lead by the match key, the person's visibility applied."""
    known = context.leads_by_key(row.values[context.match_key] for row in rows)
    allowed = context.changeable(lead.pk for lead in known.values())
    label = "email" if context.match_key == MatchKey.EMAIL else "external id"
    found = []
    for row in rows:
        key = row.values.get(context.match_key)
        lead = known.get(key) if key else None
        if lead is None:
            outcome.fail(row, None, f"No lead with the {label} “{key or ''}”.")
        elif lead.pk not in allowed:
            outcome.fail(row, None, "You may not change this lead (another team's).")
        else:
            found.append((row, lead))
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


def write_activity_rows(
    *, job: ImportJob, context: Context, rows: list[Prepared], outcome: ChunkOutcome
) -> None:
    now = timezone.now()
    pending: dict[str, tuple[Prepared, Activity]] = {}
    for row, lead in _leads_of(rows, context, outcome):
        values = row.values
        if values["occurred_at"] > now + FUTURE_SLACK:
            outcome.fail(row, None, "The event is dated in the future.")
            continue
        key = activity_key(lead.pk, values)
        if key in pending:
            outcome.unchanged += 1
            continue
        properties = {"description": values["description"]} if "description" in values else {}
        pending[key] = (
            row,
            Activity(
                lead_id=lead.pk,
                type=values["type"],
                occurred_at=values["occurred_at"],
                url=values.get("url", ""),
                duration_seconds=values.get("duration_seconds"),
                properties=properties,
                source=ACTIVITY_SOURCE,
                idempotency_key=key,
                received_at=now,
                # Scored by the import at its end, never by the real-time sweeper.
                scored_at=now,
            ),
        )
    stored = set(
        Activity.objects.filter(
            source=ACTIVITY_SOURCE, idempotency_key__in=list(pending)
        ).values_list("idempotency_key", flat=True)
    )
    outcome.unchanged += len(stored)
    new = [(row, activity) for key, (row, activity) in pending.items() if key not in stored]
    if not job.create_new:
        outcome.skipped += len(new)
        return
    activities_record_many(activities=[activity for _, activity in new], announce=False)
    for row, activity in new:
        outcome.record(row, activity, ObjectType.ACTIVITY, lead_id=activity.lead_id)
    outcome.created += len(new)


CENTS = Decimal("0.01")
MAX_AMOUNT = Decimal(10) ** 12
DEAL_COLUMNS = ("name", "amount", "currency", "status", "closed_at", "created_at", "lost_reason")


def write_deal_rows(
    *, job: ImportJob, context: Context, rows: list[Prepared], outcome: ChunkOutcome
) -> None:
    found = _leads_of(rows, context, outcome)
    lead_ids = sorted({lead.pk for _, lead in found})
    Lead.objects.filter(pk__in=lead_ids).lock()
    known = {
        (deal.lead_id, deal.name.casefold()): deal
        for deal in Deal.objects.filter(lead_id__in=lead_ids)
    }
    new: list[tuple[Prepared, Deal]] = []
    changed = Changed()
    now = timezone.now()
    for row, lead in found:
        wanted, reason = _deal_values(row.values, now)
        if reason:
            outcome.fail(row, None, reason)
            continue
        deal = known.get((lead.pk, wanted["name"].casefold()))
        if deal is None:
            if not job.create_new:
                outcome.skipped += 1
                continue
            wanted.setdefault("created_at", wanted.get("closed_at") or now)
            deal = Deal(lead_id=lead.pk, **wanted)
            known[(lead.pk, wanted["name"].casefold())] = deal
            new.append((row, deal))
            outcome.created += 1
        elif not job.update_existing:
            outcome.skipped += 1
        else:
            row_update(
                row, deal, wanted, outcome, changed, object_type=ObjectType.DEAL, lead_id=lead.pk
            )
    Deal.objects.bulk_create([deal for _, deal in new], batch_size=1000)
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

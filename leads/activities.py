"""Storing activities on leads, one lead's or a batch of many leads', with each lead's
first and last activity times kept; scoring hears of them after commit."""

from __future__ import annotations

import datetime as dt
import json

from django.db import connection, transaction
from django.db.models import F, Field, JSONField, Q
from django.db.models.functions import Coalesce, Greatest, Least

from .models import Activity, Lead
from .signals import activity_recorded


def activities_record(*, lead: Lead, activities: list[Activity]) -> list[Activity]:
    """Store activities for a lead and announce them so they are scored after commit.

    Keeps the lead's first and last activity times. A repeated idempotency key from
    the same source raises ``IntegrityError`` and stores nothing.

    The lead's row is locked before anything is written, as scoring locks it before it
    writes the lead's rank: an inbound activity's insert writes the rank too (its
    trigger, migration ``leads.0031``), and taking the rank first deadlocked with a
    scoring of the lead under way.
    """
    with transaction.atomic():
        Lead.objects.filter(pk=lead.pk).lock()
        for activity in activities:
            activity.lead = lead
        created = Activity.objects.bulk_create(activities)
        times = [a.occurred_at for a in created]
        first, last = min(times), max(times)
        # Spans only ever widen: one that covers these times in hand covers them stored.
        known_first, known_last = lead.first_activity_at, lead.last_activity_at
        if not (known_first and known_last and known_first <= first and last <= known_last):
            Lead.objects.filter(pk=lead.pk).filter(_span_moves(first, last)).update(
                first_activity_at=Coalesce(Least(F("first_activity_at"), first), first),
                last_activity_at=Coalesce(Greatest(F("last_activity_at"), last), last),
            )
        activity_recorded.send(
            sender=Activity,
            lead_id=lead.pk,
            activity_ids=[a.pk for a in created],
            activities=created,
        )
    return created


def _span_moves(first: dt.datetime, last: dt.datetime) -> Q:
    """Leads whose first and last activity times do not cover ``first``..``last`` yet:
    only those are written (a lead row written again costs a new row version and an
    entry in every index of the table, ``last_activity_at`` being indexed)."""
    return (
        Q(first_activity_at__isnull=True)
        | Q(first_activity_at__gt=first)
        | Q(last_activity_at__isnull=True)
        | Q(last_activity_at__lt=last)
    )


def activities_record_many(*, activities: list[Activity], announce: bool = True) -> list[Activity]:
    """Store activities of many leads (``lead_id`` set on each) with one INSERT, and
    announce each lead's so they are scored after commit.

    With ``announce=False`` nothing hears of them (no real-time scoring, no hand-off
    touch, no nurture reaction): for history written in bulk (``imports``), whose
    caller scores the leads itself and marks the activities scored as it stores them.

    Keeps every lead's first and last activity times. The leads' rows are locked in id
    order before anything is written, so concurrent batches naming the same leads wait
    for each other instead of deadlocking. A repeated idempotency key from the same
    source raises ``IntegrityError`` and stores nothing.
    """
    if not activities:
        return []
    spans: dict[int, tuple[dt.datetime, dt.datetime]] = {}
    for activity in activities:
        at = activity.occurred_at
        first, last = spans.get(activity.lead_id, (at, at))
        spans[activity.lead_id] = (min(first, at), max(last, at))
    lead_ids = sorted(spans)
    with transaction.atomic():
        # FOR NO KEY UPDATE: activities may still reference the leads meanwhile, as the
        # foreign key checks of other inserts need.
        Lead.objects.filter(pk__in=lead_ids).lock()
        _insert_activities(activities)
        _widen_activity_spans(spans)
        if not announce:
            return activities
        by_lead: dict[int, list[Activity]] = {lead_id: [] for lead_id in lead_ids}
        for activity in activities:
            by_lead[activity.lead_id].append(activity)
        for lead_id, stored in by_lead.items():
            activity_recorded.send(
                sender=Activity,
                lead_id=lead_id,
                activity_ids=[a.pk for a in stored],
                activities=stored,
            )
    return activities


def _insert_activities(activities: list[Activity]) -> None:
    """INSERT the activities in one statement and set their ids, as ``bulk_create`` does.

    On PostgreSQL the rows travel as one array per column through ``unnest``: building
    and parsing eleven thousand parameters for a thousand rows costs several times the
    INSERT itself. Values go in as they are on the objects, as the API and tracking
    build them (``bulk_create`` would first convert each through its field); JSON is
    encoded here as its field encodes it.
    """
    if connection.vendor != "postgresql":
        Activity.objects.bulk_create(activities)
        return
    fields = [field for field in Activity._meta.concrete_fields if not field.primary_key]
    arrays = []
    for field in fields:
        values = [getattr(activity, field.attname) for activity in activities]
        if isinstance(field, JSONField):
            values = [json.dumps(value, cls=field.encoder) for value in values]
        arrays.append(values)
    columns = ", ".join(connection.ops.quote_name(_column(field)) for field in fields)
    names = ", ".join(f"c{n}" for n in range(len(fields)))
    # Casts to the unbounded type, so that an overlong text fails as in any INSERT
    # rather than being cut to the column's length by the cast.
    casts = ", ".join(f"%s::{_unbounded(_db_type(field))}[]" for field in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Activity._meta.db_table} ({columns})
            SELECT {names} FROM unnest({casts}) WITH ORDINALITY AS given ({names}, position)
            ORDER BY position
            RETURNING id
            """,
            arrays,
        )
        ids = cursor.fetchall()
    for activity, (pk,) in zip(activities, ids, strict=True):
        activity.pk = pk
        activity._state.adding = False
        activity._state.db = connection.alias


def _column(field: Field) -> str:
    if field.column is None:
        raise TypeError(f"{field} has no column.")
    return field.column


def _db_type(field: Field) -> str:
    db_type = field.db_type(connection)
    if db_type is None:
        raise TypeError(f"{field} has no database type.")
    return db_type


def _unbounded(db_type: str) -> str:
    """``varchar(30)`` as ``varchar``; other types as they are."""
    return db_type.split("(", 1)[0]


def _widen_activity_spans(spans: dict[int, tuple[dt.datetime, dt.datetime]]) -> None:
    """Move each lead's first and last activity times out to the given span; one
    statement on PostgreSQL, one per lead elsewhere.

    Leads whose times already cover their span are left alone (``_span_moves``).
    """
    if connection.vendor != "postgresql":
        for lead_id, (first, last) in spans.items():
            Lead.objects.filter(pk=lead_id).filter(_span_moves(first, last)).update(
                first_activity_at=Coalesce(Least(F("first_activity_at"), first), first),
                last_activity_at=Coalesce(Greatest(F("last_activity_at"), last), last),
            )
        return
    ids, firsts, lasts = zip(*((k, f, la) for k, (f, la) in spans.items()), strict=True)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {Lead._meta.db_table} AS lead
            SET first_activity_at = LEAST(lead.first_activity_at, span.first_at),
                last_activity_at = GREATEST(lead.last_activity_at, span.last_at)
            FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[])
                AS span (lead_id, first_at, last_at)
            WHERE lead.id = span.lead_id
                AND (
                    lead.first_activity_at IS NULL
                    OR lead.first_activity_at > span.first_at
                    OR lead.last_activity_at IS NULL
                    OR lead.last_activity_at < span.last_at
                )
            """,
            [list(ids), list(firsts), list(lasts)],
        )

"""Parsed tracking calls applied to leads: each sender linked to a lead by its identities.

``tracking_messages_ingest`` applies a request's messages (``leads.tracking_messages``)
in one transaction. ``identify`` and ``alias`` link a sender's ``userId`` and
``anonymousId`` to a lead as ``TrackingIdentity`` rows (an identify with an email finds
or creates the lead; its traits fill the lead's profile, ``leads.tracking_profiles``),
``group`` sets the lead's company, and events are stored as activities
(``leads.tracking_activities``). A call from a sender not yet linked to a lead is kept as
a ``PendingEvent`` and replayed, in the order the events happened, once an ``identify``
or ``alias`` links its ``anonymousId`` or ``userId`` to a lead.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .models import IdentityKind, Lead, PendingEvent, TrackingIdentity
from .profiles import lead_update_fields, lead_upsert_by_email
from .tracking_activities import tracking_event_record
from .tracking_batch import TrackingBatch, current_batch
from .tracking_messages import EVENT_TYPES, TrackingMessage, id_text, identify_traits
from .tracking_profiles import attribution, company_for_group, lead_values

logger = logging.getLogger(__name__)

PENDING_MAX_AGE = dt.timedelta(days=30)


def tracking_messages_ingest(*, messages: list[TrackingMessage]) -> list[int]:
    """Apply parsed calls in order, all or nothing; the positions of the duplicates.

    An event whose ``messageId`` is already stored (as an activity or a pending event)
    is skipped and reported as a duplicate, so a client's retry stores nothing twice.
    The leads the senders are linked to already are locked first, in id order, so that
    concurrent batches naming the same people wait for each other instead of
    deadlocking. The events' activities are stored together once every call is applied
    (one INSERT through ``activities_record_many``, which queues scoring after commit).
    """
    with transaction.atomic():
        batch = TrackingBatch()
        token = current_batch.set(batch)
        try:
            batch.lock_known_leads(messages)
            duplicates = [index for index, message in enumerate(messages) if _ingest(message)]
            taken = batch.store_activities()
        finally:
            current_batch.reset(token)
    if taken:
        late = [
            i for i, m in enumerate(messages) if m.type in EVENT_TYPES and m.message_id in taken
        ]
        duplicates = sorted({*duplicates, *late})
    return duplicates


def pending_events_purge(*, now: dt.datetime | None = None) -> int:
    """Delete pending events received more than 30 days ago; how many were."""
    cutoff = (now or timezone.now()) - PENDING_MAX_AGE
    deleted, _ = PendingEvent.objects.filter(received_at__lt=cutoff).delete()
    return deleted


def _ingest(message: TrackingMessage, lead: Lead | None = None) -> bool:
    """Apply one call; ``lead`` is the sender's lead when already known (a replay).

    True when the call is an event already stored under its ``messageId``. identify,
    alias and group only set values and links, so a repeat of them changes nothing.
    """
    if message.type == "identify":
        _identify(message, lead)
    elif message.type == "alias":
        _alias(message, lead)
    else:
        lead = lead or _lead_of(message.user_id, message.anonymous_id)
        if lead is None:
            return _keep_pending(
                message, user_id=message.user_id, anonymous_id=message.anonymous_id
            )
        if message.type == "group":
            _group(message, lead)
        else:
            return tracking_event_record(message, lead)
    return False


def _lead_of(user_id: str, anonymous_id: str) -> Lead | None:
    """The lead a sender is linked to, by ``userId`` first, locked for the transaction."""
    batch = current_batch.get()
    for kind, value in ((IdentityKind.USER_ID, user_id), (IdentityKind.ANONYMOUS_ID, anonymous_id)):
        if not value:
            continue
        known = batch.leads_by_identity.get((kind.value, value)) if batch else None
        if known is not None:
            return known
        identity = TrackingIdentity.objects.filter(kind=kind, value=value).first()
        if identity is not None:
            return Lead.objects.select_for_update().get(pk=identity.lead_id)
    return None


def _keep_pending(message: TrackingMessage, *, user_id: str, anonymous_id: str) -> bool:
    """Keep a call for a sender not linked to a lead yet; True when it was kept already."""
    if message.message_id and PendingEvent.objects.filter(message_id=message.message_id).exists():
        return True
    # A retry racing the first call collides on its message id and is ignored.
    PendingEvent.objects.bulk_create(
        [
            PendingEvent(
                anonymous_id=anonymous_id,
                user_id=user_id,
                message_id=message.message_id,
                type=message.type,
                message=message.raw,
                occurred_at=message.occurred_at,
            )
        ],
        ignore_conflicts=True,
    )
    return False


def _identify(message: TrackingMessage, lead: Lead | None) -> None:
    values = lead_values(identify_traits(message.raw))
    if "email" in values:
        lead, _ = lead_upsert_by_email(values=values, fill_empty=attribution(message.raw))
    else:
        lead = lead or _lead_of(message.user_id, message.anonymous_id)
        if lead is None:
            _keep_pending(message, user_id=message.user_id, anonymous_id=message.anonymous_id)
            return
        lead_update_fields(lead=lead, values=values)
    _link(
        lead,
        user_ids=[message.user_id] if message.user_id else [],
        anonymous_ids=[message.anonymous_id] if message.anonymous_id else [],
    )


def _alias(message: TrackingMessage, lead: Lead | None) -> None:
    """Link ``previousId`` to the user's lead. Segment clients send it for an earlier
    anonymousId or an earlier userId, so it is linked as both."""
    previous_id = id_text(message.raw, "previousId")
    lead = lead or _lead_of(message.user_id, "") or _lead_of(previous_id, previous_id)
    if lead is None:
        _keep_pending(message, user_id=message.user_id, anonymous_id=previous_id)
        return
    _link(lead, user_ids=[message.user_id, previous_id], anonymous_ids=[previous_id])


def _group(message: TrackingMessage, lead: Lead) -> None:
    traits = message.raw.get("traits") or {}
    company = company_for_group(id_text(message.raw, "groupId"), traits)
    lead_update_fields(lead=lead, values={"company": company})


def _link(lead: Lead, *, user_ids: list[str], anonymous_ids: list[str]) -> None:
    """Link identities to a lead, then replay the events kept for them.

    An identity already linked to another lead stays with it: a device's anonymous id
    belongs to whoever identified on it first.
    """
    pairs = [(IdentityKind.USER_ID, v) for v in user_ids]
    pairs += [(IdentityKind.ANONYMOUS_ID, v) for v in anonymous_ids]
    for kind, value in pairs:
        identity, _ = TrackingIdentity.objects.get_or_create(
            kind=kind, value=value, defaults={"lead": lead}
        )
        if identity.lead_id != lead.pk:
            logger.info("Tracking: %s %s stays with lead %s", kind, value, identity.lead_id)
    _replay_pending(lead, user_ids=user_ids, anonymous_ids=anonymous_ids)


def _replay_pending(lead: Lead, *, user_ids: list[str], anonymous_ids: list[str]) -> None:
    """Apply the events kept for these senders to their lead, oldest first, and delete them."""
    pending = list(
        PendingEvent.objects.select_for_update()
        .filter(Q(user_id__in=user_ids) | Q(anonymous_id__in=anonymous_ids))
        .order_by("occurred_at", "id")
    )
    if not pending:
        return
    PendingEvent.objects.filter(pk__in=[event.pk for event in pending]).delete()
    for event in pending:
        raw = event.message
        _ingest(
            TrackingMessage(
                type=event.type,
                raw=raw,
                # Kept before future times were refused, an event may be dated after it
                # was received; it is taken as received then, as it would be now.
                occurred_at=min(event.occurred_at, event.received_at),
                message_id=event.message_id,
                user_id=id_text(raw, "userId"),
                anonymous_id=id_text(raw, "anonymousId"),
            ),
            lead,
        )

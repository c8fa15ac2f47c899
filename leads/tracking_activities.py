"""Tracking events (``track``, ``page``, ``screen``) stored as a lead's activities.

A tracked event records the activity type its ``TrackedEvent`` mapping names (``custom``
without one, nothing when it is switched off); pages and screens record page views. An
event whose ``messageId`` an activity holds already is a duplicate and stores nothing.
Inside a request's ``TrackingBatch`` the activities are kept for its one INSERT.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.db.models.functions import Lower

from .activities import activities_record
from .models import Activity, ActivityType, Lead, TrackedEvent
from .tracking_batch import current_batch
from .tracking_messages import TRACKING_SOURCE, TrackingMessage

logger = logging.getLogger(__name__)


def tracking_event_record(message: TrackingMessage, lead: Lead) -> bool:
    """Store the call as an activity; True when its message id was stored already."""
    activity = _activity(message)
    if activity is None:
        return False
    if message.message_id and _message_stored(message.message_id):
        return True
    batch = current_batch.get()
    if batch is not None:
        activity.lead = lead
        batch.activities.append(activity)
        if message.message_id:
            batch.stored_message_ids.add(message.message_id)
        return False
    try:
        with transaction.atomic():
            activities_record(lead=lead, activities=[activity])
    except IntegrityError:
        # Another request stored the same message id since the check above.
        logger.info("Tracking: message %s already stored", message.message_id)
        return True
    return False


def _message_stored(message_id: str) -> bool:
    """Whether an activity holds this message id."""
    batch = current_batch.get()
    if batch is not None and message_id in batch.looked_up_message_ids:
        return message_id in batch.stored_message_ids
    keyed = Activity.objects.filter(source=TRACKING_SOURCE, idempotency_key=message_id)
    return keyed.exists()


def _activity(message: TrackingMessage) -> Activity | None:
    raw = message.raw
    properties = dict(raw.get("properties") or {})
    page = (raw.get("context") or {}).get("page")
    page_url = page.get("url") if isinstance(page, dict) else None
    url = properties.get("url") or page_url or ""
    if message.type == "track":
        activity_type = tracked_event_type(raw["event"])
        if activity_type is None:
            logger.info("Tracking: event “%s” is switched off; dropped", raw["event"])
            return None
        properties["event"] = raw["event"]
    else:
        activity_type = ActivityType.PAGE_VIEW
        if raw.get("name"):
            properties.setdefault("name", raw["name"])
        if message.type == "screen":
            properties["screen"] = True
    return Activity(
        type=activity_type,
        url=str(url)[:2000],
        properties=properties,
        occurred_at=message.occurred_at,
        source=TRACKING_SOURCE,
        idempotency_key=message.message_id,
    )


def tracked_event_type(event: str) -> str | None:
    """The activity type a tracked event records: its mapping's, ``custom`` for an event
    without a mapping, None (dropped) when its mapping is switched off."""
    batch = current_batch.get()
    name = event.strip().lower()
    if batch is not None and name in batch.event_types:
        return batch.event_types[name]
    activity_type = _event_type(name)
    if batch is not None:
        batch.event_types[name] = activity_type
    return activity_type


def _event_type(name: str) -> str | None:
    mapping = TrackedEvent.objects.alias(name_lower=Lower("name")).filter(name_lower=name).first()
    if mapping is None:
        return ActivityType.CUSTOM
    return mapping.activity_type if mapping.is_active else None

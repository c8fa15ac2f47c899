"""One tracking request's batch: what its messages look up more than once, read once.

``leads.tracking_ingest`` sets ``current_batch`` for the transaction that applies a
request's messages: the leads their senders are linked to (locked in id order), the
message ids stored already, the activity types of tracked events, and the events'
activities, stored together in one INSERT at the end.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass
from dataclasses import field as dataclass_field

from django.db import IntegrityError, transaction
from django.db.models import Q

from .activities import activities_record, activities_record_many
from .models import Activity, IdentityKind, Lead, TrackingIdentity
from .tracking_messages import TRACKING_SOURCE, TrackingMessage, identities_named

logger = logging.getLogger(__name__)


@dataclass
class TrackingBatch:
    """What the messages of one request look up more than once, read once.

    Identities never move to another lead, so those found at the start stay true for the
    whole transaction; those linked meanwhile are looked up as they come.
    """

    leads_by_identity: dict[tuple[str, str], Lead] = dataclass_field(default_factory=dict)
    event_types: dict[str, str | None] = dataclass_field(default_factory=dict)
    # The batch's own message ids were looked up once; those stored are kept up to date.
    looked_up_message_ids: set[str] = dataclass_field(default_factory=set)
    stored_message_ids: set[str] = dataclass_field(default_factory=set)
    # The events' activities, stored together at the end (their message ids count as
    # stored from the moment they are kept here).
    activities: list[Activity] = dataclass_field(default_factory=list)

    def store_activities(self) -> set[str]:
        """Store the kept activities; the message ids another request stored meanwhile.

        All go in one INSERT. When another request stored one of their message ids
        since they were looked up, they are stored one by one instead, and those
        already stored are skipped, as a call on its own would have been.
        """
        if not self.activities:
            return set()
        try:
            with transaction.atomic():
                activities_record_many(activities=self.activities)
            return set()
        except IntegrityError:
            pass
        taken = set()
        for activity in self.activities:
            try:
                with transaction.atomic():
                    activities_record(lead=activity.lead, activities=[activity])
            except IntegrityError:
                logger.info("Tracking: message %s already stored", activity.idempotency_key)
                taken.add(activity.idempotency_key)
        return taken

    def lock_known_leads(self, messages: list[TrackingMessage]) -> None:
        """Look up the batch's stored message ids, and lock the leads its senders are
        linked to already, in id order."""
        wanted: set[tuple[str, str]] = set()
        for message in messages:
            wanted.update(identities_named(message))
        message_ids = {m.message_id for m in messages if m.message_id}
        self.looked_up_message_ids = message_ids
        if message_ids:
            self.stored_message_ids = set(
                Activity.objects.filter(source=TRACKING_SOURCE, idempotency_key__in=message_ids)
                .exclude(idempotency_key="")
                .values_list("idempotency_key", flat=True)
            )
        if not wanted:
            return
        by_kind = Q()
        for kind in IdentityKind.values:
            values = {value for named, value in wanted if named == kind}
            if values:
                by_kind |= Q(kind=kind, value__in=values)
        identities = TrackingIdentity.objects.filter(by_kind).values_list(
            "kind", "value", "lead_id"
        )
        lead_of = {(kind, value): lead_id for kind, value, lead_id in identities}
        leads = Lead.objects.filter(pk__in=set(lead_of.values())).order_by("pk")
        locked = {lead.pk: lead for lead in leads.select_for_update(of=("self",))}
        self.leads_by_identity = {pair: locked[pk] for pair, pk in lead_of.items() if pk in locked}


current_batch: ContextVar[TrackingBatch | None] = ContextVar("tracking_batch", default=None)

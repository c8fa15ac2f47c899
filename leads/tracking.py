"""Segment-compatible tracking calls turned into leads, identities and activities.

A call (``identify``, ``track``, ``page``, ``screen``, ``group``, ``alias``) is first
parsed into a ``TrackingMessage`` without touching the database, so that a request with
one bad message stores nothing. ``tracking_messages_ingest`` then applies the messages in
one transaction. A call from a sender not yet linked to a lead is kept as a
``PendingEvent`` and replayed, in the order the events happened, once an ``identify`` or
``alias`` links its ``anonymousId`` or ``userId`` to a lead.
"""

from __future__ import annotations

import datetime as dt
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from crm.timestamps import offset_out_of_range

from .activities import activities_record, activities_record_many
from .activity_times import TOO_EARLY, ActivityTimeError, activity_time
from .attribution import SOURCE_BY_UTM_MEDIUM, UTM_FIELDS
from .models import (
    Activity,
    ActivityType,
    Company,
    IdentityKind,
    Industry,
    Lead,
    PendingEvent,
    Source,
    TrackedEvent,
    TrackingIdentity,
    normalize_email,
)
from .profiles import company_named, email_error, lead_update_fields, lead_upsert_by_email

logger = logging.getLogger(__name__)

MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")
# The calls stored as activities.
EVENT_TYPES = ("track", "page", "screen")
TRACKING_SOURCE = "tracking"
PENDING_MAX_AGE = dt.timedelta(days=30)
ID_MAX_LENGTH = 200
# What ``Company.employee_count`` (a positive integer column) holds at most.
EMPLOYEES_MAX = 2**31 - 1

# Lead field → the trait names that fill it, first non-empty wins.
TRAIT_NAMES = {
    "first_name": ("firstName", "first_name"),
    "last_name": ("lastName", "last_name"),
    "phone": ("phone",),
    "job_title": ("title", "jobTitle", "job_title"),
    "city": ("city",),
}
UTM_BY_CAMPAIGN_KEY = {
    "utm_source": "source",
    "utm_medium": "medium",
    "utm_campaign": "name",
    "utm_term": "term",
    "utm_content": "content",
}


class InvalidMessage(ValueError):
    """A call that cannot be stored; the message says why."""


@dataclass(frozen=True)
class TrackingMessage:
    type: str
    raw: dict[str, Any]
    occurred_at: dt.datetime
    message_id: str
    user_id: str
    anonymous_id: str


# --- Parsing (no database) -------------------------------------------------------------


def tracking_message_parse(
    raw: Any, *, received_at: dt.datetime, call_type: str | None = None
) -> TrackingMessage:
    """Check one call and work out when it happened; ``InvalidMessage`` says what is wrong.

    ``call_type`` is the type a single-call endpoint (``/v1/track``) implies; in a batch
    each message names its own ``type``.
    """
    if not isinstance(raw, dict):
        raise InvalidMessage("is not a JSON object")
    kind = call_type or raw.get("type")
    if not kind:
        raise InvalidMessage("has no type")
    if kind not in MESSAGE_TYPES:
        raise InvalidMessage(f"has an unknown type “{str(kind)[:50]}”")
    user_id = _id_text(raw, "userId")
    anonymous_id = _id_text(raw, "anonymousId")
    _check_required(kind, raw, user_id=user_id, anonymous_id=anonymous_id)
    _check_traits(kind, raw)
    return TrackingMessage(
        type=kind,
        raw={**raw, "type": kind},
        occurred_at=_occurred_at(raw, received_at),
        message_id=_id_text(raw, "messageId"),
        user_id=user_id,
        anonymous_id=anonymous_id,
    )


def _id_text(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidMessage(f"has a {name} that is neither text nor a number")
    text = str(value).strip()
    if len(text) > ID_MAX_LENGTH:
        raise InvalidMessage(f"has a {name} longer than {ID_MAX_LENGTH} characters")
    return text


def _check_required(kind: str, raw: dict[str, Any], *, user_id: str, anonymous_id: str) -> None:
    if kind == "alias":
        if not user_id or not _id_text(raw, "previousId"):
            raise InvalidMessage("is an alias without both userId and previousId")
        return
    if not user_id and not anonymous_id:
        raise InvalidMessage("has neither a userId nor an anonymousId")
    if kind == "track" and not (isinstance(raw.get("event"), str) and raw["event"].strip()):
        raise InvalidMessage("is a track call without an event name")
    if kind == "group" and not _id_text(raw, "groupId"):
        raise InvalidMessage("is a group call without a groupId")
    for name in ("traits", "properties", "context"):
        if raw.get(name) is not None and not isinstance(raw[name], dict):
            raise InvalidMessage(f"has {name} that are not a JSON object")
    context_traits = (raw.get("context") or {}).get("traits")
    if context_traits is not None and not isinstance(context_traits, dict):
        raise InvalidMessage("has context.traits that are not a JSON object")


def _check_traits(kind: str, raw: dict[str, Any]) -> None:
    """Refuse the traits a lead or company could not take: an identify's email that no
    form would accept either, a group's employee count beyond what is stored."""
    if kind == "identify":
        email = normalize_email(_text(identify_traits(raw), "email"))
        problem = email_error(email) if email else ""
        if problem:
            raise InvalidMessage(f"has an email trait “{email[:100]}” that is refused: {problem}")
    elif kind == "group":
        _employee_count(raw.get("traits") or {})


def identify_traits(raw: dict[str, Any]) -> dict[str, Any]:
    """An identify call's traits: ``traits``, over ``context.traits`` where both name one.

    Segment's libraries send them at the top level; RudderStack's Python SDK sends them
    in ``context.traits`` only, which Segment's spec also allows.
    """
    context = raw.get("context") or {}
    in_context = context.get("traits") if isinstance(context.get("traits"), dict) else {}
    return {**in_context, **(raw.get("traits") or {})}


def _occurred_at(raw: dict[str, Any], received_at: dt.datetime) -> dt.datetime:
    """Segment's clock-skew correction: with ``sentAt``, the client's clock only measures
    how long ago the event happened, ``receivedAt - (sentAt - timestamp)``. The result
    then follows the rule for every activity's time (``activity_time``)."""
    timestamp = _datetime(raw, "timestamp") or _datetime(raw, "originalTimestamp")
    sent_at = _datetime(raw, "sentAt")
    at = timestamp or received_at
    if sent_at is not None:
        try:
            at = received_at - (sent_at - timestamp) if timestamp else received_at
        except OverflowError:
            raise InvalidMessage("has a timestamp and a sentAt too far apart") from None
    try:
        return activity_time(at, received_at=received_at)
    except ActivityTimeError as exc:
        when = "before 2000" if str(exc) == TOO_EARLY else "in the future"
        raise InvalidMessage(f"is dated {when} ({at.isoformat()})") from None


def _datetime(raw: dict[str, Any], name: str) -> dt.datetime | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # an offset of a day or more
        parsed = None
    if parsed is None:
        raise InvalidMessage(f"has a {name} that is not an ISO 8601 date and time")
    if offset_out_of_range(parsed):
        raise InvalidMessage(f"has a {name} with a UTC offset beyond ±15:59")
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


# --- Storing ---------------------------------------------------------------------------


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
        batch = _Batch()
        token = _batch.set(batch)
        try:
            batch.lock_known_leads(messages)
            duplicates = [index for index, message in enumerate(messages) if _ingest(message)]
            taken = batch.store_activities()
        finally:
            _batch.reset(token)
    if taken:
        late = [
            i for i, m in enumerate(messages) if m.type in EVENT_TYPES and m.message_id in taken
        ]
        duplicates = sorted({*duplicates, *late})
    return duplicates


@dataclass
class _Batch:
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
        wanted: set[tuple[str, str]] = set()
        for message in messages:
            wanted.update(_identities_named(message))
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


_batch: ContextVar[_Batch | None] = ContextVar("tracking_batch", default=None)


def _identities_named(message: TrackingMessage) -> list[tuple[str, str]]:
    pairs = []
    if message.user_id:
        pairs.append((IdentityKind.USER_ID.value, message.user_id))
    if message.anonymous_id:
        pairs.append((IdentityKind.ANONYMOUS_ID.value, message.anonymous_id))
    if message.type == "alias":
        previous_id = message.raw.get("previousId")
        if isinstance(previous_id, str | int) and not isinstance(previous_id, bool):
            text = str(previous_id).strip()
            pairs += [(IdentityKind.USER_ID.value, text), (IdentityKind.ANONYMOUS_ID.value, text)]
    return pairs


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
            return _record_activity(message, lead)
    return False


def _lead_of(user_id: str, anonymous_id: str) -> Lead | None:
    """The lead a sender is linked to, by ``userId`` first, locked for the transaction."""
    batch = _batch.get()
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
    values = _lead_values(identify_traits(message.raw))
    if "email" in values:
        lead, _ = lead_upsert_by_email(values=values, fill_empty=_attribution(message.raw))
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
    previous_id = _id_text(message.raw, "previousId")
    lead = lead or _lead_of(message.user_id, "") or _lead_of(previous_id, previous_id)
    if lead is None:
        _keep_pending(message, user_id=message.user_id, anonymous_id=previous_id)
        return
    _link(lead, user_ids=[message.user_id, previous_id], anonymous_ids=[previous_id])


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
                user_id=_id_text(raw, "userId"),
                anonymous_id=_id_text(raw, "anonymousId"),
            ),
            lead,
        )


def _record_activity(message: TrackingMessage, lead: Lead) -> bool:
    """Store the call as an activity; True when its message id was stored already."""
    activity = _activity(message)
    if activity is None:
        return False
    if message.message_id and _message_stored(message.message_id):
        return True
    batch = _batch.get()
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
    batch = _batch.get()
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
    batch = _batch.get()
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


def _group(message: TrackingMessage, lead: Lead) -> None:
    traits = message.raw.get("traits") or {}
    company = _company_for_group(_id_text(message.raw, "groupId"), traits)
    lead_update_fields(lead=lead, values={"company": company})


def _company_for_group(group_id: str, traits: dict[str, Any]) -> Company:
    """The company a group call names, by domain, else by name (else the group id), with
    the traits it carries written to it."""
    domain = _domain(_text(traits, "website") or _text(traits, "domain"))
    name = _text(traits, "name")[:200]
    if domain:
        company, _ = Company.objects.get_or_create(
            domain=domain, defaults={"name": name or group_id[:200]}
        )
    else:
        company = company_named(name or group_id[:200])
    fields = _company_values(traits, name=name)
    changed = [field for field, value in fields.items() if getattr(company, field) != value]
    for field in changed:
        setattr(company, field, fields[field])
    if changed:
        company.save(update_fields=changed)
    return company


def _company_values(traits: dict[str, Any], *, name: str) -> dict[str, Any]:
    values: dict[str, Any] = {"name": name} if name else {}
    industry = _text(traits, "industry").lower()
    for choice in Industry:
        if industry and industry in (choice.value, str(choice.label).lower()):
            values["industry"] = choice.value
    try:
        employees = _employee_count(traits)
    except InvalidMessage:  # kept before such counts were refused
        employees = None
    if employees is not None:
        values["employee_count"] = employees
    return values


def _employee_count(traits: dict[str, Any]) -> int | None:
    """``traits.employees`` when it is a whole number (a JSON number or digits), else
    None; ``InvalidMessage`` when it is one too large to store."""
    text = _text(traits, "employees")
    # Not ``isdigit()``: it takes superscripts such as "²", which ``int()`` refuses.
    if not text.isdecimal():
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(EMPLOYEES_MAX)) or int(digits) > EMPLOYEES_MAX:
        raise InvalidMessage(f"has more employees than {EMPLOYEES_MAX:,} in its traits")
    return int(digits)


def _domain(website: str) -> str:
    if not website:
        return ""
    try:
        host = urlsplit(website if "//" in website else f"//{website}").hostname or ""
    except ValueError:  # such as an unclosed "[" of an IPv6 address
        return ""
    return host.removeprefix("www.")[:253]


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    return str(value).strip() if isinstance(value, str | int | float) else ""


def _lead_values(traits: dict[str, Any]) -> dict[str, Any]:
    """Lead fields from identify traits; values that do not fit are left out or cut."""
    values: dict[str, Any] = {}
    email = normalize_email(_text(traits, "email"))
    if email and not email_error(email):
        values["email"] = email
    for field, names in TRAIT_NAMES.items():
        text = next((_text(traits, n) for n in names if _text(traits, n)), "")
        if text:
            values[field] = text[: Lead._meta.get_field(field).max_length]
    first, _, last = _text(traits, "name").partition(" ")
    if first and "first_name" not in values and "last_name" not in values:
        values["first_name"], values["last_name"] = first[:100], last.strip()[:100]
    address = traits.get("address") if isinstance(traits.get("address"), dict) else {}
    country = (_text(traits, "country") or _text(address, "country")).upper()
    if len(country) == 2:
        values["country"] = country
    if "city" not in values and _text(address, "city"):
        values["city"] = _text(address, "city")[:100]
    company = traits.get("company")
    company_name = _text(company, "name") if isinstance(company, dict) else _text(traits, "company")
    if company_name:
        values["company"] = company_named(company_name[:200])
    return values


def _attribution(raw: dict[str, Any]) -> dict[str, str]:
    """Source, campaign and UTM fields from ``context.campaign``, for empty lead fields."""
    context = raw.get("context") or {}
    campaign = context.get("campaign") if isinstance(context.get("campaign"), dict) else {}
    utm = {field: _text(campaign, key)[:200] for field, key in UTM_BY_CAMPAIGN_KEY.items()}
    utm = {field: value for field, value in utm.items() if value and field in UTM_FIELDS}
    medium = utm.get("utm_medium", "").lower()
    source = SOURCE_BY_UTM_MEDIUM.get(medium, Source.WEBSITE)
    return {"source": source, "campaign": utm.get("utm_campaign", ""), **utm}

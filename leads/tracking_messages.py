"""Segment-compatible tracking calls parsed and checked, without touching the database.

A call (``identify``, ``track``, ``page``, ``screen``, ``group``, ``alias``) becomes a
``TrackingMessage``, or ``InvalidMessage`` says what is wrong with it, so that a request
with one bad message stores nothing; ``leads.tracking_ingest`` applies the messages.
Also the readers of a call's fields that storing it shares: ids, traits, the identities
it names.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from crm.timestamps import offset_out_of_range

from .activity_times import TOO_EARLY, ActivityTimeError, activity_time
from .models import IdentityKind, normalize_email
from .profiles import email_error

MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")
# The calls stored as activities.
EVENT_TYPES = ("track", "page", "screen")
# The ``source`` of the activities the calls store.
TRACKING_SOURCE = "tracking"
ID_MAX_LENGTH = 200
# What ``Company.employee_count`` (a positive integer column) holds at most.
EMPLOYEES_MAX = 2**31 - 1


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
    user_id = id_text(raw, "userId")
    anonymous_id = id_text(raw, "anonymousId")
    _check_required(kind, raw, user_id=user_id, anonymous_id=anonymous_id)
    _check_traits(kind, raw)
    return TrackingMessage(
        type=kind,
        raw={**raw, "type": kind},
        occurred_at=_occurred_at(raw, received_at),
        message_id=id_text(raw, "messageId"),
        user_id=user_id,
        anonymous_id=anonymous_id,
    )


def id_text(raw: dict[str, Any], name: str) -> str:
    """The id ``raw[name]`` as text, empty when missing; ``InvalidMessage`` when it is
    neither text nor a number, or too long."""
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
        if not user_id or not id_text(raw, "previousId"):
            raise InvalidMessage("is an alias without both userId and previousId")
        return
    if not user_id and not anonymous_id:
        raise InvalidMessage("has neither a userId nor an anonymousId")
    if kind == "track" and not (isinstance(raw.get("event"), str) and raw["event"].strip()):
        raise InvalidMessage("is a track call without an event name")
    if kind == "group" and not id_text(raw, "groupId"):
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
        email = normalize_email(trait_text(identify_traits(raw), "email"))
        problem = email_error(email) if email else ""
        if problem:
            raise InvalidMessage(f"has an email trait “{email[:100]}” that is refused: {problem}")
    elif kind == "group":
        employee_count(raw.get("traits") or {})


def identify_traits(raw: dict[str, Any]) -> dict[str, Any]:
    """An identify call's traits: ``traits``, over ``context.traits`` where both name one.

    Segment's libraries send them at the top level; RudderStack's Python SDK sends them
    in ``context.traits`` only, which Segment's spec also allows.
    """
    in_context = json_object(json_object(raw, "context"), "traits")
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


def employee_count(traits: dict[str, Any]) -> int | None:
    """``traits.employees`` when it is a whole number (a JSON number or digits), else
    None; ``InvalidMessage`` when it is one too large to store."""
    text = trait_text(traits, "employees")
    # Not ``isdigit()``: it takes superscripts such as "²", which ``int()`` refuses.
    if not text.isdecimal():
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(EMPLOYEES_MAX)) or int(digits) > EMPLOYEES_MAX:
        raise InvalidMessage(f"has more employees than {EMPLOYEES_MAX:,} in its traits")
    return int(digits)


def trait_text(data: dict[str, Any], name: str) -> str:
    """``data[name]`` as stripped text when it is text or a number, else empty."""
    value = data.get(name)
    return str(value).strip() if isinstance(value, str | int | float) else ""


def json_object(data: dict[str, Any], name: str) -> dict[str, Any]:
    """``data[name]`` when it is a JSON object, else an empty one."""
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def identities_named(message: TrackingMessage) -> list[tuple[str, str]]:
    """The (kind, value) identities a call names: its sender's, and an alias's previous id
    as both kinds."""
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

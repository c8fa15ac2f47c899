"""What reps record about a lead: the touches they had with it, and their verdict on it.

Speed to lead runs from the hand-off to the first call, meeting or email reply a person
logs (``HandOff.first_touch_at``), whether through the lead page (``lead_log_touch``) or
the API: both store the activity through ``activities_record``, whose
``activity_recorded`` signal reaches ``handoff_on_activity_recorded``. A rep's rating of
the lead's quality (``lead_rate_quality``) feeds the reports.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from .activities import activities_record
from .activity_times import TOO_EARLY, ActivityTimeError, activity_time
from .handoff_models import HandOff, LeadRating, Rating
from .models import SALES_TOUCH_TYPES, Activity, ActivityType, Lead

if TYPE_CHECKING:
    from crm.models import User

# What ``LeadRating.reason`` holds.
REASON_MAX = 500
NOTES_MAX = 5000
TOUCH_IN_FUTURE = "A touch cannot be in the future."


def lead_log_touch(
    *,
    lead: Lead,
    by: User,
    type: str,
    notes: str = "",
    occurred_at: dt.datetime | None = None,
    outcome: str = "",
) -> Activity:
    """Log a call, meeting or email reply a person had with the lead, with its
    ``outcome`` when given (the work queue's "connected", "voicemail"…, kept in the
    activity's properties; the caller says which outcomes there are).

    Stored through ``activities_record``, so it is scored after commit and, as the
    first touch after a hand-off, recorded as its speed to lead. Raises
    ``ValidationError`` keyed by field for another type, notes over 5,000 characters or
    a time ``activity_time`` refuses (one up to its clock skew ahead is taken as now),
    and ``PermissionDenied`` when ``by`` cannot see the lead.
    """
    now = timezone.now()
    notes = (notes or "").strip()
    errors: dict[str, str] = {}
    if type not in SALES_TOUCH_TYPES:
        labels = ", ".join(sorted(ActivityType(t).label.lower() for t in SALES_TOUCH_TYPES))
        errors["type"] = f"Log one of: {labels}."
    if len(notes) > NOTES_MAX:
        errors["notes"] = f"Use at most {NOTES_MAX} characters."
    if occurred_at is not None:
        try:
            occurred_at = activity_time(occurred_at, received_at=now)
        except ActivityTimeError as exc:
            errors["occurred_at"] = (
                "A touch cannot be before 2000." if str(exc) == TOO_EARLY else TOUCH_IN_FUTURE
            )
    if errors:
        raise ValidationError(errors)
    _check_visible(lead, by)
    activity = Activity(
        type=type,
        occurred_at=occurred_at or now,
        source="crm",
        created_by=by,
        properties=_touch_properties(notes=notes, outcome=outcome),
    )
    activities_record(lead=lead, activities=[activity])
    return activity


def _touch_properties(*, notes: str, outcome: str) -> dict[str, str]:
    properties = {"notes": notes} if notes else {}
    if outcome:
        properties["outcome"] = outcome
    return properties


def handoff_on_activity_recorded(
    sender: Any, lead_id: int, activities: Sequence[Activity], **kwargs: Any
) -> None:
    """``activity_recorded`` receiver: a person's call, meeting or email reply is the
    first touch of the lead's latest open hand-off made before it.

    Picks the touches from the stored activities in hand, so a batch of page views and
    email opens costs no query; only a touch looks the hand-off up."""
    touches = [a.occurred_at for a in activities if a.type in SALES_TOUCH_TYPES and a.created_by_id]
    if touches:
        handoff_record_touch(lead_id=lead_id, at=min(touches))


def handoff_record_touch(*, lead_id: int, at: dt.datetime) -> int:
    """Keep ``at`` as the first touch of the lead's latest open hand-off made before it
    (an earlier touch logged late replaces a later one); how many rows changed."""
    handoff = HandOff.objects.open().filter(lead_id=lead_id, created_at__lte=at).first()
    if handoff is None:
        return 0
    return HandOff.objects.filter(pk=handoff.pk).update(
        first_touch_at=Coalesce(Least(F("first_touch_at"), at), at)
    )


def lead_rate_quality(*, lead: Lead, by: User, rating: str, reason: str = "") -> LeadRating:
    """Record ``by``'s verdict on the lead, replacing their earlier one.

    Raises ``ValidationError`` keyed by field for an unknown rating, a "not a fit"
    without a reason or an overlong reason, and ``PermissionDenied`` when ``by``
    cannot see the lead.
    """
    reason = (reason or "").strip()
    if rating not in Rating.values:
        raise ValidationError({"rating": "Choose good or not a fit."})
    if rating == Rating.NOT_FIT and not reason:
        raise ValidationError({"reason": "Say why the lead is not a fit."})
    if len(reason) > REASON_MAX:
        raise ValidationError({"reason": f"Use at most {REASON_MAX} characters."})
    _check_visible(lead, by)
    verdict, _ = LeadRating.objects.update_or_create(
        lead=lead,
        by=by,
        defaults={"rating": rating, "reason": reason, "created_at": timezone.now()},
    )
    return verdict


def _check_visible(lead: Lead, user: User) -> None:
    if not Lead.objects.visible_to(user).filter(pk=lead.pk).exists():
        raise PermissionDenied("You cannot change this lead.")

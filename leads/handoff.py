"""The hand-off: a sales-ready lead gets an owner, a follow-up task and a deadline.

A move into ``settings.HANDOFF_STAGE`` (by scoring or by a person, both through
``Lead.move_to_stage``) writes a ``HandOff`` row in the transaction of the move and
queues ``leads.tasks.handoff_assign`` once it commits. The assigning task picks the
owner, creates the follow-up task and notifies the owner; each step is recorded by a
timestamp, so a retried or duplicated task only does what is left. Beat escalates
hand-offs nobody accepted or touched within the SLA, and re-queues assignments whose
message was lost.

Accepting is an acknowledgement, not contact with the lead: it stops the escalation
but does not count as a touch. Speed to lead runs from the hand-off to the first call,
meeting or email reply a person logs (``first_touch_at``), whether through the lead
page (``lead_log_touch``) or the API: both store the activity through
``activities_record``, whose ``activity_recorded`` signal sets it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from crm.models import Role
from crm.permissions import people_with_role
from crm.resilience import task_enqueue

from .activities import activities_record
from .activity_times import TOO_EARLY, ActivityTimeError, activity_time
from .assignment import owner_for
from .handoff_models import HandOff, HandOffStatus, LeadRating, NotificationKind, Rating
from .models import (
    FUNNEL,
    SALES_TOUCH_TYPES,
    Activity,
    ActivityType,
    Lead,
    Stage,
    StageChange,
    StageTransitionError,
    Task,
    TaskKind,
)
from .notifications import notify
from .permissions import may_close_handoff
from .signals import handoff_escalated, lead_handed_off
from .stages import lead_move_to_stage

if TYPE_CHECKING:
    from crm.models import User

log = logging.getLogger(__name__)

REASON_MAX = 500
NOTES_MAX = 5000
TOUCH_IN_FUTURE = "A touch cannot be in the future."
# A hand-off whose owner was not notified this long after it was made is queued again.
STALLED_AFTER = dt.timedelta(minutes=2)
ESCALATION_BATCH = 500


class HandOffError(ValidationError):
    """A hand-off action the hand-off's state or the input does not allow."""


# --- Opening a hand-off (inside the stage move) ------------------------------------


def handoff_on_stage_changed(sender: Any, lead: Lead, change: StageChange, **kwargs: Any) -> None:
    """``lead_stage_changed`` receiver: open a hand-off on a move into the hand-off stage,
    and close the pending ones when the lead moves on without them."""
    if change.to_stage == settings.HANDOFF_STAGE:
        handoff_open(lead=lead, change=change)
    else:
        handoffs_close_on_move(lead=lead, change=change)


def handoff_open(*, lead: Lead, change: StageChange) -> HandOff:
    """The hand-off of a stage move, created once, with its assignment queued after commit.

    Call inside the transaction of the move. One row per move: a second call for the
    same ``change`` returns the existing row and queues nothing.
    """
    handoff, created = HandOff.objects.get_or_create(
        stage_change=change,
        defaults={"lead": lead, "stage": change.to_stage, "created_at": change.at},
    )
    if created:
        transaction.on_commit(partial(handoff_assign_request, handoff_id=handoff.pk))
    return handoff


def handoffs_close_on_move(*, lead: Lead, change: StageChange) -> int:
    """Close the lead's pending hand-offs when it leaves the hand-off stage by another way:
    moving on in the funnel accepts them, dropping out rejects them with the move's reason.
    Call inside the transaction of the move; returns how many were closed."""
    pending = HandOff.objects.pending().filter(lead=lead)
    handoff_at = FUNNEL.index(settings.HANDOFF_STAGE)
    if change.to_stage in FUNNEL and FUNNEL.index(change.to_stage) > handoff_at:
        return pending.update(
            status=HandOffStatus.ACCEPTED, accepted_at=change.at, closed_by=change.by
        )
    if change.to_stage in (Stage.RECYCLED, Stage.DISQUALIFIED):
        reason = f"Moved to {Stage(change.to_stage).label}: {change.reason or 'no reason given'}"
        return pending.update(
            status=HandOffStatus.REJECTED,
            rejected_at=change.at,
            reject_reason=reason[:REASON_MAX],
            closed_by=change.by,
        )
    return 0


def handoff_assign_request(*, handoff_id: int) -> bool:
    """Queue the assignment; call after commit. A broker outage is logged, and beat's
    ``handoff_resume_stalled`` queues the hand-off again later."""
    from .tasks import handoff_assign as assign_task

    return task_enqueue(assign_task, handoff_id, what=f"Hand-off {handoff_id}")


# --- Assigning -----------------------------------------------------------------------


def handoff_assign(*, handoff_id: int, now: dt.datetime | None = None) -> HandOff | None:
    """Pick the owner, create the follow-up task and notify the owner; idempotent.

    Locks the lead, then the hand-off (the order every hand-off action uses), and skips
    the steps whose timestamps are set, so a repeated or concurrent run creates no
    second task or notification. ``lead_handed_off`` is sent after commit by the run
    that notified the owner. Returns None for an unknown hand-off.
    """
    lead_id = HandOff.objects.filter(pk=handoff_id).values_list("lead_id", flat=True).first()
    if lead_id is None:
        return None
    with transaction.atomic():
        leads = Lead.objects.select_for_update(of=("self",)).select_related("owner")
        lead = leads.filter(pk=lead_id).first()
        handoff = HandOff.objects.select_for_update().filter(pk=handoff_id).first()
        if lead is None or handoff is None:
            return None
        if handoff.is_closed or handoff.notified_at is not None:
            return handoff
        now = now or timezone.now()
        fields: list[str] = []
        if handoff.assigned_at is None:
            fields += _assign_owner(handoff, lead, now)
        if handoff.owner is None:
            fields += _announce_unassigned(handoff, lead, now)
        else:
            if handoff.task_id is None:
                fields += _create_follow_up(handoff, lead, now)
            fields += _notify_owner(handoff, lead, now)
            transaction.on_commit(partial(lead_handed_off.send, sender=HandOff, handoff=handoff))
        handoff.save(update_fields=fields)
    return handoff


def _assign_owner(handoff: HandOff, lead: Lead, now: dt.datetime) -> list[str]:
    owner, reason = owner_for(lead=lead)
    handoff.owner = owner
    handoff.assigned_by = reason
    handoff.assigned_at = now
    if owner is not None:
        handoff.sla_due_at = now + dt.timedelta(hours=settings.HANDOFF_SLA_HOURS)
        if lead.owner_id != owner.pk:
            lead.owner = owner
            lead.save(update_fields=["owner", "updated_at"])
    return ["owner", "assigned_by", "assigned_at", "sla_due_at"]


def _create_follow_up(handoff: HandOff, lead: Lead, now: dt.datetime) -> list[str]:
    handoff.task = Task.objects.create(
        lead=lead,
        assignee=handoff.owner,
        title=f"Follow up with {lead}"[:200],
        kind=TaskKind.FOLLOW_UP,
        due_at=handoff.sla_due_at or now,
    )
    return ["task"]


def _notify_owner(handoff: HandOff, lead: Lead, now: dt.datetime) -> list[str]:
    due = timezone.localtime(handoff.sla_due_at or now)
    notify(
        user=handoff.owner,
        kind=NotificationKind.HANDOFF,
        title=f"New lead for you: {lead}",
        body=(
            f"{lead} reached {Stage(handoff.stage).label} with a score of {lead.score} "
            f"({lead.get_band_display()}) and is yours ({handoff.assigned_by}). "
            f"Accept or reject the hand-off and reach out by {due:%Y-%m-%d %H:%M %Z}."
        ),
        url=lead.get_absolute_url(),
        lead=lead,
    )
    handoff.notified_at = now
    return ["notified_at"]


def _announce_unassigned(handoff: HandOff, lead: Lead, now: dt.datetime) -> list[str]:
    """No rule found an owner: the managers hear of it once, and assign by hand."""
    managers = people_with_role(Role.MANAGER)
    for manager in managers:
        notify(
            user=manager,
            kind=NotificationKind.HANDOFF,
            title=f"Unassigned hand-off: {lead}",
            body=(
                f"{lead} reached {Stage(handoff.stage).label} with a score of {lead.score}, "
                "but no assignment rule found an owner. Assign the lead by hand, or add a "
                "fallback rule in the admin."
            ),
            url=lead.get_absolute_url(),
            lead=lead,
        )
    handoff.notified_at = now
    return ["notified_at"]


def handoffs_resume_stalled(*, now: dt.datetime | None = None) -> int:
    """Queue again the assignments whose owner was never notified; how many were queued."""
    older_than = (now or timezone.now()) - STALLED_AFTER
    ids = list(HandOff.objects.stalled(older_than).values_list("pk", flat=True)[:ESCALATION_BATCH])
    return sum(handoff_assign_request(handoff_id=pk) for pk in ids)


# --- Accepting and rejecting ---------------------------------------------------------


def handoff_accept(*, handoff: HandOff, by: User) -> HandOff:
    """The owner (or their manager, or an admin) takes the lead on.

    Raises ``PermissionDenied`` for anyone else and ``HandOffError`` when the hand-off is
    closed already; nothing changes then.
    """
    with transaction.atomic():
        locked = _locked(handoff)
        _check_may_close(locked, by)
        _check_open(locked)
        locked.status = HandOffStatus.ACCEPTED
        locked.accepted_at = timezone.now()
        locked.closed_by = by
        locked.save(update_fields=["status", "accepted_at", "closed_by"])
    return locked


def handoff_reject(*, handoff: HandOff, by: User, reason: str) -> HandOff:
    """Return the lead to marketing: it moves to recycled with the reason, loses its owner,
    its follow-up task is closed, and the marketers are told.

    Raises ``HandOffError`` (keyed ``reason``) for a missing or overlong reason or a closed
    hand-off, and ``PermissionDenied`` for anyone but the owner, their manager or an
    admin; nothing changes then.
    """
    reason = (reason or "").strip()
    if not reason:
        raise HandOffError({"reason": "Say why the lead is not ready for sales."})
    if len(reason) > REASON_MAX:
        raise HandOffError({"reason": f"Use at most {REASON_MAX} characters."})
    with transaction.atomic():
        locked = _locked(handoff)
        _check_may_close(locked, by)
        _check_open(locked)
        now = timezone.now()
        locked.status = HandOffStatus.REJECTED
        locked.rejected_at = now
        locked.reject_reason = reason
        locked.closed_by = by
        locked.save(update_fields=["status", "rejected_at", "reject_reason", "closed_by"])
        _return_to_marketing(locked, by, reason, now)
    return locked


def _return_to_marketing(handoff: HandOff, by: User, reason: str, now: dt.datetime) -> None:

    try:
        lead_move_to_stage(
            lead_id=handoff.lead_id,
            stage=Stage.RECYCLED,
            by=by,
            reason=f"Hand-off rejected: {reason}",
        )
    except StageTransitionError as error:
        raise HandOffError(error.messages) from error
    lead = Lead.objects.get(pk=handoff.lead_id)
    lead.owner = None
    lead.save(update_fields=["owner", "updated_at"])
    if handoff.task_id is not None:
        Task.objects.filter(pk=handoff.task_id, done_at__isnull=True).update(done_at=now)
    marketers = people_with_role(Role.MARKETER)
    for marketer in marketers:
        notify(
            user=marketer,
            kind=NotificationKind.REJECTION,
            title=f"Returned to marketing: {lead}",
            body=f"{by} rejected the hand-off of {lead}: {reason}",
            url=lead.get_absolute_url(),
            lead=lead,
        )


def _locked(handoff: HandOff) -> HandOff:
    """The hand-off re-read with its lead and itself locked, in that order."""
    list(Lead.objects.select_for_update().filter(pk=handoff.lead_id).values_list("pk"))
    return (
        HandOff.objects.select_for_update(of=("self",))
        .select_related("lead", "owner__team")
        .get(pk=handoff.pk)
    )


def _check_may_close(handoff: HandOff, user: User) -> None:
    if not may_close_handoff(handoff=handoff, user=user):
        raise PermissionDenied("Only the owner, their manager or an admin can do this.")


def _check_open(handoff: HandOff) -> None:
    if handoff.status == HandOffStatus.ACCEPTED:
        raise HandOffError("This hand-off was accepted already.")
    if handoff.status == HandOffStatus.REJECTED:
        raise HandOffError("This hand-off was rejected already.")


# --- Escalation ------------------------------------------------------------------------


def handoffs_escalate_overdue(*, now: dt.datetime | None = None) -> int:
    """Escalate every pending, untouched hand-off past its SLA; how many were escalated."""
    now = now or timezone.now()
    ids = list(
        HandOff.objects.past_sla(now)
        .order_by("sla_due_at")
        .values_list("pk", flat=True)[:ESCALATION_BATCH]
    )
    return sum(handoff_escalate(handoff_id=pk, now=now) for pk in ids)


def handoff_escalate(*, handoff_id: int, now: dt.datetime) -> bool:
    """Hand an overdue hand-off to the owner's team manager, once; whether this call did.

    The conditional UPDATE claims the row, so overlapping beat runs escalate once.
    ``handoff_escalated`` is sent after commit. Without a manager the hand-off is
    marked escalated to nobody (and logged), so it is not tried again every run.
    """
    with transaction.atomic():
        handoff = (
            HandOff.objects.select_related("lead", "owner__team__manager")
            .filter(pk=handoff_id)
            .first()
        )
        if handoff is None:
            return False
        # Lead before hand-off, as every hand-off action and the stage move lock them.
        list(Lead.objects.select_for_update().filter(pk=handoff.lead_id).values_list("pk"))
        manager = _manager_of(handoff.owner)
        claimed = (
            HandOff.objects.past_sla(now)
            .filter(pk=handoff_id)
            .update(escalated_at=now, escalated_to=manager)
        )
        if not claimed:
            return False
        handoff.escalated_at, handoff.escalated_to = now, manager
        if manager is None:
            log.warning("Hand-off %s is overdue and its owner has no manager", handoff_id)
        else:
            _notify_escalation(handoff, manager)
        transaction.on_commit(partial(handoff_escalated.send, sender=HandOff, handoff=handoff))
    return True


def _manager_of(owner: User | None) -> User | None:
    if owner is None or owner.team is None or owner.team.manager is None:
        return None
    manager = owner.team.manager
    return manager if manager.is_active else None


def _notify_escalation(handoff: HandOff, manager: User) -> None:
    lead, owner = handoff.lead, handoff.owner
    due = timezone.localtime(handoff.sla_due_at)
    notify(
        user=manager,
        kind=NotificationKind.ESCALATION,
        title=f"Overdue hand-off: {lead}",
        body=(
            f"{owner} has neither accepted nor contacted {lead} (score {lead.score}); "
            f"the follow-up was due {due:%Y-%m-%d %H:%M %Z}. Reassign the lead or "
            f"check in with {owner}."
        ),
        url=lead.get_absolute_url(),
        lead=lead,
    )


# --- Touches, speed to lead, ratings, surges -------------------------------------------


def lead_log_touch(
    *,
    lead: Lead,
    by: User,
    type: str,
    notes: str = "",
    occurred_at: dt.datetime | None = None,
) -> Activity:
    """Log a call, meeting or email reply a person had with the lead.

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
        properties={"notes": notes} if notes else {},
    )
    activities_record(lead=lead, activities=[activity])
    return activity


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


def lead_notify_surge(*, lead_id: int, points: float, hours: int) -> bool:
    """Tell the lead's owner their lead's score jumped; whether anyone was told.

    Call after the transaction that scored the lead committed, once per surge (scoring
    calls it for each ``score_surged``).
    """
    lead = Lead.objects.select_related("owner").filter(pk=lead_id).first()
    if lead is None or lead.owner is None or not lead.owner.is_active:
        return False
    with transaction.atomic():
        notify(
            user=lead.owner,
            kind=NotificationKind.SURGE,
            title=f"{lead} is surging",
            body=(
                f"{lead} earned {points:g} points in the last {hours} hours "
                f"and now scores {lead.score} ({lead.get_band_display()})."
            ),
            url=lead.get_absolute_url(),
            lead=lead,
        )
    return True


# --- Configuration -----------------------------------------------------------------------


def check_handoff_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    """System check: the hand-off stage is MQL or SQL, and the SLA is at least an hour."""
    errors: list[checks.CheckMessage] = []
    allowed = [Stage.MQL, Stage.SQL]
    if settings.HANDOFF_STAGE not in allowed:
        errors.append(
            checks.Error(
                f"HANDOFF_STAGE is {settings.HANDOFF_STAGE!r}.",
                hint=f"Use one of: {', '.join(allowed)}.",
                id="leads.E001",
            )
        )
    if settings.HANDOFF_SLA_HOURS < 1:
        errors.append(
            checks.Error(
                f"HANDOFF_SLA_HOURS is {settings.HANDOFF_SLA_HOURS}.",
                hint="Give the hours a rep has to act as a whole number of at least 1.",
                id="leads.E002",
            )
        )
    return errors

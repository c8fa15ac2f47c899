"""A hand-off answered: the owner accepts the lead, or rejects it back to marketing.

``handoff_accept`` and ``handoff_reject`` are the one service every surface calls (the
workspace's lead page and My day; the admin only lists hand-offs). Accepting
is an acknowledgement, not contact with the lead: it stops the escalation but does not
count as a touch (``leads.sales_feedback``). A lead that leaves the hand-off stage by
another way closes its pending hand-offs in the transaction of the move.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from crm.models import Role
from crm.permissions import people_with_role

from .handoff_models import HandOff, HandOffStatus, NotificationKind
from .models import FUNNEL, Lead, Stage, StageChange, StageTransitionError, Task
from .notifications import notifications_settle, notify
from .permissions import may_close_handoff
from .stages import lead_move_to_stage

if TYPE_CHECKING:
    from crm.models import User

# What ``HandOff.reject_reason`` holds.
REASON_MAX = 500


class HandOffError(ValidationError):
    """A hand-off action the hand-off's state or the input does not allow."""


def handoffs_close_on_move(*, lead: Lead, change: StageChange) -> int:
    """Close the lead's pending hand-offs when it leaves the hand-off stage by another way:
    moving on in the funnel accepts them, dropping out rejects them with the move's reason.
    Call inside the transaction of the move; returns how many were closed."""
    pending = HandOff.objects.pending().filter(lead=lead)
    handoff_at = FUNNEL.index(Stage(settings.HANDOFF_STAGE))
    if change.to_stage in FUNNEL and FUNNEL.index(Stage(change.to_stage)) > handoff_at:
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
        _settle(locked, by)
    return locked


def _settle(handoff: HandOff, by: User) -> None:
    """The hand-off's notifications to its owner and whoever closed it are answered."""
    people = {handoff.owner_id, by.pk} - {None}
    notifications_settle(
        lead_id=handoff.lead_id,
        kinds=[NotificationKind.HANDOFF, NotificationKind.ESCALATION],
        users=[pk for pk in people if pk is not None],
    )


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
        _settle(locked, by)
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

"""A hand-off opened and assigned: a sales-ready lead gets an owner, a follow-up task and a
deadline.

A move into ``settings.HANDOFF_STAGE`` (by scoring or by a person, both through
``leads.stages``) writes a ``HandOff`` row in the transaction of the move and
queues ``leads.tasks.handoff_assign`` once it commits. The assigning task picks the
owner (by the rules of ``leads.assignment``), creates the follow-up task and notifies the
owner; each step is recorded by a timestamp, so a retried or duplicated task only does
what is left. Beat re-queues assignments whose message was lost. What follows is in
``leads.handoff_acceptance`` (the owner's answer) and ``leads.handoff_escalation`` (the
SLA).
"""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from crm.models import Role
from crm.permissions import people_with_role
from crm.resilience import task_enqueue

from .assignment import owner_for
from .handoff_acceptance import handoffs_close_on_move
from .handoff_models import HandOff, NotificationKind
from .models import Lead, Stage, StageChange, Task, TaskKind
from .notifications import notify
from .signals import lead_handed_off

if TYPE_CHECKING:
    from crm.models import User

# A hand-off whose owner was not notified this long after it was made is queued again.
STALLED_AFTER = dt.timedelta(minutes=2)
STALLED_BATCH = 500


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


def handoff_assign_request(*, handoff_id: int) -> bool:
    """Queue the assignment; call after commit. A broker outage is logged, and beat's
    ``handoff_resume_stalled`` queues the hand-off again later."""
    return task_enqueue("leads.tasks.handoff_assign", handoff_id, what=f"Hand-off {handoff_id}")


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
        owner = handoff.owner
        if owner is None:
            fields += _announce_unassigned(handoff, lead, now)
        else:
            if handoff.task_id is None:
                fields += _create_follow_up(handoff, lead, owner, now)
            fields += _notify_owner(handoff, lead, owner, now)
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


def _create_follow_up(handoff: HandOff, lead: Lead, owner: User, now: dt.datetime) -> list[str]:
    handoff.task = Task.objects.create(
        lead=lead,
        assignee=owner,
        title=f"Follow up with {lead}"[:200],
        kind=TaskKind.FOLLOW_UP,
        due_at=handoff.sla_due_at or now,
    )
    return ["task"]


def _notify_owner(handoff: HandOff, lead: Lead, owner: User, now: dt.datetime) -> list[str]:
    due = timezone.localtime(handoff.sla_due_at or now)
    notify(
        user=owner,
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
    ids = list(HandOff.objects.stalled(older_than).values_list("pk", flat=True)[:STALLED_BATCH])
    return sum(handoff_assign_request(handoff_id=pk) for pk in ids)

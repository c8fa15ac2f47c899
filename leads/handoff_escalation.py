"""The hand-off SLA: beat escalates hand-offs nobody accepted or touched in time.

An overdue hand-off goes to its owner's team manager, once, with a notification and the
``handoff_escalated`` signal (the team's webhook). Accepting the hand-off
(``leads.handoff_acceptance``) or logging a touch (``leads.sales_feedback``) before the
deadline stops it.
"""

from __future__ import annotations

import datetime as dt
import logging
from functools import partial
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from .handoff_models import HandOff, NotificationKind
from .models import Lead
from .notifications import notify
from .signals import handoff_escalated

if TYPE_CHECKING:
    from crm.models import User

log = logging.getLogger(__name__)

ESCALATION_BATCH = 500


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

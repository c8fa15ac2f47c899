"""Moving leads along their lifecycle and keeping their stage history, with each lead's
``furthest_step`` kept: the views, the API, scoring and the hand-off move leads here."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from .facts import lead_facts_kept
from .models import (
    DealStatus,
    Lead,
    LeadQuerySet,
    Stage,
    StageChange,
    StageTransitionError,
    furthest_step_of,
)
from .permissions import customer_override_refusal
from .signals import lead_stage_changed

if TYPE_CHECKING:
    from crm.models import User


def lead_move_to_stage(
    *, lead_id: int, stage: str, by: User | None = None, reason: str = ""
) -> StageChange:
    """Lock the lead, validate and apply the move, and record it.

    Raises ``Lead.DoesNotExist`` for an unknown lead and ``StageTransitionError``
    for a move the lifecycle refuses; either way nothing is written.
    """
    with transaction.atomic():
        lead = Lead.objects.select_for_update().get(pk=lead_id)
        return lead_move_to_stage_locked(lead=lead, stage=stage, by=by, reason=reason)


def lead_move_to_stage_locked(
    *, lead: Lead, stage: str, by: User | None = None, reason: str = ""
) -> StageChange:
    """Move a lead along its lifecycle, record the move and announce it.

    Call inside ``transaction.atomic()`` with the lead row locked (``lead_move_to_stage``
    does both). ``by`` is the person who made the move, or None when the system did.
    Raises ``StageTransitionError`` for a move the lifecycle does not allow, leaving
    the lead unchanged: among them a move to customer without a won deal, unless a
    manager or an admin overrides it with a reason (recorded on the stage change).
    """
    previous = lead.stage
    reason = reason.strip()
    if stage == Stage.CUSTOMER and lead.can_move_to(stage) and not _has_won_deal(lead):
        refusal = customer_override_refusal(user=by, reason=reason)
        if refusal:
            raise StageTransitionError(refusal)
        reason = f"{WITHOUT_WON_DEAL}{reason}"[:500]
    now = timezone.now()
    lead.save(update_fields=lead.set_stage(stage, reason=reason, at=now))
    change = stage_change_record(
        lead=lead, from_stage=previous, to_stage=lead.stage, at=now, by=by, reason=reason
    )
    lead_stage_changed.send(sender=Lead, lead=lead, change=change)
    return change


# How the history tells a customer made without a won deal from one that won its deal.
WITHOUT_WON_DEAL = "Customer without a won deal: "


def _has_won_deal(lead: Lead) -> bool:
    return lead.deals.filter(status=DealStatus.WON).exists()


def stage_change_record(
    *,
    lead: Lead,
    from_stage: str,
    to_stage: str,
    at: dt.datetime | None = None,
    by: User | None = None,
    reason: str = "",
) -> StageChange:
    """Append a change to the lead's stage history and raise its ``furthest_step`` to
    cover it, in one transaction. The lead's own stage is left to the caller."""
    change = StageChange(lead=lead, from_stage=from_stage, to_stage=to_stage, by=by, reason=reason)
    if at is not None:
        change.at = at
    with transaction.atomic():
        change.save()
        # Only ever raised, by a conditional UPDATE: nothing to lock or re-read.
        step = furthest_step_of(Stage.NEW, [(from_stage, to_stage)])
        Lead.objects.filter(pk=lead.pk, furthest_step__lt=step).update(furthest_step=step)
    return change


def stage_changes_delete(*, changes: QuerySet[StageChange]) -> int:
    """Delete stage changes and work their leads' furthest steps out again from the rest;
    how many were deleted."""
    with lead_facts_kept(
        changes.values_list("lead_id", flat=True), LeadQuerySet.refresh_furthest_step
    ):
        deleted, _ = changes.delete()
    return deleted

"""Actions on leads that views, the API, admin actions, tasks and commands all call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from .models import Lead, StageChange

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
        return lead.move_to_stage(stage, by=by, reason=reason)

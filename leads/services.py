"""Actions on leads that views, the API, admin actions, tasks and commands all call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest, Least

from .models import Activity, Lead, StageChange
from .signals import activity_recorded, lead_profile_changed

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


def activities_record(*, lead: Lead, activities: list[Activity]) -> list[Activity]:
    """Store activities for a lead and announce them so they are scored after commit.

    Keeps the lead's first and last activity times. A repeated idempotency key from
    the same source raises ``IntegrityError`` and stores nothing.
    """
    with transaction.atomic():
        for activity in activities:
            activity.lead = lead
        created = Activity.objects.bulk_create(activities)
        times = [a.occurred_at for a in created]
        first, last = min(times), max(times)
        Lead.objects.filter(pk=lead.pk).update(
            first_activity_at=Coalesce(Least(F("first_activity_at"), first), first),
            last_activity_at=Coalesce(Greatest(F("last_activity_at"), last), last),
        )
        activity_recorded.send(
            sender=Activity, lead_id=lead.pk, activity_ids=[a.pk for a in created]
        )
    return created


def lead_save_profile(*, lead: Lead, changed_fields: list[str]) -> Lead:
    """Save a lead whose explicit fields changed and rescore its fit after commit.

    An existing lead writes only the changed columns: the scores on the row belong to
    the scoring worker, which may have written them since the lead was read.
    """
    with transaction.atomic():
        if lead.pk is None:
            lead.save()
        else:
            columns = {field.name for field in Lead._meta.concrete_fields}
            lead.save(update_fields=[*(f for f in changed_fields if f in columns), "updated_at"])
        lead_profile_changed.send(sender=Lead, lead_id=lead.pk, fields=changed_fields)
    return lead

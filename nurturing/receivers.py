"""What nurturing does when leads and scoring announce a fact: a band or stage moved
(switch tracks), a reply came in (end the enrollments that stop on replies). Connected in
``NurturingConfig.ready``."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction

from leads.models import ActivityType

from .enrollment import lead_sync_request, leads_sync_request
from .tracking import enrollments_end_on_reply


def sync_on_band_change(sender: Any, lead_id: int, **kwargs: Any) -> None:
    """One lead's band moved (scoring it, after commit): switch tracks."""
    lead_sync_request(lead_id=lead_id)


def sync_on_bands_change(
    sender: Any, changes: list[tuple[int, str, str, int]], **kwargs: Any
) -> None:
    """Many leads' bands moved (a rescore or the nightly decay, after commit): switch
    their tracks, a few hundred leads to a task."""
    leads_sync_request(lead_ids=[lead_id for lead_id, *_ in changes])


def sync_on_stage_change(sender: Any, lead: Any, **kwargs: Any) -> None:
    """The stage moved (inside its transaction): leave or enter tracks once it commits."""
    transaction.on_commit(partial(lead_sync_request, lead_id=lead.pk))


def end_on_reply(
    sender: Any, lead_id: int, activity_ids: list[int], activities: Any = None, **kwargs: Any
) -> None:
    """A reply was recorded: end the enrollments that stop on replies, in its transaction.

    When the signal carries the stored activities, anything but a reply costs no query.
    """
    if activities is not None and all(a.type != ActivityType.EMAIL_REPLY for a in activities):
        return
    enrollments_end_on_reply(lead_id=lead_id, activity_ids=activity_ids)

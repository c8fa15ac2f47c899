from functools import partial
from typing import Any

from django.apps import AppConfig
from django.db import transaction


class NurturingConfig(AppConfig):
    name = "nurturing"
    verbose_name = "Nurture sequences"

    def ready(self) -> None:
        from leads.signals import activity_recorded, lead_stage_changed
        from scoring.signals import band_changed

        band_changed.connect(sync_on_band_change, dispatch_uid="nurturing.band_changed")
        lead_stage_changed.connect(sync_on_stage_change, dispatch_uid="nurturing.stage_changed")
        activity_recorded.connect(end_on_reply, dispatch_uid="nurturing.activity_recorded")


def sync_on_band_change(sender: Any, lead_id: int, **kwargs: Any) -> None:
    """The band moved (scoring or the nightly decay, after commit): switch tracks."""
    from .enrollment import lead_sync_request

    lead_sync_request(lead_id=lead_id)


def sync_on_stage_change(sender: Any, lead: Any, **kwargs: Any) -> None:
    """The stage moved (inside its transaction): leave or enter tracks once it commits."""
    from .enrollment import lead_sync_request

    transaction.on_commit(partial(lead_sync_request, lead_id=lead.pk))


def end_on_reply(
    sender: Any, lead_id: int, activity_ids: list[int], activities: Any = None, **kwargs: Any
) -> None:
    """A reply was recorded: end the enrollments that stop on replies, in its transaction.

    When the signal carries the stored activities, anything but a reply costs no query.
    """
    from leads.models import ActivityType

    from .tracking import enrollments_end_on_reply

    if activities is not None and all(a.type != ActivityType.EMAIL_REPLY for a in activities):
        return
    enrollments_end_on_reply(lead_id=lead_id, activity_ids=activity_ids)

from functools import partial

from django.apps import AppConfig
from django.db import transaction


class ScoringConfig(AppConfig):
    name = "scoring"
    verbose_name = "Lead scoring"

    def ready(self) -> None:
        from leads.signals import activity_recorded, lead_profile_changed

        activity_recorded.connect(queue_scoring, dispatch_uid="scoring.activity_recorded")
        lead_profile_changed.connect(queue_scoring, dispatch_uid="scoring.lead_profile_changed")


def queue_scoring(sender, lead_id: int, **kwargs) -> None:
    """Score the lead once the transaction that changed it has committed."""
    from .tasks import score_lead

    transaction.on_commit(partial(score_lead.delay, lead_id))

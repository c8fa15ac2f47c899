from functools import partial

from django.apps import AppConfig
from django.db import transaction


class ScoringConfig(AppConfig):
    name = "scoring"
    verbose_name = "Lead scoring"

    def ready(self) -> None:
        from leads.signals import activity_recorded, lead_profile_changed

        activity_recorded.connect(queue_activities, dispatch_uid="scoring.activity_recorded")
        lead_profile_changed.connect(queue_profile, dispatch_uid="scoring.lead_profile_changed")


def queue_activities(sender, lead_id: int, **kwargs) -> None:
    """Score the new activities once the transaction that stored them has committed."""
    from .services import pending_scoring_request

    transaction.on_commit(partial(pending_scoring_request, lead_id=lead_id))


def queue_profile(sender, lead_id: int, **kwargs) -> None:
    """Rescore the lead's fit once the transaction that changed it has committed."""
    from .services import lead_score_request

    transaction.on_commit(partial(lead_score_request, lead_id=lead_id))

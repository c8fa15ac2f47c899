from django.apps import AppConfig
from django.core import checks


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = "Leads"

    def ready(self) -> None:
        from . import handoff
        from .signals import activity_recorded, lead_stage_changed

        lead_stage_changed.connect(
            handoff.handoff_on_stage_changed, dispatch_uid="leads.handoff.stage_changed"
        )
        activity_recorded.connect(
            handoff.handoff_on_activity_recorded, dispatch_uid="leads.handoff.activity_recorded"
        )
        checks.register(handoff.check_handoff_settings)
        from . import webhooks  # noqa: F401  (hand-offs posted to the teams' webhooks)

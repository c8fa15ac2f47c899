from django.apps import AppConfig
from django.core import checks


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = "Leads"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from . import tasks  # noqa: F401  (registered: services queue them by name)
        from .checks import check_handoff_settings
        from .handoff_assignment import handoff_on_stage_changed
        from .name_collation import name_collation_register
        from .sales_feedback import handoff_on_activity_recorded
        from .signals import activity_recorded, lead_stage_changed

        # SQLite compares names for the name sort in a collation of its own.
        connection_created.connect(name_collation_register, dispatch_uid="leads.name_collation")

        lead_stage_changed.connect(
            handoff_on_stage_changed, dispatch_uid="leads.handoff.stage_changed"
        )
        activity_recorded.connect(
            handoff_on_activity_recorded, dispatch_uid="leads.handoff.activity_recorded"
        )
        checks.register(check_handoff_settings)
        from . import webhooks  # noqa: F401  (hand-offs posted to the teams' webhooks)
        from .admin.lead_exports import SOURCE, admin_leads_for_export
        from .export_jobs import export_source_register

        export_source_register(SOURCE, admin_leads_for_export)

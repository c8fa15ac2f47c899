from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "Users and teams"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401  (registers the system checks)
            tasks,  # noqa: F401  (registered: services queue them by name)
        )
        from .roles import sync_role_groups

        post_migrate.connect(sync_role_groups, dispatch_uid="crm.sync_role_groups")

from django.apps import AppConfig


class WorkspaceConfig(AppConfig):
    name = "workspace"
    label = "workspace"
    verbose_name = "Rep workspace"

    def ready(self) -> None:
        from leads.export_jobs import export_source_register

        from .exports import SOURCE, list_leads_for_export

        export_source_register(SOURCE, list_leads_for_export)

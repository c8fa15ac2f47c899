from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    label = "api"
    verbose_name = "REST API and public endpoints"

    def ready(self) -> None:
        from leads.export_jobs import export_source_register

        from .leads import EXPORT_SOURCE, leads_for_export

        export_source_register(EXPORT_SOURCE, leads_for_export)

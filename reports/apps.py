from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Reports"

    def ready(self) -> None:
        from scoring.signals import rescore_finished

        from .rollups import rule_matches_on_rescore

        rescore_finished.connect(rule_matches_on_rescore, dispatch_uid="reports.rule_matches")

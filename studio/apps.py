from django.apps import AppConfig


class StudioConfig(AppConfig):
    name = "studio"
    label = "studio"
    verbose_name = "Scoring studio"

from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo world: seeds every domain app, so it sits above all of them."""

    name = "demo"
    label = "demo"
    verbose_name = "Demo world"

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security)
def check_secret_key(app_configs, **kwargs):
    """Refuse the public development key outside DEBUG: it would let anyone forge sessions."""
    if not settings.DEBUG and settings.SECRET_KEY == settings.DEVELOPMENT_SECRET_KEY:
        return [
            Error(
                "SECRET_KEY is the public development key while DEBUG is off.",
                hint="Set the SECRET_KEY environment variable to a long random value.",
                id="crm.E001",
            )
        ]
    return []

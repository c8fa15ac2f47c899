"""System checks of the leads app's settings, registered in ``LeadsConfig.ready()``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from .models import Stage


def check_handoff_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    """System check: the hand-off stage is MQL or SQL, and the SLA is at least an hour."""
    errors: list[checks.CheckMessage] = []
    allowed = [Stage.MQL, Stage.SQL]
    if settings.HANDOFF_STAGE not in allowed:
        errors.append(
            checks.Error(
                f"HANDOFF_STAGE is {settings.HANDOFF_STAGE!r}.",
                hint=f"Use one of: {', '.join(allowed)}.",
                id="leads.E001",
            )
        )
    if settings.HANDOFF_SLA_HOURS < 1:
        errors.append(
            checks.Error(
                f"HANDOFF_SLA_HOURS is {settings.HANDOFF_SLA_HOURS}.",
                hint="Give the hours a rep has to act as a whole number of at least 1.",
                id="leads.E002",
            )
        )
    return errors

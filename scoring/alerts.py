"""The surge alert: ``score_surged`` is a scoring fact, and the owner hears of it through
leads' notification service, so ``leads`` never listens to scoring."""

from __future__ import annotations

from typing import Any

from leads.notifications import lead_notify_surge


def owner_alert_on_surge(
    sender: Any, lead_id: int, points: float, hours: int, **kwargs: Any
) -> None:
    """``scoring.signals.score_surged`` receiver: tell the lead's owner."""
    lead_notify_surge(lead_id=lead_id, points=round(points, 1), hours=hours)

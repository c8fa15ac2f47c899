"""The score explanation that hand-off emails and webhook payloads show.

``leads`` decides nothing about points, so it cannot explain a score: the app that
scores (``scoring``) registers the one provider in its ``AppConfig.ready()`` with
``score_explanation_provider_set``. ``leads`` never imports that app.

A provider takes a lead and returns the explanation by its primary scoring model, or
``None`` when no model scores the lead. An explanation is a dict with at least
``"model"`` (``"name"``, ``"primary"``), ``"fit"``, ``"engagement"``,
``"decay_applied"``, and ``"positive"`` and ``"negative"``: rule lines, largest first,
each with ``"reason"``, ``"points"``, ``"value_now"`` (decay applied) and ``"times"``.
With no provider registered every lead has ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .models import Lead

ScoreExplanation = dict[str, Any]
ScoreExplanationProvider = Callable[[Lead], ScoreExplanation | None]

_provider: ScoreExplanationProvider | None = None


def score_explanation_provider_set(provider: ScoreExplanationProvider | None) -> None:
    """Make ``provider`` the source of every lead's score explanation (``None`` clears it)."""
    global _provider
    _provider = provider


def lead_score_explanation(*, lead: Lead) -> ScoreExplanation | None:
    """The explanation of the lead's score by its primary model, if any app provides one."""
    return _provider(lead) if _provider is not None else None

"""A lead's account score, for the assignment rules that route key accounts.

``leads`` does not sum account scores: the app that scores (``scoring``) registers the
one provider in its ``AppConfig.ready()`` with ``account_score_provider_set``, and
``leads`` never imports that app. A provider takes a lead and returns its company's
account score in the model that scores the lead (its primary one), or ``None`` when the
lead has no company or the company no score. With no provider registered every lead has
``None``, and no key-account rule matches.
"""

from __future__ import annotations

from collections.abc import Callable

from .models import Lead

AccountScoreProvider = Callable[[Lead], int | None]

_provider: AccountScoreProvider | None = None


def account_score_provider_set(provider: AccountScoreProvider | None) -> None:
    """Make ``provider`` the source of every lead's account score (``None`` clears it)."""
    global _provider
    _provider = provider


def lead_account_score(*, lead: Lead) -> int | None:
    """The account score of the lead's company, if any app provides one."""
    return _provider(lead) if _provider is not None else None

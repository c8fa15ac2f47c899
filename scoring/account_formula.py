"""A company's score from its people's scores in one model, on plain values.

For a company and a model, over the company's leads scored in the model:

- **best fit**: the highest fit among them, each lead's fit with its adjustments and up
  to the model's fit cap (the fit its score counts);
- **engagement**: their engagement summed, each lead's stored engagement decayed from
  when it was stored with the model's half-life, ``e * 0.5 ** ((now - t) / half_life)``
  (``scoring.score_formula.decayed``). The idle-week penalty is left out: a sum of values
  that each halve with the half-life halves with it, so the stored sum carries forward
  exactly like a lead's engagement;
- **engaged contacts**: how many of them have that engagement at or above the model's
  ``engaged_from`` (the threshold the lead's quadrant calls engaged);
- **score**: the model's base score, plus the best fit, plus the summed engagement up
  to the model's engagement cap, rounded and up to the model's maximum: the score of
  one composite lead with the account's best person's fit and all its people's
  engagement, on the model's scale, banded by the model's hot and warm thresholds.

``scoring.accounts`` computes the same in set-based SQL; the tests hold the two to the
same answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .score_formula import Thresholds, band_for, capped, decayed, total_score


@dataclass(frozen=True)
class Contact:
    """One lead's score in the model, as stored (``LeadScore``)."""

    fit: float
    adjustment: float
    engagement: float
    engagement_at: datetime


@dataclass(frozen=True)
class AccountState:
    best_fit: float
    engagement: float
    engaged_contacts: int
    score: int
    band: str


def contact_engagement(contact: Contact, now: datetime, half_life_days: float | None) -> float:
    """The lead's engagement at ``now``, decayed with the model's half-life."""
    return decayed(contact.engagement, contact.engagement_at, now, half_life_days)


def account_state(
    contacts: Iterable[Contact],
    *,
    now: datetime,
    half_life_days: float | None,
    thresholds: Thresholds,
) -> AccountState | None:
    """The account's state at ``now`` (module docstring); None without contacts."""
    contacts = list(contacts)
    if not contacts:
        return None
    best_fit = max(capped(c.fit + c.adjustment, thresholds.fit_cap) for c in contacts)
    engagements = [contact_engagement(c, now, half_life_days) for c in contacts]
    engagement = sum(engagements)
    engaged = sum(1 for value in engagements if value >= thresholds.engaged)
    score = account_score(best_fit, engagement, thresholds)
    return AccountState(best_fit, engagement, engaged, score, band_for(score, thresholds))


def account_score(best_fit: float, engagement: float, thresholds: Thresholds) -> int:
    """Base score + best fit + summed engagement up to the engagement cap, rounded half
    up, up to the maximum. ``best_fit`` is already within the fit cap."""
    return total_score(best_fit, engagement, thresholds)


def engagement_now(
    engagement: float, engagement_at: datetime, now: datetime, half_life_days: float | None
) -> float:
    """A stored account engagement carried forward to ``now``."""
    return decayed(engagement, engagement_at, now, half_life_days)

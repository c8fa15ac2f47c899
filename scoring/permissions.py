"""Who may do what to scores: one answer for every surface.

- Managers and admins adjust a lead's score by hand, from the lead admin's action and
  the workspace's bulk action alike; reps and marketers do not. (``leads_adjust_score``
  itself takes any ``by``: tasks and commands adjust as the system.)
- Scoring models and rules are read by every role and changed by marketers and admins:
  that is held by the Django model permissions ``crm.roles`` grants each role, which the
  admin and the REST API both check. ``may_change_models`` answers the same for the
  other pages (the studio) from the role alone, which every page has read already: the
  roles ``crm.roles`` grants those permissions (a test holds the two answers together).
- Suggested weights sum up every team's won and lost leads, so they are read by those
  who may change scoring models (marketers and admins), and turned into a draft by
  those who may add one: the admin's page and the REST API ask the two functions below.
"""

from __future__ import annotations

from crm.models import Role, User


def may_adjust_score(user: User) -> bool:
    """Whether ``user`` may add or take off points by hand."""
    return user.role in (Role.ADMIN, Role.MANAGER)


def may_view_suggestions(user: User) -> bool:
    """Whether ``user`` may see the weights suggested from the closed leads."""
    return user.is_active and user.has_perm("scoring.change_scoringmodel")


def may_draft_suggestions(user: User) -> bool:
    """Whether ``user`` may turn suggested weights into a draft version of a model."""
    return may_view_suggestions(user) and user.has_perm("scoring.add_scoringmodel")


MODEL_CHANGING_ROLES = (Role.ADMIN, Role.MARKETER)


def may_change_models(user: User) -> bool:
    """Whether ``user`` may change scoring models and rules, try versions and publish them."""
    return user.is_authenticated and user.is_active and user.role in MODEL_CHANGING_ROLES

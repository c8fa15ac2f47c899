"""Who may do what to scores: one answer for every surface.

- Managers and admins adjust a lead's score by hand, from the lead admin's action and
  the workspace's bulk action alike; reps and marketers do not. (``leads_adjust_score``
  itself takes any ``by``: tasks and commands adjust as the system.)
- Scoring models and rules are read by every role and changed by marketers and admins:
  that is held by the Django model permissions ``crm.roles`` grants each role, which the
  admin and the REST API both check, so no role is compared here for it;
  ``may_change_models`` asks the same permission for the other pages (the studio).
"""

from __future__ import annotations

from crm.models import Role, User


def may_adjust_score(user: User) -> bool:
    """Whether ``user`` may add or take off points by hand."""
    return user.role in (Role.ADMIN, Role.MANAGER)


def may_change_models(user: User) -> bool:
    """Whether ``user`` may change scoring models and rules, try versions and publish them."""
    return user.is_authenticated and user.has_perm("scoring.change_scoringmodel")

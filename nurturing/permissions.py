"""Who may do what with nurture sequences: one answer for every surface.

- Reps, managers and admins enroll the leads they act on in a sequence by hand from
  the rep workspace.
- Sequences, their steps and enrollments are edited, paused, resumed and filled by hand
  in the admin by those the Django model permissions of ``crm.roles`` allow (marketers
  and admins), so no role is compared here for it.
"""

from __future__ import annotations

from crm.models import Role, User


def may_enroll_leads(user: User) -> bool:
    """Whether ``user`` enrolls leads by hand from the workspace."""
    return user.role in (Role.ADMIN, Role.MANAGER, Role.REP)

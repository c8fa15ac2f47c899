"""Who sees which reports, and who receives the weekly digest.

Reps report on their own leads, managers on their teams' leads, marketers and admins on
every lead (``leads.permissions.leads_answered_for``, which My day shows too). Every
scope starts from ``Lead.objects.visible_to(user)`` and only narrows it, so a report can
never show a lead its reader could not open.
"""

from __future__ import annotations

from django.db.models import QuerySet

from crm.models import Role, Team, User
from crm.permissions import managed_people, teams_visible_to
from leads.models import Lead
from leads.permissions import leads_answered_for

REPORT_ROLES = frozenset({Role.ADMIN, Role.MARKETER, Role.MANAGER, Role.REP})
DIGEST_ROLES = (Role.MANAGER, Role.MARKETER)


def may_see_reports(user: User) -> bool:
    return user.is_authenticated and user.is_active and user.role in REPORT_ROLES


def digest_eligible(*, user: User) -> bool:
    """Managers and marketers receive the weekly digest (when they have an email address)."""
    return user.is_active and user.role in DIGEST_ROLES


def teams_for(user: User) -> QuerySet[Team]:
    """The teams whose figures a person may filter by: all for admins and marketers, the
    ones a manager runs or belongs to, none for reps."""
    if user.role == Role.MARKETER:
        return Team.objects.all()
    return teams_visible_to(user)


def picks_people(user: User) -> bool:
    """Whether the reports offer the person filters by owner and team: everyone but reps,
    who report on their own leads."""
    return user.role != Role.REP


def report_leads(user: User) -> QuerySet[Lead]:
    """The leads whose figures ``user`` sees: their own (reps), their teams' (managers),
    every lead (marketers, admins), none for anyone else."""
    return leads_answered_for(user)


def report_people(user: User) -> QuerySet[User] | None:
    """The people whose hand-offs ``user``'s reports count, whoever owns the lead now:
    themselves (reps), their teams (managers), everyone (None: marketers, admins).

    A hand-off a rep rejected returns its lead to marketing without an owner, so it
    leaves the team's leads; it stays the team's hand-off, and speed to lead counts it.
    """
    role = user.role
    if role == Role.REP:
        return User.objects.filter(pk=user.pk)
    if role == Role.MANAGER:
        return managed_people(user)
    if role in (Role.ADMIN, Role.MARKETER):
        return None
    return User.objects.none()

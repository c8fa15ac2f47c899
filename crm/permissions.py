"""Who may see which teams, people and API tokens: one answer for the admin, the API and
the leads app.

Admins see and manage every team and user. A sales manager sees the teams they manage
and the team they belong to, and the people in them, and changes neither: teams, their
managers and their members are set by admins (``crm.roles`` gives managers ``view``
only). Nobody else sees teams or users here. Admins see every API token, anyone else
their own.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from .models import ApiToken, Role, Team, User


def teams_visible_to(user: User) -> QuerySet[Team]:
    role = user.role
    if role == Role.ADMIN:
        return Team.objects.all()
    if role == Role.MANAGER:
        return Team.objects.filter(Q(manager=user) | Q(pk=user.team_id))
    return Team.objects.none()


def managed_people(manager: User) -> QuerySet[User]:
    """The people whose leads a manager answers for: themselves and the members of the
    teams they manage or belong to."""
    people = Q(pk=manager.pk) | Q(team__manager=manager)
    if manager.team_id is not None:
        people |= Q(team_id=manager.team_id)
    return User.objects.filter(people)


def users_visible_to(user: User) -> QuerySet[User]:
    role = user.role
    if role == Role.ADMIN:
        return User.objects.all()
    if role == Role.MANAGER:
        return managed_people(user)
    return User.objects.filter(pk=user.pk)


def tokens_visible_to(user: User) -> QuerySet[ApiToken]:
    if user.role == Role.ADMIN:
        return ApiToken.objects.all()
    return ApiToken.objects.filter(user=user)


def people_with_role(role: Role) -> QuerySet[User]:
    """The active holders of ``role`` (by its group; superusers hold none), to notify."""
    return User.objects.filter(is_active=True, groups__name=role.label).distinct()

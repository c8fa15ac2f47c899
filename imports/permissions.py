"""Who may import, and whose imports a person sees: one answer for every surface (the
command, the admin, the API).

Managers, marketers and admins import; reps and people without a role do not. A
manager's import changes only leads the manager can see (rows naming another team's
lead fail, ``imports.chunks.Context.changeable``). Admins and marketers see every
import; a manager sees their own.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from crm.models import Role, User

from .models import ImportJob

IMPORTING_ROLES = (Role.ADMIN, Role.MARKETER, Role.MANAGER)
REFUSED = "Only managers, marketers and admins may import data."


def may_import(user: User | None) -> bool:
    """Whether ``user`` may import; None (a command run by nobody in particular) may."""
    if user is None:
        return True
    return user.is_authenticated and user.is_active and user.role in IMPORTING_ROLES


def import_permission_check(user: User | None) -> None:
    if not may_import(user):
        raise PermissionDenied(REFUSED)


def jobs_visible_to(user: User) -> QuerySet[ImportJob]:
    if not may_import(user):
        return ImportJob.objects.none()
    if user.role in (Role.ADMIN, Role.MARKETER):
        return ImportJob.objects.all()
    return ImportJob.objects.filter(created_by=user)

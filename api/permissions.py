"""Who may call what: the role groups' model permissions (``crm.roles``), and reads for roles.

Object access is not decided here: every view reaches leads through
``Lead.objects.visible_to(user)``, so a lead outside view answers 404, never 403.
"""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request


class RoleModelPermissions(permissions.DjangoModelPermissions):
    """The model permission the user's role grants for the method (reads need ``view``).

    An ``@action`` that changes a row through POST declares ``permission_action =
    {"transition": "change"}`` on the view so it needs ``change`` rather than ``add``.
    """

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request: Request, view: Any) -> bool:
        method = (request.method or "").lower()
        if request.user.is_authenticated and not hasattr(view, method):
            return True  # the view answers 405: no need to hide that behind a 403
        action = getattr(view, "permission_action", {}).get(getattr(view, "action", None))
        if action is None:
            return super().has_permission(request, view)
        if not request.user or not request.user.is_authenticated:
            return False
        model = self._queryset(view).model
        codename = f"{model._meta.app_label}.{action}_{model._meta.model_name}"
        return request.user.has_perm(codename)


class RoleReadModelWrite(RoleModelPermissions):
    """Reads for anyone who holds a role; writes need the model permission (marketers, admins)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            user = request.user
            return bool(user and user.is_authenticated and user.role is not None)
        return super().has_permission(request, view)

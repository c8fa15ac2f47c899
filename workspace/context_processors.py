"""What every page of the workspace shows around its content."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from imports.permissions import may_import
from leads.handoff_models import Notification


def unread_notifications(request: HttpRequest) -> dict[str, object]:
    """The signed-in user's unread notification count for the bell.

    Lazy, so only pages that show the bell pay for it: one COUNT answered from the
    ``(user, read_at)`` index.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "unread_notifications": SimpleLazyObject(
            lambda: Notification.objects.filter(user=user).unread().count()
        )
    }


def workspace_permissions(request: HttpRequest) -> dict[str, object]:
    """What the navigation offers the person, asked of the same checks as the pages."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"may_import": may_import(user)}


def currency(request: HttpRequest) -> dict[str, object]:
    """The business's currency, which money totals are labelled with."""
    return {"currency": settings.HOTLIST_CURRENCY}

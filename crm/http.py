"""Request types for type checking, and the signed-in user of a request."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from .models import User


class AuthenticatedHttpRequest(HttpRequest):
    """A request past ``login_required`` or the admin's login: its user is signed in.

    Only an annotation: Django hands views a plain ``HttpRequest``, whose ``user`` the
    stubs type as possibly anonymous, and ``django_htmx``'s middleware adds ``htmx``.
    """

    user: User
    htmx: HtmxDetails


def signed_in(request: HttpRequest) -> User:
    """The request's user, for code behind a login (the admin's, DRF's ``IsAuthenticated``)
    whose signature the framework fixes as a plain request. Refuses an anonymous one."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied
    return user

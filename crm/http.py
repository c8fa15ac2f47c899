"""Request types for type checking."""

from __future__ import annotations

from django.http import HttpRequest

from .models import User


class AuthenticatedHttpRequest(HttpRequest):
    """A request past ``login_required`` or the admin's login: its user is signed in.

    Only an annotation: Django hands views a plain ``HttpRequest``, whose ``user`` the
    stubs type as possibly anonymous.
    """

    user: User

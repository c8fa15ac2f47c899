"""What the navigation offers around every page: the studio link, for whom it opens."""

from __future__ import annotations

from django.http import HttpRequest

from scoring.permissions import may_change_models


def studio_permissions(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"may_use_studio": may_change_models(user)}

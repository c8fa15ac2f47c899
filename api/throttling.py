"""The API's request rates (``DEFAULT_THROTTLE_RATES``), counted in the shared cache.

DRF's throttles, except that a cache that cannot be reached lets the request through
(logged) instead of failing it: an outage of Redis must not turn every call into a 500.
"""

from __future__ import annotations

from typing import Any

from rest_framework import throttling

from crm.resilience import cache_call


class FailOpenThrottleMixin:
    def allow_request(self, request: Any, view: Any) -> bool:
        allow = super().allow_request  # type: ignore[misc]
        return cache_call(lambda: allow(request, view), default=True, what="API rate limit")


class AnonRateThrottle(FailOpenThrottleMixin, throttling.AnonRateThrottle):
    """Requests without credentials, per client address."""


class UserRateThrottle(FailOpenThrottleMixin, throttling.UserRateThrottle):
    """Requests of a signed-in user or token, per user."""

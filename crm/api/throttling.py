"""The API's request rates (``DEFAULT_THROTTLE_RATES``), counted in the shared cache.

DRF's throttles, except that a cache that cannot be reached lets the request through
(logged) instead of failing it: an outage of Redis must not turn every call into a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from rest_framework import throttling

from crm.resilience import CACHE_ERRORS

log = logging.getLogger(__name__)


class FailOpenThrottleMixin:
    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)  # type: ignore[misc]
        except CACHE_ERRORS as exc:
            log.warning("API rate not checked: the cache is unreachable (%s)", exc)
            return True


class AnonRateThrottle(FailOpenThrottleMixin, throttling.AnonRateThrottle):
    """Requests without credentials, per client address."""


class UserRateThrottle(FailOpenThrottleMixin, throttling.UserRateThrottle):
    """Requests of a signed-in user or token, per user."""

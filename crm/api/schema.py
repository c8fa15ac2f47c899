"""OpenAPI: every operation documents the errors the API can answer, in the one error shape."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse

from .errors import ErrorSerializer

WRITE_METHODS = ("POST", "PUT", "PATCH")


class ApiAutoSchema(AutoSchema):
    """Adds the error answers (400 to 429) that apply, unless a view declared its own."""

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code, description in self._error_codes():
            if code not in responses:
                error = OpenApiResponse(ErrorSerializer, description=description)
                responses[code] = self._get_response_for_code(error, code, direction=direction)
        return responses

    def _error_codes(self) -> list[tuple[str, str]]:
        codes = []
        if self.method in WRITE_METHODS or self._is_list_view():
            codes.append(("400", "Invalid fields, filters or cursor; `fields` names each."))
        codes.append(("401", "No credentials, or an unknown or revoked API key."))
        codes.append(("403", "The caller's role does not allow this."))
        if "{" in self.path:
            codes.append(("404", "No such object among those the caller can see."))
        if self._honours_idempotency_key():
            codes.append(("409", "The Idempotency-Key was used for another request, or is in use."))
        if self.method in WRITE_METHODS:
            codes.append(("415", "The body is not JSON."))
        codes.append(("429", "Too many requests; retry after `Retry-After` seconds."))
        return codes

    def _honours_idempotency_key(self) -> bool:
        action = getattr(self.view, "action", None)
        return bool(action) and getattr(getattr(self.view, action, None), "idempotent", False)

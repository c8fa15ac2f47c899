"""OpenAPI: every operation documents the errors the API can answer, in the one error shape."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import Direction, OpenApiResponse
from rest_framework import serializers

from .errors import ErrorSerializer
from .strict import StrictFieldsMixin

WRITE_METHODS = ("POST", "PUT", "PATCH")


class ApiAutoSchema(AutoSchema):
    """Adds the error answers (400 to 429) that apply, unless a view declared its own."""

    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code, description in self._error_codes():
            if code not in responses:
                error = OpenApiResponse(ErrorSerializer, description=description)
                responses[code] = self._get_response_for_code(error, code, direction=direction)
        return responses

    def _map_serializer_field(
        self, field: Any, direction: str, bypass_extensions: bool = False
    ) -> dict[str, Any]:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, serializers.JSONField) and not schema.get("type"):
            # Free-form JSON on the models (activity properties, custom fields) is an
            # object, which the serializers check.
            schema = {**schema, "type": "object", "additionalProperties": {}}
        if isinstance(field, serializers.ListSerializer) and not field.allow_empty:
            schema = {**schema, "minItems": 1}
        if _needs_text(field, schema, direction):
            # DRF strips the text first, so blank-only text is empty text; Python's
            # whitespace also holds the separators \x1c-\x1f and \x85.
            schema = {**schema, "pattern": r"[^\s\x1c-\x1f\x85]"}
        if isinstance(field, serializers.DecimalField) and direction == "request":
            schema = _decimal_request(field, schema)
        return schema

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and isinstance(serializer, StrictFieldsMixin):
            # Unknown fields answer 400 (api.strict).
            schema["additionalProperties"] = False
        return schema

    def _get_filter_parameters(self) -> list[dict[str, Any]]:
        return _empty_means_absent(super()._get_filter_parameters())

    def _get_pagination_parameters(self) -> list[dict[str, Any]]:
        return _empty_means_absent(super()._get_pagination_parameters())

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
        if not action:
            return False
        return getattr(getattr(self.view, action, None), "idempotent", False)


def _empty_means_absent(parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A list's filters, search, ordering and paging parameters sent empty (``?stage=``,
    as an HTML form sends an unset field) count as not sent; the schema says so."""
    return [{**parameter, "allowEmptyValue": True} for parameter in parameters]


def _decimal_request(field: serializers.DecimalField, schema: dict[str, Any]) -> dict[str, Any]:
    """An amount is answered as text ("12.50") and taken as text or as a JSON number,
    with at most the field's digits before and after the point ("" for none when null).
    A field without both bounds keeps drf-spectacular's schema (the models' have both)."""
    if field.max_digits is None or field.decimal_places is None:
        return schema
    whole, places = field.max_digits - field.decimal_places, field.decimal_places
    sign = "" if field.min_value is not None and field.min_value >= 0 else "-?"
    digits = rf"(?:\d{{1,{whole}}}(?:\.\d{{0,{places}}})?|\.\d{{1,{places}}})"
    text = {"type": "string", "pattern": f"^{sign}{digits}$" + ("|^$" if field.allow_null else "")}
    limit = 10**whole - 10**-places
    number = {
        "type": "number",
        "minimum": float(field.min_value) if field.min_value is not None else -limit,
        "maximum": float(field.max_value) if field.max_value is not None else limit,
        "multipleOf": 10**-places,
    }
    result: dict[str, Any] = {"anyOf": [text, number]}
    for key in ("description", "nullable"):
        if key in schema:
            result[key] = schema[key]
    return result


def _needs_text(field: Any, schema: dict[str, Any], direction: str) -> bool:
    """A text field that refuses blank text, with no pattern of its own."""
    return (
        direction == "request"
        and isinstance(field, serializers.CharField)
        and not field.allow_blank
        and field.trim_whitespace
        and schema.get("type") == "string"
        and not {"pattern", "enum", "format"} & set(schema)
        and not any(isinstance(v, RegexValidator) for v in field.validators)
    )

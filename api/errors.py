"""One error shape for the whole API.

Every error answers ``{"error": {"status", "code", "message", "fields"}}``; ``fields``
maps each invalid field (nested ones as dotted paths such as ``activities.3.type``) to
its messages and is empty for errors that concern no field.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.fields import get_error_detail
from rest_framework.response import Response
from rest_framework.views import exception_handler

from crm.resilience import RETRY_AFTER_SECONDS, STORAGE_ERRORS, UNAVAILABLE_MESSAGE

log = logging.getLogger(__name__)

NON_FIELD = "non_field_errors"
# Paths whose callers are programs: their server errors answer JSON, never an HTML page.
API_PATHS = ("/api/", "/f/")
TRACKING_PATHS = ("/v1/",)
SERVER_ERROR_MESSAGE = "Something went wrong on the server. Try again later."


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class Gone(exceptions.APIException):
    status_code = status.HTTP_410_GONE
    default_detail = "The resource is gone."
    default_code = "gone"


class ServiceUnavailable(exceptions.APIException):
    """The database cannot take the request now; answered with ``Retry-After``."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = UNAVAILABLE_MESSAGE
    default_code = "unavailable"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request is too large."
    default_code = "too_large"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, with Django's own exceptions mapped and every body in one shape."""
    exc = _as_api_exception(exc)
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    response.data = {"error": error_body(exc, response.status_code)}
    if isinstance(exc, ServiceUnavailable):
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _as_api_exception(exc: Exception) -> Exception:
    if isinstance(exc, Http404):
        return exceptions.NotFound("Not found.")
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(get_error_detail(exc))
    if isinstance(exc, STORAGE_ERRORS):
        log.error("API request not served: the database is unavailable", exc_info=exc)
        return ServiceUnavailable()
    return exc


def error_body(exc: exceptions.APIException, status_code: int) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten_errors(exc.detail)
        others = fields.get(NON_FIELD)
        message = others[0] if others else "Some fields are not valid."
        code = "invalid"
    else:
        fields = {}
        message = str(exc.detail)
        code = getattr(exc.detail, "code", None) or exc.default_code
    return {"status": status_code, "code": code, "message": message, "fields": fields}


def flatten_errors(detail: Any, path: str = "") -> dict[str, list[str]]:
    """Nested serializer errors as ``{"a.0.b": ["message"]}``; top-level lists are non-field."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            # A nested serializer's own errors belong to the field that holds it.
            if key == NON_FIELD and path:
                flat.update(flatten_errors(value, path))
            else:
                flat.update(flatten_errors(value, f"{path}.{key}" if path else str(key)))
        return flat
    if isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        flat = {}
        for index, item in enumerate(detail):
            if item:
                flat.update(flatten_errors(item, f"{path}.{index}" if path else str(index)))
        return flat
    messages = [str(item) for item in detail] if isinstance(detail, list) else [str(detail)]
    return {path or NON_FIELD: messages}


class ErrorDetailSerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="The HTTP status, repeated.")
    code = serializers.CharField(help_text="A stable, machine-readable code, e.g. invalid.")
    message = serializers.CharField(help_text="What went wrong, for people.")
    # DRF's metaclass takes declared fields off the class: Serializer.fields stays whole.
    fields = serializers.DictField(  # type: ignore[assignment]  # see above
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per invalid field; nested fields as dotted paths (items.3.type).",
    )


class ErrorSerializer(serializers.Serializer):
    """The body of every error response."""

    error = ErrorDetailSerializer()


@csrf_exempt
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any path under the API that names nothing: a 404 in the API's own shape."""
    exc = exceptions.NotFound("There is nothing at this address.")
    return JsonResponse({"error": error_body(exc, 404)}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: a server error in the shape its caller reads.

    The API and the form endpoint answer the one error shape, the tracking endpoint
    Segment's (``{"success": false, "code", "message"}``), and any other page JSON when
    the caller asks for JSON rather than HTML; people in a browser get the HTML page.
    """
    path = request.path_info
    if path.startswith(TRACKING_PATHS):
        body = {"success": False, "code": "server_error", "message": SERVER_ERROR_MESSAGE}
        response = JsonResponse(body, status=500)
        response["Access-Control-Allow-Origin"] = "*"
        return response
    if path.startswith(API_PATHS) or _prefers_json(request):
        exc = exceptions.APIException(SERVER_ERROR_MESSAGE, code="server_error")
        return JsonResponse({"error": error_body(exc, 500)}, status=500)
    return defaults.server_error(request)


def _prefers_json(request: HttpRequest) -> bool:
    return request.accepts("application/json") and not request.accepts("text/html")

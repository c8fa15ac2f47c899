"""``Idempotency-Key``: a create sent twice with the same key creates once.

The first successful answer for a (user, key) is stored and replayed, with the header
``Idempotent-Replayed: true``, to a repeat with the same method, path and body. The
same key with another body or path answers 409 ``idempotency_key_reused``. Errors are
not stored: a request that failed may be sent again, corrected, with the same key.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from crm.models import IdempotentRequest

from .errors import Conflict
from .fields import caller

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_MAX_LENGTH = 255

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name=HEADER,
    # Printable ASCII; HTTP drops spaces around a header value, so none at either end.
    type={
        "type": "string",
        "minLength": 1,
        "maxLength": KEY_MAX_LENGTH,
        "pattern": r"^[!-~]([ -~]*[!-~])?$",
    },
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "A unique key (up to 255 printable ASCII characters, e.g. a UUID) that makes the "
        "request safe to retry for 24 hours: a repeat with the same body answers the first "
        f"answer again, with `{REPLAYED_HEADER}: true`; the same key with another body "
        "answers 409 `idempotency_key_reused`."
    ),
)

Handler = Callable[..., Response]


class KeyReused(Conflict):
    default_detail = "This Idempotency-Key was used for another request."
    default_code = "idempotency_key_reused"


class KeyInUse(Conflict):
    default_detail = "A request with this Idempotency-Key is still being processed."
    default_code = "idempotency_key_in_use"


def idempotent(handler: Handler) -> Handler:
    """Make a view method that creates honour the ``Idempotency-Key`` header."""

    @extend_schema(parameters=[IDEMPOTENCY_KEY_PARAMETER])
    @functools.wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = _key(request)
        if key is None:
            return handler(view, request, *args, **kwargs)
        with transaction.atomic():
            claim = _claim(request, key)
            if claim.status_code is not None:
                return _replay(claim)
            response = handler(view, request, *args, **kwargs)
            if status.is_success(response.status_code):
                _store(claim, response)
            else:
                transaction.set_rollback(True)
        return response

    wrapper.idempotent = True  # type: ignore[attr-defined]
    return wrapper


class IdempotentCreateMixin:
    """``create`` of a viewset, made idempotent with the ``Idempotency-Key`` header."""

    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)  # type: ignore[misc]


def _key(request: Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key or len(key) > KEY_MAX_LENGTH or not key.isascii() or not key.isprintable():
        message = f"Give at most {KEY_MAX_LENGTH} printable ASCII characters."
        raise serializers.ValidationError({HEADER: [message]})
    return key


def _claim(request: Request, key: str) -> IdempotentRequest:
    """The stored request for the key, or a new pending one; call inside ``atomic()``.

    A concurrent request holding the key blocks the insert until it commits (or rolls
    back), so the row read after the conflict carries its answer.
    """
    line = f"{request.method} {request.path}"[:300]
    body_hash = _body_hash(request)
    try:
        with transaction.atomic():
            return IdempotentRequest.objects.create(
                user=caller(request), key=key, request_line=line, body_hash=body_hash
            )
    except IntegrityError:
        stored = IdempotentRequest.objects.filter(user=caller(request), key=key).first()
    if stored is None or stored.status_code is None:
        raise KeyInUse()
    if (stored.request_line, stored.body_hash) != (line, body_hash):
        raise KeyReused()
    return stored


def _body_hash(request: Request) -> str:
    """The body's hash, independent of key order and spacing; a body DRF cannot parse
    raises its ``ParseError`` here, before anything is stored."""
    canonical = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _store(claim: IdempotentRequest, response: Response) -> None:
    claim.status_code = response.status_code
    claim.response_body = json.loads(JSONRenderer().render(response.data) or b"null")
    claim.save(update_fields=["status_code", "response_body"])


def _replay(stored: IdempotentRequest) -> Response:
    return Response(
        stored.response_body, status=stored.status_code, headers={REPLAYED_HEADER: "true"}
    )

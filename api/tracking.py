"""``POST /v1/<call>``: the Segment HTTP Tracking API, so Segment and RudderStack client
libraries send to Hotlist by changing only their host.

No login and no CSRF token: a write key only submits events and reads nothing back. It
comes as the user name of HTTP Basic auth (empty password) or as ``writeKey`` in the body.
Answers follow Segment: ``200 {"success": true}``; errors ``{"success": false, "code",
"message"}`` (the official clients read ``code`` and ``message``). A single call that
cannot be stored answers 400. A batch is stored but for its messages that cannot be,
which its 200 answer lists under ``rejected`` with their reasons: the official clients
drop or retry a whole batch answered with an error, valid messages included. Any origin
may call it (CORS ``*``): browsers send with a public write key, and answers reveal
nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import zlib
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from api.strict import NOT_FINITE, unstorable_text
from crm.rate_limits import body_exceeds, rate_limit_hit
from crm.resilience import RETRY_AFTER_SECONDS, STORAGE_ERRORS, UNAVAILABLE_MESSAGE
from leads.models import TrackingKey
from leads.tracking_ingest import tracking_messages_ingest
from leads.tracking_messages import InvalidMessage, TrackingMessage, tracking_message_parse

logger = logging.getLogger(__name__)

BATCH_CALLS = ("batch", "import")
CORS_ALLOWED_HEADERS = "Authorization, Content-Type, Content-Encoding, X-Retry-Count"
PREFLIGHT_MAX_AGE = 86_400
# Batch-level fields that every message of the batch takes unless it has its own.
BATCH_DEFAULTS = ("context", "integrations", "sentAt")
# Strict JSON in UTF-8 can hold a NUL or a lone surrogate only as an escape such as
# \u0000 or \ud800: a body with neither (and no zero byte, which UTF-16 and UTF-32,
# also accepted, are full of) needs no walk through every value.
MAYBE_UNSTORABLE = re.compile(rb"\x00|\\u(?:0000|[dD][89a-fA-F])")


class Rejected(Exception):
    """A request answered with an error; nothing was stored."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


@csrf_exempt
def tracking_call(request: HttpRequest, call: str) -> HttpResponse:
    received_at = timezone.now()
    try:
        if request.method == "OPTIONS":
            response: HttpResponse = HttpResponse(status=204)
            response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response["Access-Control-Allow-Headers"] = CORS_ALLOWED_HEADERS
            response["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        elif request.method != "POST":
            raise Rejected(405, "method_not_allowed", "Send calls with POST.", {"Allow": "POST"})
        else:
            response = _accept_or_unavailable(request, call, received_at)
    except Rejected as rejection:
        body = {"success": False, "code": rejection.code, "message": rejection.message}
        response = JsonResponse(body, status=rejection.status)
        for name, value in rejection.headers.items():
            response[name] = value
    # Browsers (analytics.js) call from any site; the answers reveal nothing.
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _accept_or_unavailable(request: HttpRequest, call: str, received_at: Any) -> JsonResponse:
    try:
        return _accept(request, call, received_at)
    except STORAGE_ERRORS:
        logger.exception("Tracking call not stored: the database is unavailable")
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        raise Rejected(503, "unavailable", UNAVAILABLE_MESSAGE, retry) from None


def _accept(request: HttpRequest, call: str, received_at: Any) -> JsonResponse:
    batch = call in BATCH_CALLS
    header_key = _basic_auth_user(request)
    key = _authenticated(header_key) if header_key is not None else None
    limit = settings.TRACKING_MAX_BATCH_BYTES if batch else settings.TRACKING_MAX_MESSAGE_BYTES
    payload = _json_object(_body(request, limit))
    if key is None:
        write_key = payload.get("writeKey")
        key = _authenticated(write_key if isinstance(write_key, str) else "")
    _check_rate_limit(key)
    rejected: list[dict[str, Any]] = []
    if batch:
        positions, messages, rejected = _batch_messages(payload, received_at)
    else:
        positions, messages = [0], [_parsed(payload, received_at, call_type=call)]
    duplicates = [positions[i] for i in tracking_messages_ingest(messages=messages)]
    key.touch()
    for rejection in rejected:
        logger.warning("Tracking key %s: %s", key.pk, rejection["message"])
    # Segment answers {"success": true}; a repeat also says it was one, and a batch
    # names the messages it could not store, which clients that only read "success"
    # ignore.
    answer: dict[str, Any] = {"success": True}
    if batch and duplicates:
        answer["duplicates"] = duplicates
    elif duplicates:
        answer["duplicate"] = True
    if rejected:
        answer["rejected"] = rejected
    return JsonResponse(answer)


def _basic_auth_user(request: HttpRequest) -> str | None:
    """The user name of an HTTP Basic ``Authorization`` header; None without one."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[0]


def _authenticated(secret: str) -> TrackingKey:
    key = TrackingKey.objects.for_key(secret)
    if key is None:
        raise Rejected(401, "unauthorized", "Send a valid, active write key.")
    return key


def _check_rate_limit(key: TrackingKey) -> None:
    wait = rate_limit_hit(
        f"tracking:{key.pk}",
        limit=settings.TRACKING_RATE_PER_KEY,
        window_seconds=settings.TRACKING_RATE_WINDOW_SECONDS,
    )
    if wait is not None:
        raise Rejected(
            429,
            "throttled",
            f"Too many calls for this write key. Try again in {wait} seconds.",
            {"Retry-After": str(wait)},
        )


def _body(request: HttpRequest, limit: int) -> bytes:
    """The body, gunzipped when sent so; at most ``limit`` bytes once decompressed."""
    too_large = Rejected(400, "too_large", f"The body is larger than {limit // 1024} KB.")
    if body_exceeds(request, limit):
        raise too_large
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return request.body
    if encoding != "gzip":
        raise Rejected(400, "invalid_request", f"The content encoding “{encoding}” is not gzip.")
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = decompressor.decompress(request.body, limit + 1)
    except zlib.error:
        raise Rejected(400, "invalid_request", "The body is not valid gzip.") from None
    if len(body) > limit:
        raise too_large
    if not decompressor.eof:
        raise Rejected(400, "invalid_request", "The gzip body is cut short.")
    return body


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Rejected(400, "invalid_request", "The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise Rejected(400, "invalid_request", "The body is not a JSON object.")
    # The messages are checked one by one; this is the rest (the write key, a batch's
    # defaults), which no message can be stored without.
    envelope = {name: value for name, value in payload.items() if name != "batch"}
    problem = unstorable_text(envelope) if MAYBE_UNSTORABLE.search(body) else None
    if problem:
        raise Rejected(400, "invalid_request", problem)
    return payload


def _batch_messages(
    payload: dict[str, Any], received_at: Any
) -> tuple[list[int], list[TrackingMessage], list[dict[str, Any]]]:
    """The batch's messages that can be stored with their positions in it, and the
    rejections of the others (``index``, ``code``, ``message``)."""
    items = payload.get("batch")
    if not isinstance(items, list):
        raise Rejected(400, "invalid_request", "The body has no batch list.")
    defaults = {name: payload[name] for name in BATCH_DEFAULTS if name in payload}
    positions, messages, rejected = [], [], []
    for index, item in enumerate(items):
        try:
            message = _parsed(
                {**defaults, **item} if isinstance(item, dict) else item,
                received_at,
                index=index,
            )
        except Rejected as rejection:
            rejected.append({"index": index, "code": rejection.code, "message": rejection.message})
            continue
        positions.append(index)
        messages.append(message)
    return positions, messages, rejected


def _parsed(
    raw: Any, received_at: Any, *, call_type: str | None = None, index: int | None = None
) -> TrackingMessage:
    """One message checked and parsed; ``Rejected`` says why it cannot be stored."""
    label = "The message" if index is None else f"Message {index} of the batch"
    if isinstance(raw, dict):
        _check_storable(raw, label)
    try:
        return tracking_message_parse(raw, received_at=received_at, call_type=call_type)
    except InvalidMessage as exc:
        raise Rejected(400, "invalid_request", f"{label} {exc}.") from None


def _check_storable(item: dict[str, Any], label: str) -> None:
    """Refuse a message over the size limit or holding what PostgreSQL cannot store:
    NUL, a lone surrogate, a number that is not finite (see ``api.strict``)."""
    try:
        text = json.dumps(item, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise Rejected(400, "invalid_request", f"{label}: {NOT_FINITE}") from None
    except RecursionError:
        raise Rejected(400, "invalid_request", f"{label} is nested too deeply.") from None
    try:
        size: int | None = len(text.encode())
    except UnicodeEncodeError:  # a lone surrogate
        size = None
    # The text shows a NUL as \u0000; a literal backslash-u0000 looks the same, hence
    # the walk to tell.
    if size is None or "\\u0000" in text:
        problem = unstorable_text(item)
        if problem:
            raise Rejected(400, "invalid_request", f"{label}: {problem}")
    limit = settings.TRACKING_MAX_MESSAGE_BYTES
    if size is not None and size > limit:
        raise Rejected(400, "too_large", f"{label} is larger than {limit // 1024} KB.")

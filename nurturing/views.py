"""Public endpoints of nurture emails: open pixel, click redirect, unsubscribe, bounces.

None needs a login: the signed token in the URL names the message and proves it was
sent by Hotlist; a token altered, forged or made for another purpose answers 404. The
bounce webhook is keyed by ``NURTURE_BOUNCE_SECRET`` in the ``X-Hotlist-Secret``
header instead.
"""

from __future__ import annotations

import base64
import hmac
import json
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from leads.models import EmailStatus

from .models import Message
from .personalize import CLICK_SALT, OPEN_SALT, UNSUBSCRIBE_SALT, read_token
from .tracking import (
    BOUNCE_KINDS,
    MailEvent,
    mail_event_record,
    message_click,
    message_open,
    message_unsubscribe,
)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
SECRET_HEADER = "X-Hotlist-Secret"
MAX_EVENTS = 500


def _message_id(token: str, salt: str) -> dict[str, int]:
    payload = read_token(token, salt)
    if payload is None or not isinstance(payload.get("m"), int):
        raise Http404("Unknown link.")
    return payload


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store, private"
    response["Referrer-Policy"] = "no-referrer"
    return response


@require_GET
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    payload = _message_id(token, OPEN_SALT)
    message_open(message_id=payload["m"], user_agent=request.headers.get("User-Agent", ""))
    return _no_store(HttpResponse(PIXEL, content_type="image/gif"))


@require_GET
def click(request: HttpRequest, token: str) -> HttpResponse:
    payload = _message_id(token, CLICK_SALT)
    index = payload.get("i")
    if not isinstance(index, int):
        raise Http404("Unknown link.")
    url = message_click(
        message_id=payload["m"],
        index=index,
        from_template=payload.get("t") == 1,
        user_agent=request.headers.get("User-Agent", ""),
    )
    if url is None or not url.lower().startswith(("http://", "https://")):
        raise Http404("Unknown link.")
    return _no_store(HttpResponseRedirect(url))


@csrf_exempt  # RFC 8058: mail clients POST without a page, a cookie or a CSRF token
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks to confirm (link scanners follow links; they must not unsubscribe
    anyone); POST, from the page or a mail client's one-click button, unsubscribes."""
    payload = _message_id(token, UNSUBSCRIBE_SALT)
    message = Message.objects.select_related("lead").filter(pk=payload["m"]).first()
    if message is None:
        raise Http404("Unknown link.")
    if request.method == "POST":
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        message_unsubscribe(message_id=message.pk, how="one-click" if one_click else "link")
        return _no_store(
            render(request, "nurturing/unsubscribed.html", {"email": message.lead.email})
        )
    context = {
        "email": message.lead.email,
        "already": message.lead.email_status != EmailStatus.VALID,
    }
    return _no_store(render(request, "nurturing/unsubscribe.html", context))


def _error(status: int, message: str, fields: dict[str, str] | None = None) -> JsonResponse:
    return JsonResponse({"error": {"message": message, "fields": fields or {}}}, status=status)


def _event(data: Any) -> MailEvent:
    """A webhook event from its JSON; ``ValueError`` with ``{field: message}`` when bad."""
    if not isinstance(data, dict):
        raise ValueError({"": "Each event is an object."})
    errors = {}
    kind = data.get("type")
    if kind not in BOUNCE_KINDS:
        errors["type"] = f"One of: {', '.join(BOUNCE_KINDS)}."
    email = data.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 254:
        errors["email"] = "An email address."
    permanent = data.get("permanent", True)
    if not isinstance(permanent, bool):
        errors["permanent"] = "true or false."
    message_id, detail = data.get("message_id", ""), data.get("detail", "")
    if not isinstance(message_id, str) or len(message_id) > 250:
        errors["message_id"] = "The Message-ID header of the email, as text."
    if not isinstance(detail, str):
        errors["detail"] = "Text."
    if errors:
        raise ValueError(errors)
    # Checked above: a kind of BOUNCE_KINDS and an email address.
    assert isinstance(kind, str)
    assert isinstance(email, str)
    return MailEvent(kind, email, message_id, permanent, detail[:1000])


@csrf_exempt
@require_POST
def bounce_webhook(request: HttpRequest) -> HttpResponse:
    """``POST /n/bounce/``: one event or a list, ``{"type": "bounce" | "complaint" |
    "reply", "email", "message_id"?, "permanent"?, "detail"?}``. Nothing is stored
    unless every event is valid."""
    secret = settings.NURTURE_BOUNCE_SECRET
    if not secret:
        return _error(404, "The bounce webhook is off: set NURTURE_BOUNCE_SECRET.")
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        return _error(403, f"Wrong or missing {SECRET_HEADER} header.")
    try:
        data = json.loads(request.body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "The body is not JSON.")
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > MAX_EVENTS:
        return _error(400, f"Send from 1 to {MAX_EVENTS} events.")
    events = []
    for position, item in enumerate(items):
        try:
            events.append(_event(item))
        except ValueError as exc:
            prefix = f"{position}." if isinstance(data, list) else ""
            fields = {f"{prefix}{name}".rstrip("."): text for name, text in exc.args[0].items()}
            return _error(400, "Invalid event.", fields)
    with transaction.atomic():
        matched = sum(mail_event_record(event=event) is not None for event in events)
    return JsonResponse({"processed": len(events), "matched_messages": matched})

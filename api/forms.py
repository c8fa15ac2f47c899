"""``POST /f/<key>/``: the public endpoint that forms on other websites post to.

No login and no CSRF token: the endpoint is called from pages on other sites. That is
safe because the form's key only submits. It reads nothing back but the new lead's id,
changes no lead beyond what a form post may fill, and a leaked key is stopped by
regenerating it in the admin. Abuse is held off by a honeypot field, a body size limit
and rate limits per address and per form.

A plain HTML form post answers ``303 See Other`` to the form's thank-you URL; a JSON post
(or one that sends ``Accept: application/json``) answers JSON, errors in the API's one
shape. CORS headers go only to the form's allowed origins.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt

from api.strict import unstorable_text
from crm.rate_limits import body_exceeds, rate_limit_hit
from crm.resilience import RETRY_AFTER_SECONDS, STORAGE_ERRORS, UNAVAILABLE_MESSAGE
from leads.form_submissions import PostedFields, lead_submit_form, posted_value
from leads.models import WebForm

logger = logging.getLogger(__name__)

JSON = "application/json"
FORM_CONTENT_TYPES = {JSON, "application/x-www-form-urlencoded", "multipart/form-data"}
PREFLIGHT_MAX_AGE = 86_400


class Rejected(Exception):
    """A post answered with an error; nothing was stored."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = fields or {}
        self.headers = headers or {}


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


@csrf_exempt
def form_submit(request: HttpRequest, key: str) -> HttpResponse:
    try:
        return _form_submit(request, key)
    except STORAGE_ERRORS:
        logger.exception("Form post not stored: the database is unavailable")
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        unavailable = Rejected(503, "unavailable", UNAVAILABLE_MESSAGE, headers=retry)
        return _rejection_response(request, unavailable)


def _form_submit(request: HttpRequest, key: str) -> HttpResponse:
    # PostgreSQL refuses NUL in a query's text; no key holds one.
    form = None if "\x00" in key else WebForm.objects.filter(key=key, is_active=True).first()
    try:
        if form is None:
            raise Rejected(404, "not_found", "There is no such form, or it was switched off.")
        if request.method == "OPTIONS":
            response = _preflight(request, form)
        elif request.method == "POST":
            response = _submit(request, form)
        else:
            raise Rejected(405, "method_not_allowed", "Post the form.", headers={"Allow": "POST"})
    except Rejected as rejection:
        response = _rejection_response(request, rejection)
    if form is not None:
        _add_cors_headers(request, response, form)
    return response


def _submit(request: HttpRequest, form: WebForm) -> HttpResponse:
    _check_rate_limits(request, form)
    data = _posted_fields(request)
    if form.honeypot_filled(data):
        logger.warning("Form %s: honeypot filled by %s; dropped", form.pk, _client_ip(request))
        return _accepted(request, form)
    page_url = posted_value(data, "page_url") or request.headers.get("Referer", "")
    try:
        submission = lead_submit_form(form=form, data=data, page_url=page_url)
    except ValidationError as exc:
        raise Rejected(400, "invalid", "Some fields are not valid.", exc.message_dict) from None
    logger.info(
        "Form %s: lead %s %s",
        form.pk,
        submission.lead.pk,
        "created" if submission.created else "updated",
    )
    return _accepted(request, form)


def _accepted(request: HttpRequest, form: WebForm) -> HttpResponse:
    """The same answer whether the post made a lead, updated one or was dropped as spam:
    a form's key is public, and must not tell anyone which emails are already leads."""
    if _wants_json(request):
        return JsonResponse({"accepted": True}, status=202)
    if form.redirect_url:
        return HttpResponseSeeOther(form.redirect_url)
    context = {"title": "Thank you", "message": "We received your details."}
    return render(request, "leads/form_response.html", context)


def _check_rate_limits(request: HttpRequest, form: WebForm) -> None:
    window = settings.FORM_RATE_WINDOW_SECONDS
    limits = [
        (f"form:{form.pk}:ip:{_client_ip(request)}", settings.FORM_RATE_PER_IP),
        (f"form:{form.pk}", settings.FORM_RATE_PER_FORM),
    ]
    for key, limit in limits:
        wait = rate_limit_hit(key, limit=limit, window_seconds=window)
        if wait is not None:
            raise Rejected(
                429,
                "throttled",
                f"Too many submissions. Try again in {wait} seconds.",
                headers={"Retry-After": str(wait)},
            )


def _posted_fields(request: HttpRequest) -> PostedFields:
    """The posted fields as text (lists for repeated fields); uploaded files are ignored."""
    if request.content_type not in FORM_CONTENT_TYPES:
        raise Rejected(
            415,
            "unsupported_media_type",
            "Post the form as application/x-www-form-urlencoded, multipart/form-data or JSON.",
        )
    limit = settings.FORM_MAX_BODY_BYTES
    too_large = Rejected(413, "too_large", f"The submission is larger than {limit // 1024} KB.")
    if body_exceeds(request, limit):
        raise too_large
    if request.content_type == JSON:
        fields = _json_fields(request.body)
    else:
        try:
            fields = {name: v[0] if len(v) == 1 else v for name, v in request.POST.lists()}
        except (MultiPartParserError, SuspiciousOperation):
            raise Rejected(400, "parse_error", "The form data cannot be read.") from None
    _check_storable(fields)
    return fields


def _check_storable(fields: PostedFields) -> None:
    """NUL characters and lone surrogates as a field error: they cannot be stored."""
    errors = {}
    for name, value in fields.items():
        problem = unstorable_text([name, value])
        if problem:
            # The name itself may hold what cannot be encoded in the answer.
            errors[name.encode("utf-8", "backslashreplace").decode()] = [problem]
    if errors:
        raise Rejected(400, "invalid", "Some fields are not valid.", errors)


def _json_fields(body: bytes) -> dict[str, str | list[str]]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Rejected(400, "parse_error", "The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise Rejected(400, "parse_error", 'Post an object of fields: {"email": "…"}.')
    fields: dict[str, str | list[str]] = {}
    errors: dict[str, list[str]] = {}
    for name, value in payload.items():
        if isinstance(value, list) and all(_is_scalar(item) for item in value):
            fields[name] = [_as_text(item) for item in value]
        elif _is_scalar(value):
            fields[name] = _as_text(value)
        else:
            errors[name] = ["Give text, a number, or a list of them."]
    if errors:
        raise Rejected(400, "invalid", "Some fields are not valid.", errors)
    return fields


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _wants_json(request: HttpRequest) -> bool:
    return request.content_type == JSON or JSON in request.headers.get("Accept", "")


def _client_ip(request: HttpRequest) -> str:
    """The caller's address; behind ``TRUSTED_PROXY_COUNT`` proxies, the one they saw."""
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",")]
    forwarded = [address for address in forwarded if address]
    if hops and len(forwarded) >= hops:
        return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "")


def _rejection_response(request: HttpRequest, rejection: Rejected) -> HttpResponse:
    if _wants_json(request) or request.method == "OPTIONS":
        body = {
            "status": rejection.status,
            "code": rejection.code,
            "message": rejection.message,
            "fields": rejection.fields,
        }
        response: HttpResponse = JsonResponse({"error": body}, status=rejection.status)
    else:
        context = {
            "title": "Not sent",
            "message": rejection.message,
            "fields": sorted(rejection.fields.items()),
        }
        response = render(request, "leads/form_response.html", context, status=rejection.status)
    for name, value in rejection.headers.items():
        response[name] = value
    return response


def _preflight(request: HttpRequest, form: WebForm) -> HttpResponse:
    response = HttpResponse(status=204)
    if form.allows_origin(request.headers.get("Origin", "")):
        response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = "Content-Type, Accept"
        response["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    return response


def _add_cors_headers(request: HttpRequest, response: HttpResponse, form: WebForm) -> None:
    patch_vary_headers(response, ["Origin"])
    origin = request.headers.get("Origin", "")
    if form.allows_origin(origin):
        response["Access-Control-Allow-Origin"] = origin

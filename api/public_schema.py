"""OpenAPI for the two public endpoints that are plain Django views, not DRF ones: the
Segment-compatible tracking calls (``/v1/<call>``) and the form endpoint (``/f/<key>/``).

drf-spectacular only describes DRF views, so a postprocessing hook adds these paths to
the generated schema. The descriptions follow docs/API.md; the behaviour lives in
``api.tracking`` and ``api.forms``.
"""

from __future__ import annotations

from typing import Any

from api.tracking_urls import CALLS

# An id that may be left out: null or blank text counts as none.
TEXT_OR_NUMBER = {
    "oneOf": [{"type": "string", "maxLength": 200, "nullable": True}, {"type": "integer"}]
}
# An id a call needs: blank text counts as none.
NEEDED_ID = {"oneOf": [{"type": "string", "maxLength": 200, "pattern": r"\S"}, {"type": "integer"}]}
# A time; empty or null counts as not sent.
TIME = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "enum": [""]}],
    "nullable": True,
    "description": "ISO 8601; without a UTC offset, UTC.",
}
OBJECT = {"type": "object", "additionalProperties": True}
# traits, properties and context: an object, or null for none.
NULLABLE_OBJECT = {**OBJECT, "nullable": True}
# A form field posted as JSON: text, a number, true or false, or null (empty).
SCALAR = {"anyOf": [{"type": "string", "nullable": True}, {"type": "number"}, {"type": "boolean"}]}

# Fields every call may carry (Segment's common fields).
COMMON_FIELDS: dict[str, Any] = {
    "userId": {**TEXT_OR_NUMBER, "description": "Your id of the person."},
    "anonymousId": {**TEXT_OR_NUMBER, "description": "A browser's or device's id."},
    "messageId": {
        **TEXT_OR_NUMBER,
        "description": "The call's unique id: a call with a stored messageId is a repeat.",
    },
    "timestamp": {**TIME, "description": "When the event happened (see sentAt)."},
    "originalTimestamp": {
        "description": "ISO 8601, like timestamp; read (and checked) only when no timestamp "
        "is sent.",
    },
    "sentAt": {
        **TIME,
        "description": "When the client sent the call: the event's time is then "
        "receivedAt - (sentAt - timestamp).",
    },
    "context": {**NULLABLE_OBJECT, "description": "context.page.url, context.campaign, …"},
    "integrations": {"description": "Passed on by the libraries; not read."},
    "writeKey": {
        "description": "The write key (text), read only when no Basic auth header is sent.",
    },
}
PAGE_NAME = {"description": "The page's or screen's name (text), kept in the properties."}
# What each call adds, and which of its fields it needs.
CALL_FIELDS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "identify": (
        {"traits": {**NULLABLE_OBJECT, "description": "email, firstName, company, …"}},
        [],
    ),
    "track": (
        {
            "event": {"type": "string", "minLength": 1, "pattern": r"\S"},
            "properties": NULLABLE_OBJECT,
        },
        ["event"],
    ),
    "page": ({"name": PAGE_NAME, "properties": NULLABLE_OBJECT}, []),
    "screen": ({"name": PAGE_NAME, "properties": NULLABLE_OBJECT}, []),
    "group": ({"groupId": NEEDED_ID, "traits": NULLABLE_OBJECT}, ["groupId"]),
    # An alias only links ids: its context is passed on, not read.
    "alias": (
        {"previousId": NEEDED_ID, "context": {"description": "Not read."}},
        ["previousId", "userId"],
    ),
}
SUMMARIES = {
    "identify": "Identify a person: traits create or update their lead",
    "track": "Record an event as an activity of the person's lead",
    "page": "Record a page view",
    "screen": "Record a screen view of an app",
    "group": "Set the company of the person's lead",
    "alias": "Link a previous id to the person",
    "batch": "Send several calls at once, all or none",
    "import": "The same as batch",
}


def add_public_endpoints(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add the tracking and form endpoints."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(_tracking_components())
    components.setdefault("securitySchemes", {})["writeKey"] = {
        "type": "http",
        "scheme": "basic",
        "description": "A tracking write key as the user name, with an empty password.",
    }
    paths = result.setdefault("paths", {})
    for call in CALLS:
        paths[f"/v1/{call}"] = {"post": _tracking_operation(call)}
    paths["/f/{key}/"] = {"post": _form_operation()}
    return result


def _message_schema(call: str) -> dict[str, Any]:
    fields, required = CALL_FIELDS[call]
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {**COMMON_FIELDS, **fields},
        "additionalProperties": True,
    }
    if required:
        schema["required"] = required
    if call == "alias":
        schema["properties"]["userId"] = NEEDED_ID
    else:
        # At least one of the two, not blank.
        schema["anyOf"] = [
            {"required": [name], "properties": {name: NEEDED_ID}}
            for name in ("userId", "anonymousId")
        ]
    return schema


def _tracking_components() -> dict[str, Any]:
    components: dict[str, Any] = {
        f"Tracking{call.title()}": _message_schema(call) for call in CALL_FIELDS
    }
    components["TrackingBatch"] = {
        "type": "object",
        "properties": {
            "batch": {
                "type": "array",
                "items": {
                    "description": "A call shaped as the single endpoints take it (see "
                    "TrackingIdentify, TrackingTrack, …), with its `type`. Each is checked "
                    "alone: one that is not valid (not an object, say) is refused and listed "
                    "under `rejected` in the answer, and the batch's other calls are stored.",
                },
            },
            "context": {"description": "The context of each message that has none of its own."},
            "integrations": COMMON_FIELDS["integrations"],
            "sentAt": {
                "description": "ISO 8601; the sentAt of each message that has none of its "
                "own, read (and checked) only through those messages.",
            },
            "writeKey": COMMON_FIELDS["writeKey"],
        },
        "required": ["batch"],
        "additionalProperties": True,
    }
    components["TrackingAnswer"] = {
        "type": "object",
        "properties": {
            "success": {"type": "boolean", "enum": [True]},
            "duplicate": {
                "type": "boolean",
                "description": "The messageId was stored before; nothing was stored again.",
            },
            "duplicates": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "A batch: the positions of the calls stored before.",
            },
            "rejected": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer", "minimum": 0},
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                    },
                    "required": ["index", "code", "message"],
                },
                "description": "A batch: the calls refused, each with its position and "
                "reason; the batch's other calls are stored.",
            },
        },
        "required": ["success"],
    }
    components["FormAccepted"] = {
        "type": "object",
        "properties": {"accepted": {"type": "boolean", "enum": [True]}},
        "required": ["accepted"],
    }
    components["TrackingError"] = {
        "type": "object",
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "code": {"type": "string"},
            "message": {"type": "string"},
        },
        "required": ["success", "code", "message"],
    }
    return components


def _tracking_operation(call: str) -> dict[str, Any]:
    component = "TrackingBatch" if call in ("batch", "import") else f"Tracking{call.title()}"
    body = {"$ref": f"#/components/schemas/{component}"}
    return {
        "operationId": f"tracking_{call}",
        "summary": SUMMARIES[call],
        "description": (
            "Segment's HTTP Tracking API: JSON whatever the Content-Type, optionally "
            "gzipped (`Content-Encoding: gzip`). A bad call answers 400; in a batch, a "
            "bad message is refused alone (listed under `rejected`) and the others are "
            "stored. analytics.js's one-letter paths (`/v1/t`, …) are the same calls."
        ),
        "tags": ["tracking"],
        "security": [{"writeKey": []}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": body}},
        },
        "responses": {
            "200": _json("The call was stored (or was a repeat).", "TrackingAnswer"),
            "400": _json(
                "Not JSON, not an object, a message that is not valid, or too large.",
                "TrackingError",
            ),
            "401": _json("A missing, wrong or inactive write key.", "TrackingError"),
            "429": _json("Over the write key's rate limit; see Retry-After.", "TrackingError"),
        },
    }


def _form_operation() -> dict[str, Any]:
    fields: dict[str, Any] = {
        "type": "object",
        "properties": {
            "email": {"type": "string", "format": "email", "maxLength": 254},
            "page_url": {"type": "string", "description": "The page the form is on."},
        },
        "required": ["email"],
        "additionalProperties": True,
        "description": "The form's fields, named as its field mapping says (by default "
        "email, first_name, last_name); every field is kept with the activity.",
    }
    json_fields = {
        **fields,
        # Any field, page_url too, may come as a list, as a repeated field does.
        "properties": {"email": fields["properties"]["email"]},
        "additionalProperties": {"anyOf": [SCALAR, {"type": "array", "items": SCALAR}]},
    }
    html = {"text/html": {"schema": {"type": "string"}}}
    error = {"$ref": "#/components/schemas/Error"}
    return {
        "operationId": "form_submit",
        "summary": "Submit a web form: create or update the lead of its email",
        "description": (
            "Public: the form's key only submits. JSON posts (or `Accept: "
            "application/json`) answer JSON; browsers' form posts a redirect or a page."
        ),
        "tags": ["forms"],
        "security": [],
        "parameters": [
            {
                "name": "key",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "The form's key (Leads → Web forms in the admin).",
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": json_fields},
                "application/x-www-form-urlencoded": {"schema": fields},
                "multipart/form-data": {"schema": fields},
            },
        },
        "responses": {
            "200": {"description": "The thank-you page (a browser's post).", "content": html},
            "202": _json(
                "Accepted (the same answer for a new lead, an existing one or spam).",
                "FormAccepted",
            ),
            "303": {"description": "A browser's post: on to the form's thank-you URL."},
            **{
                code: {
                    "description": description,
                    "content": {"application/json": {"schema": error}, **html},
                }
                for code, description in [
                    ("400", "Invalid or missing fields, or a body that cannot be read."),
                    ("404", "No such form, or it was switched off."),
                    ("413", "The body is over FORM_MAX_BODY_BYTES."),
                    ("415", "Not form data or JSON."),
                    ("429", "Over a rate limit; see Retry-After."),
                ]
            },
        },
    }


def _json(description: str, component: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
    }

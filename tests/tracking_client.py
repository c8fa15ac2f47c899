"""Sending Segment-style calls to /v1/ in tests, as a client library would."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from django.test import Client

from leads.models import Activity, Lead, PendingEvent, TrackingIdentity


def basic_auth(key: str) -> dict[str, str]:
    token = base64.b64encode(f"{key}:".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def send(
    client: Client, call: str, body: Any, *, key: str | None = None, gzipped: bool = False
) -> Any:
    """POST a call; ``key`` goes in Basic auth (leave it out to put ``writeKey`` in the body)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = basic_auth(key) if key is not None else {}
    if gzipped:
        data = gzip.compress(data)
        headers["HTTP_CONTENT_ENCODING"] = "gzip"
    return client.post(f"/v1/{call}", data, content_type="application/json", **headers)


def nothing_stored() -> bool:
    return not (
        Lead.objects.exists()
        or Activity.objects.exists()
        or PendingEvent.objects.exists()
        or TrackingIdentity.objects.exists()
    )

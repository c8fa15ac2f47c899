"""Outgoing team webhooks: signed JSON posts of hand-off events, retried with backoff.

``webhook_event`` stores one ``WebhookDelivery`` per subscribed webhook (the row is the
outbox) and queues it once the transaction commits; ``webhook_deliver`` claims the row,
posts it and records the outcome. Beat runs ``webhook_retry_due``, which queues every
delivery whose next attempt is due, so a lost message delays a delivery but never loses
it. ``docs/WEBHOOKS.md`` describes the requests a receiver gets and how to verify them.

The requests go out through ``http.client`` to an address checked just before: private,
loopback, link-local and other non-public addresses are refused unless
``WEBHOOK_ALLOWED_NETWORKS`` names them, and redirects are not followed, so a webhook
URL cannot be used to reach the database, the broker or a cloud metadata service.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import math
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from .models import DeliveryStatus, Team, TeamWebhook, WebhookDelivery, WebhookEvent
from .resilience import task_enqueue

log = logging.getLogger(__name__)

USER_AGENT = "Hotlist-Webhooks/1"
# How long to wait for the receiver to connect and for each read.
TIMEOUT_SECONDS = 10
# The whole request, from connecting to the last byte read: a receiver that answers
# slowly, a byte at a time, is cut off then.
REQUEST_SECONDS = 20
# Waits after the 1st, 2nd, … failed attempt; after the last one the delivery fails.
RETRY_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=12),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# A claimed delivery is left alone this long: the request's limit and a margin for
# resolving the host and recording the outcome. So only a sender that died loses its
# claim, and the delivery it held is retried about half a minute later, not after the
# task's time limit.
LOCK_DURATION = timedelta(seconds=REQUEST_SECONDS + 10)
# Deliveries queued by one run of the retry sweeper; the rest wait for the next run.
RETRY_BATCH = 500
# Of the receiver's answer, only this much is read (and kept in the log when it failed).
RESPONSE_SNIPPET_BYTES = 1024
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class WebhookURLError(ValueError):
    """A webhook URL that Hotlist refuses to post to; the message says why."""


# --- Where a webhook may post ------------------------------------------------------


def webhook_url_check(url: str) -> list[str]:
    """The addresses ``url`` may be reached at; raises ``WebhookURLError`` when refused.

    Resolves the host name, so it is called when a webhook is saved and again right
    before every request (the answer of DNS may have changed in between).
    """
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise WebhookURLError("Enter an https:// URL with a host name.")
    if parts.username is not None or parts.password is not None:
        raise WebhookURLError(
            "Leave the user name and password out of the URL: the signature "
            "authenticates Hotlist to the receiver."
        )
    local = host in LOCAL_HOSTS and settings.WEBHOOK_ALLOW_LOCALHOST
    if parts.scheme != "https" and not local:
        raise WebhookURLError("Use an https:// URL: events carry personal data.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookURLError("The port in the URL is not a number from 1 to 65535.") from None
    return _allowed_addresses(host, port, local=local)


def _allowed_addresses(host: str, port: int, *, local: bool) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise WebhookURLError(f"The host name {host} does not resolve.") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        if not address_allowed(address, local=local):
            raise WebhookURLError(
                f"{host} is at {address}, a private, loopback, link-local or reserved "
                "address; webhooks may reach it only when the WEBHOOK_ALLOWED_NETWORKS "
                "setting includes it."
            )
    return addresses


def address_allowed(address: str, *, local: bool = False) -> bool:
    """Whether a webhook may connect to ``address``: a public unicast address, a
    network named in ``WEBHOOK_ALLOWED_NETWORKS``, or loopback when ``local``."""
    ip = ipaddress.ip_address(address.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if local and ip.is_loopback:
        return True
    allowed = (ipaddress.ip_network(net, strict=False) for net in settings.WEBHOOK_ALLOWED_NETWORKS)
    if any(ip.version == net.version and ip in net for net in allowed):
        return True
    return ip.is_global and not ip.is_multicast


# --- Announcing an event -------------------------------------------------------------


def webhook_event(
    *, team: Team | None, event: str, key: str, payload: dict[str, Any]
) -> list[WebhookDelivery]:
    """Store ``payload`` for each of the team's active webhooks taking ``event``, and
    queue the sending once the current transaction commits.

    ``key`` names the occurrence (``handoff.assigned:42``): announcing it again, from a
    retried task or a second worker, finds the stored delivery instead of adding one.
    ``payload`` must be JSON-ready (dates as ISO strings). Returns the deliveries.
    """
    if team is None:
        return []
    deliveries = []
    for webhook in TeamWebhook.objects.subscribed(team=team, event=event):
        delivery, created = WebhookDelivery.objects.get_or_create(
            webhook=webhook,
            key=key,
            defaults={"event": event, "payload": payload, "next_attempt_at": timezone.now()},
        )
        if created:
            transaction.on_commit(partial(webhook_delivery_enqueue, delivery_id=delivery.pk))
        deliveries.append(delivery)
    return deliveries


def webhook_delivery_enqueue(*, delivery_id: int) -> bool:
    """Queue the sending of a stored delivery; call after commit.

    When the broker cannot be reached the delivery stays pending and the retry sweeper
    queues it once the broker is back. Returns whether it was queued.
    """
    from .tasks import webhook_deliver as deliver_task

    return task_enqueue(deliver_task, delivery_id, what=f"Webhook delivery {delivery_id}")


def webhook_retry_due(*, now: datetime | None = None) -> int:
    """Queue the deliveries whose next attempt is due; how many were queued.

    A delivery queued twice is sent once: ``webhook_deliver`` claims it first.
    """
    now = now or timezone.now()
    ids = list(
        WebhookDelivery.objects.due(now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:RETRY_BATCH]
    )
    for delivery_id in ids:
        webhook_delivery_enqueue(delivery_id=delivery_id)
    return len(ids)


def webhook_retry_now(*, deliveries: QuerySet[WebhookDelivery]) -> int:
    """Make the given deliveries due now (failed ones get one more attempt) and queue
    them after commit. Delivered ones, and ones a worker is sending, are left alone."""
    now = timezone.now()
    retryable = deliveries.exclude(status=DeliveryStatus.DELIVERED).unlocked(now)
    ids = list(retryable.values_list("pk", flat=True))
    # A worker claiming one of them meanwhile keeps its claim: only the claim sends.
    WebhookDelivery.objects.filter(pk__in=ids).update(
        status=DeliveryStatus.PENDING, next_attempt_at=now
    )
    for delivery_id in ids:
        transaction.on_commit(partial(webhook_delivery_enqueue, delivery_id=delivery_id))
    return len(ids)


def webhook_test_send(*, webhook: TeamWebhook) -> WebhookDelivery:
    """Post a test event to the webhook now, once (no retries); the delivery with its
    outcome. Works for an inactive webhook too, to try it before switching it on."""
    now = timezone.now()
    delivery = WebhookDelivery.objects.create(
        webhook=webhook,
        event=WebhookEvent.TEST,
        key=f"{WebhookEvent.TEST}:{uuid.uuid4().hex}",
        payload={
            "event": str(WebhookEvent.TEST),
            "occurred_at": now.isoformat(),
            "text": f"Test event from Hotlist for the webhook “{webhook.name}” of {webhook.team}.",
            "team": {"id": webhook.team_id, "name": webhook.team.name},
            "webhook": {"id": webhook.pk, "name": webhook.name},
        },
        next_attempt_at=now,
    )
    webhook_deliver(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


# --- Sending -----------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: the receiver's status code, or why there was none."""

    status_code: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def webhook_deliver(*, delivery_id: int) -> WebhookDelivery | None:
    """Make one attempt at a due delivery and record it; None when nothing was due.

    Safe to call any number of times from any number of workers: a conditional UPDATE
    claims the row (``locked_until``, one more attempt) before the request, so a
    duplicate message, a second worker or an early retry finds nothing to do. The claim
    is a short statement rather than a row lock held during the request, so no
    transaction (on SQLite: the database's write lock) stays open while the receiver
    answers. A 2xx answer delivers; anything else waits ``RETRY_DELAYS`` and tries
    again, up to ``MAX_ATTEMPTS`` attempts, then the delivery has failed.
    """
    now = timezone.now()
    claimed = (
        WebhookDelivery.objects.due(now)
        .filter(pk=delivery_id)
        .update(locked_until=now + LOCK_DURATION, attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    if delivery.webhook.active or delivery.event == WebhookEvent.TEST:
        attempt = _post(delivery)
    else:
        attempt = Attempt(error="The webhook is switched off.")
    _record(delivery, attempt)
    return delivery


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``<timestamp>.<body>`` keyed with the secret."""
    message = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_request(*, delivery: WebhookDelivery, timestamp: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of the POST for a delivery, signed with its webhook's secret."""
    body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Hotlist-Event": delivery.event,
        "X-Hotlist-Delivery": str(delivery.pk),
        "X-Hotlist-Timestamp": timestamp,
        "X-Hotlist-Signature": webhook_signature(
            secret=delivery.webhook.secret, timestamp=timestamp, body=body
        ),
    }
    return body, headers


def _post(delivery: WebhookDelivery) -> Attempt:
    url = urlsplit(delivery.webhook.url)
    try:
        addresses = webhook_url_check(delivery.webhook.url)
    except WebhookURLError as exc:
        return Attempt(error=str(exc))
    body, headers = webhook_request(delivery=delivery, timestamp=str(int(time.time())))
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    connection_class = PinnedHTTPSConnection if url.scheme == "https" else PinnedHTTPConnection
    connection = connection_class(url.hostname, url.port, addresses=addresses)
    deadline = _Deadline(connection, seconds=REQUEST_SECONDS)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        snippet = response.read(RESPONSE_SNIPPET_BYTES)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    else:
        error = ""
    finally:
        deadline.cancel()
        connection.close()
    # Cut off, the answer can look complete (the headers end where the socket did).
    if deadline.passed:
        return Attempt(error=f"No complete answer within {REQUEST_SECONDS} seconds.")
    if error:
        return Attempt(error=error)
    if 200 <= response.status < 300:
        return Attempt(status_code=response.status)
    text = snippet.decode("utf-8", "replace").strip()
    if 300 <= response.status < 400:
        text = "redirects are not followed; point the webhook at the final URL"
    return Attempt(status_code=response.status, error=f"HTTP {response.status}: {text}"[:500])


def _record(delivery: WebhookDelivery, attempt: Attempt) -> None:
    """Store the attempt's outcome, unless another worker claimed the row meanwhile."""
    now = timezone.now()
    changes: dict[str, Any] = {
        "last_status_code": attempt.status_code,
        "last_error": attempt.error,
        "locked_until": None,
    }
    limit = 1 if delivery.event == WebhookEvent.TEST else MAX_ATTEMPTS
    if attempt.ok:
        changes.update(status=DeliveryStatus.DELIVERED, delivered_at=now)
    elif delivery.attempts >= limit:
        changes.update(status=DeliveryStatus.FAILED)
    else:
        changes.update(next_attempt_at=now + RETRY_DELAYS[delivery.attempts - 1])
    WebhookDelivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts).update(**changes)
    for name, value in changes.items():
        setattr(delivery, name, value)
    if not attempt.ok:
        log.warning(
            "Webhook delivery %s, attempt %s: %s", delivery.pk, delivery.attempts, attempt.error
        )


class _Deadline:
    """Cuts a connection off ``seconds`` from now: its socket is shut down, so the read
    under way fails at once (connecting gives up at the same time by itself). The
    per-read timeout alone would let a receiver that sends a byte every few seconds hold
    the request, and the delivery's claim, indefinitely."""

    def __init__(
        self, connection: PinnedHTTPConnection | PinnedHTTPSConnection, *, seconds: float
    ) -> None:
        self.connection = connection
        # Connecting, which has no socket to shut down yet, stops by itself then.
        connection.deadline = time.monotonic() + seconds
        self.passed = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def _cut(self) -> None:
        self.passed = True
        sock = self.connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _connect(addresses: list[str], port: int, timeout: float, deadline: float) -> socket.socket:
    """A socket to the first of the checked addresses that answers before ``deadline``
    (a ``time.monotonic()`` value)."""
    error: OSError | None = None
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no address answered in time")
        try:
            return socket.create_connection((address, port), min(timeout, remaining))
        except OSError as exc:
            error = exc
    raise error or OSError("no address to connect to")


class PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to addresses checked beforehand, not to whatever the host name resolves
    to a moment later; the Host header still names the host."""

    def __init__(self, host: str, port: int | None, *, addresses: list[str]) -> None:
        super().__init__(host, port, timeout=TIMEOUT_SECONDS)
        self.addresses = addresses
        self.deadline = math.inf

    def connect(self) -> None:
        self.sock = _connect(self.addresses, self.port, self.timeout, self.deadline)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As ``PinnedHTTPConnection``, with TLS verified against the host name."""

    def __init__(self, host: str, port: int | None, *, addresses: list[str]) -> None:
        super().__init__(host, port, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context())
        self.addresses = addresses
        self.deadline = math.inf

    def connect(self) -> None:
        sock = _connect(self.addresses, self.port, self.timeout, self.deadline)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]

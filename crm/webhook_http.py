"""Where a webhook may post, and one POST to it that cannot reach inside.

``webhook_url_check`` resolves a webhook URL and refuses private, loopback,
link-local and other non-public addresses unless ``WEBHOOK_ALLOWED_NETWORKS`` names
them. ``webhook_post`` then connects to exactly the addresses checked (the Host header
and TLS still name the host), does not follow redirects and cuts the request off after
``REQUEST_SECONDS``, so a webhook URL cannot be used to reach the database, the broker
or a cloud metadata service, nor to hold a worker.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import math
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

# How long to wait for the receiver to connect and for each read.
TIMEOUT_SECONDS = 10
# The whole request, from connecting to the last byte read: a receiver that answers
# slowly, a byte at a time, is cut off then.
REQUEST_SECONDS = 20
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


# --- One POST ----------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: the receiver's status code, or why there was none."""

    status_code: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def webhook_post(
    url: str, *, addresses: list[str], body: bytes, headers: dict[str, str]
) -> Attempt:
    """POST ``body`` to ``url`` at one of ``addresses`` (from ``webhook_url_check``);
    what the receiver answered, or why it did not."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_class = PinnedHTTPSConnection if parts.scheme == "https" else PinnedHTTPConnection
    connection = connection_class(parts.hostname or "", parts.port, addresses=addresses)
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


def _connect(
    addresses: list[str], port: int, timeout: float | None, deadline: float
) -> socket.socket:
    """A socket to the first of the checked addresses that answers before ``deadline``
    (a ``time.monotonic()`` value)."""
    error: OSError | None = None
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no address answered in time")
        try:
            wait = remaining if timeout is None else min(timeout, remaining)
            return socket.create_connection((address, port), wait)
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

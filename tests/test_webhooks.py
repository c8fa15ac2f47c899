"""Team webhooks: signed posts of hand-offs to a real HTTP server, retries, SSRF, the admin."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from crm import tasks, webhook_http, webhooks
from crm.models import DeliveryStatus, Role, Team, TeamWebhook, WebhookDelivery
from leads.models import HandOff, Lead, Stage
from leads.signals import handoff_escalated, lead_handed_off
from leads.stages import lead_move_to_stage, stage_change_record
from tests.conftest import make_user
from tests.factories import CompanyFactory, LeadFactory, active_model, fit_rule
from tests.test_settings import PRODUCTION, load_settings


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server in a thread: it records each POST and answers with the next
    status of ``statuses`` (the last one repeats), after ``delay`` seconds."""

    statuses: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    def answer(self, request: Received) -> int:
        self.requests.append(request)
        return self.statuses[min(len(self.requests), len(self.statuses)) - 1]


@contextmanager
def running_receiver(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A ``Receiver`` listening on 127.0.0.1 until the block ends (over TLS with ``tls``)."""
    hook = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                status = hook.answer(Received(self.path, dict(self.headers.items()), body))
            time.sleep(hook.delay)
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"receiver says no")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/sales?room=north"
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        hook.url = f"https://localhost:{server.server_address[1]}/hooks/sales"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as hook:
        yield hook


def closed_port_url() -> str:
    """A local URL nothing listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


class Clock:
    """``timezone.now`` under the test's control."""

    def __init__(self) -> None:
        self.now = timezone.now()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock)
    return clock


@pytest.fixture(autouse=True)
def _webhook_settings(settings) -> None:
    settings.WEBHOOK_ALLOW_LOCALHOST = True
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    settings.SITE_URL = "https://crm.example.com"


def expected_signature(secret: str, headers: dict[str, str], body: bytes) -> str:
    """The receiver's side, as docs/WEBHOOKS.md shows it."""
    message = headers["X-Hotlist-Timestamp"].encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def make_webhook(team: Team, url: str, **fields: Any) -> TeamWebhook:
    return TeamWebhook.objects.create(
        team=team, name=fields.pop("name", "#sales"), url=url, **fields
    )


def assigned_event(team: Team, payload: dict[str, Any] | None = None) -> list[WebhookDelivery]:
    return webhooks.webhook_event(
        team=team, event="handoff.assigned", key="handoff.assigned:1", payload=payload or {}
    )


def make_handoff(lead, owner, **fields: Any) -> HandOff:
    change = stage_change_record(lead=lead, from_stage=Stage.MQL, to_stage=Stage.SQL)
    now = timezone.now()
    defaults = {
        "stage": Stage.SQL,
        "owner": owner,
        "assigned_by": "territory DE",
        "assigned_at": now,
        "sla_due_at": now + dt.timedelta(hours=24),
    }
    return HandOff.objects.create(lead=lead, stage_change=change, **{**defaults, **fields})


def announce(captured, signal, handoff: HandOff) -> None:
    """Send a hand-off signal as the hand-off does, after its commit; run what it queues."""
    with captured(execute=True):
        signal.send(sender=HandOff, handoff=handoff)


@pytest.fixture
def scored_lead(rep):
    """A lead of ``rep`` with a positive and a negative fit rule behind its score."""
    from scoring.lead_scoring import lead_score

    model = active_model()
    fit_rule(model, 30, "seniority", "equals", "director")
    fit_rule(model, 15, "country", "equals", "DE")
    fit_rule(model, -10, "job_title", "contains", "Intern")
    lead = LeadFactory(
        owner=rep,
        first_name="Ada",
        last_name="Lovelace",
        email="ada@fleet.example",
        job_title="Intern Operations",
        seniority="director",
        country="DE",
        stage=Stage.SQL,
        company=CompanyFactory(name="Fleet Co"),
    )
    lead_score(lead_id=lead.pk)
    lead.refresh_from_db()
    return lead


# --- Signed delivery and payload -----------------------------------------------------


def test_delivery_is_signed_with_the_webhook_secret(
    db, team, receiver, django_capture_on_commit_callbacks
):
    # Given a webhook of the team pointing at a real local server
    webhook = make_webhook(team, receiver.url)
    payload = {"event": "handoff.assigned", "text": "Hand-off: Zoë → Rita", "n": 1}

    # When an event is announced and its transaction commits
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhooks.webhook_event(
            team=team, event="handoff.assigned", key="handoff.assigned:1", payload=payload
        )

    # Then the server got one POST with the documented headers and a valid signature
    (request,) = receiver.requests
    assert request.path == "/hooks/sales?room=north"
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "Hotlist-Webhooks/1"
    assert headers["X-Hotlist-Event"] == "handoff.assigned"
    assert headers["X-Hotlist-Delivery"] == str(delivery.pk)
    assert abs(int(headers["X-Hotlist-Timestamp"]) - time.time()) < 60
    assert headers["X-Hotlist-Signature"] == expected_signature(
        webhook.secret, headers, request.body
    )
    assert request.json() == payload
    # and a signature made with another secret, or over another body, does not match
    assert headers["X-Hotlist-Signature"] != expected_signature(
        "whsec_other", headers, request.body
    )
    assert headers["X-Hotlist-Signature"] != expected_signature(
        webhook.secret, headers, request.body + b" "
    )
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (1, 200, "")
    assert delivery.delivered_at is not None
    assert delivery.locked_until is None


def documented_verify() -> Any:
    """The ``verify`` function of docs/WEBHOOKS.md, as a receiver would copy it."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "WEBHOOKS.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    return namespace["verify"]


def test_documented_verification_accepts_a_delivery_and_refuses_tampering(
    db, team, receiver, django_capture_on_commit_callbacks
):
    # Given a delivered event and the verification code of the docs
    webhook = make_webhook(team, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        assigned_event(team, {"text": "Zoë"})
    (request,) = receiver.requests
    verify = documented_verify()

    # Then the delivery verifies, and a changed body, secret or stale timestamp does not
    assert verify(webhook.secret, request.headers, request.body) is True
    assert verify(webhook.secret, request.headers, request.body.replace(b"Zo", b"Jo")) is False
    assert verify("whsec_wrong", request.headers, request.body) is False
    stale = {**request.headers, "X-Hotlist-Timestamp": str(int(time.time()) - 3600)}
    assert verify(webhook.secret, stale, request.body) is False


def test_handoff_assigned_payload_describes_lead_owner_sla_and_rules(
    rep, scored_lead, receiver, django_capture_on_commit_callbacks
):
    # Given the owner's team has a webhook and the lead was handed off to the owner
    make_webhook(rep.team, receiver.url)
    rep.first_name, rep.last_name = "Rita", "Rep"
    rep.save()
    handoff = make_handoff(scored_lead, rep)

    # When the hand-off is announced
    announce(django_capture_on_commit_callbacks, lead_handed_off, handoff)

    # Then the payload carries the lead, its owner, the SLA and the rules behind the score
    (request,) = receiver.requests
    body = request.json()
    assert request.headers["X-Hotlist-Event"] == body["event"] == "handoff.assigned"
    assert body["occurred_at"] == handoff.assigned_at.isoformat()
    assert body["handoff"] == {"id": handoff.pk, "assigned_by": "territory DE"}
    assert body["lead"] == {
        "id": scored_lead.pk,
        "name": "Ada Lovelace",
        "email": "ada@fleet.example",
        "company": "Fleet Co",
        "job_title": "Intern Operations",
        "country": "DE",
        "stage": "sql",
        "score": scored_lead.score,
        "band": scored_lead.band,
        "grade": scored_lead.grade,
        "url": f"https://crm.example.com/leads/{scored_lead.pk}/",
    }
    assert scored_lead.score == 30 + 15 - 10
    assert body["owner"] == {"name": "Rita Rep", "email": "rep1@example.com"}
    assert body["sla_due_at"] == handoff.sla_due_at.isoformat()
    positive = body["top_rules"]["positive"]
    assert [(rule["rule"], rule["points"]) for rule in positive] == [
        ("+30 when seniority is Director", 30.0),
        ("+15 when country is DE", 15.0),
    ]
    (negative,) = body["top_rules"]["negative"]
    assert negative["points"] == -10.0
    assert "Intern" in negative["rule"]
    # and one line a chat room shows
    text = body["text"]
    assert text.startswith(f"Hand-off: Ada Lovelace (Fleet Co), score {scored_lead.score} ")
    assert "→ Rita Rep, follow up by " in text
    assert text.endswith(f"https://crm.example.com/leads/{scored_lead.pk}/")


def test_escalation_payload_names_who_it_went_to(
    rep, manager, scored_lead, receiver, django_capture_on_commit_callbacks
):
    # Given a hand-off that passed its SLA and went to the team's manager
    make_webhook(rep.team, receiver.url)
    handoff = make_handoff(scored_lead, rep)
    handoff.escalated_at = timezone.now()
    handoff.escalated_to = manager
    handoff.save()

    # When the escalation is announced
    announce(django_capture_on_commit_callbacks, handoff_escalated, handoff)

    # Then the team hears about it, with the manager named
    (request,) = receiver.requests
    body = request.json()
    assert body["event"] == request.headers["X-Hotlist-Event"] == "handoff.escalated"
    assert body["occurred_at"] == handoff.escalated_at.isoformat()
    assert body["escalated_to"] == {"name": "manager", "email": "manager@example.com"}
    assert body["owner"]["email"] == "rep1@example.com"
    assert body["text"].startswith("Escalated: Ada Lovelace (Fleet Co)")
    assert "now with manager" in body["text"]


def test_chat_text_escapes_what_the_lead_typed(
    rep, receiver, db, django_capture_on_commit_callbacks
):
    # Given a lead whose name would mention a whole chat channel and hide a link
    make_webhook(rep.team, receiver.url)
    lead = LeadFactory(owner=rep, first_name="<!channel>", last_name="<https://evil.example|x>")
    handoff = make_handoff(lead, rep)

    # When the hand-off is announced
    announce(django_capture_on_commit_callbacks, lead_handed_off, handoff)

    # Then the chat line shows the name as text, while the JSON field keeps it as typed
    body = receiver.requests[0].json()
    assert "<!channel>" not in body["text"]
    assert body["text"].startswith("Hand-off: &lt;!channel&gt; &lt;https://evil.example|x&gt; ")
    assert body["lead"]["name"] == "<!channel> <https://evil.example|x>"


def test_same_handoff_announced_twice_is_delivered_once(
    rep, scored_lead, receiver, django_capture_on_commit_callbacks
):
    # Given a webhook and a hand-off
    make_webhook(rep.team, receiver.url)
    handoff = make_handoff(scored_lead, rep)

    # When the hand-off is announced twice (a retried task, a second worker)
    announce(django_capture_on_commit_callbacks, lead_handed_off, handoff)
    announce(django_capture_on_commit_callbacks, lead_handed_off, handoff)

    # Then one delivery exists and one POST was made
    assert WebhookDelivery.objects.count() == 1
    assert WebhookDelivery.objects.get().key == f"handoff.assigned:{handoff.pk}"
    assert len(receiver.requests) == 1


def test_only_active_subscribed_webhooks_of_the_owners_team_are_told(
    rep, scored_lead, receiver, django_capture_on_commit_callbacks
):
    # Given webhooks of the owner's team (one on, one off, one for escalations only)
    # and one of another team
    wanted = make_webhook(rep.team, receiver.url, name="wanted")
    make_webhook(rep.team, receiver.url, name="off", active=False)
    make_webhook(rep.team, receiver.url, name="escalations", events=["handoff.escalated"])
    make_webhook(Team.objects.create(name="South"), receiver.url, name="south")
    handoff = make_handoff(scored_lead, rep)

    # When the hand-off is announced
    announce(django_capture_on_commit_callbacks, lead_handed_off, handoff)

    # Then only the active webhook of the owner's team taking the event gets it
    assert list(WebhookDelivery.objects.values_list("webhook", flat=True)) == [wanted.pk]
    assert len(receiver.requests) == 1


def test_handoff_of_an_owner_without_a_team_stores_nothing(
    db, receiver, django_capture_on_commit_callbacks
):
    loner = make_user("loner", Role.REP)
    make_webhook(Team.objects.create(name="North"), receiver.url)
    handoff = make_handoff(LeadFactory(owner=loner), loner)

    announce(django_capture_on_commit_callbacks, lead_handed_off, handoff)

    assert not WebhookDelivery.objects.exists()
    assert receiver.requests == []


def test_moving_a_lead_to_sql_posts_its_handoff_to_the_owners_team(
    rep, scored_lead, receiver, django_capture_on_commit_callbacks
):
    # Given an MQL lead of a rep whose team has a webhook
    make_webhook(rep.team, receiver.url)
    Lead.objects.filter(pk=scored_lead.pk).update(stage=Stage.MQL)

    # When a person moves it to SQL and the hand-off runs
    with django_capture_on_commit_callbacks(execute=True):
        lead_move_to_stage(lead_id=scored_lead.pk, stage=Stage.SQL, reason="Call booked")

    # Then the team's webhook got the hand-off, keyed by the hand-off made by the move
    handoff = HandOff.objects.get(lead=scored_lead)
    (request,) = receiver.requests
    body = request.json()
    assert body["handoff"]["id"] == handoff.pk
    assert body["owner"]["email"] == rep.email
    assert body["sla_due_at"] == handoff.sla_due_at.isoformat()
    assert WebhookDelivery.objects.get().key == f"handoff.assigned:{handoff.pk}"


# --- Retries -------------------------------------------------------------------------


def test_failing_receiver_is_retried_with_growing_delays_then_fails(
    db, team, receiver, clock, django_capture_on_commit_callbacks
):
    # Given a receiver that always answers 500
    receiver.statuses = [500]
    make_webhook(team, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhooks.webhook_event(
            team=team, event="handoff.assigned", key="k", payload={}
        )

    # When beat's sweeper runs as time passes
    delays = []
    for _ in range(10):
        delivery.refresh_from_db()
        if delivery.status != DeliveryStatus.PENDING:
            break
        wait = delivery.next_attempt_at - clock.now
        delays.append(wait)
        clock.advance(wait - dt.timedelta(seconds=1))
        assert tasks.webhook_retry_due.delay().get() == 0  # not due yet: nothing sent
        clock.advance(dt.timedelta(seconds=1))
        assert tasks.webhook_retry_due.delay().get() == 1

    # Then each wait was longer than the one before, and the delivery failed after six tries
    assert delays == list(webhooks.RETRY_DELAYS)
    assert all(a < b for a, b in itertools.pairwise(delays))
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == webhooks.MAX_ATTEMPTS == len(receiver.requests) == 6
    assert delivery.last_status_code == 500
    assert delivery.last_error == "HTTP 500: receiver says no"
    assert delivery.delivered_at is None
    # and a failed delivery is not swept again
    clock.advance(dt.timedelta(days=2))
    assert tasks.webhook_retry_due.delay().get() == 0
    assert len(receiver.requests) == 6


def test_connection_refused_is_recorded_and_retried(
    db, team, clock, django_capture_on_commit_callbacks
):
    # Given a webhook whose server is down
    make_webhook(team, closed_port_url())

    # When the event is delivered
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhooks.webhook_event(
            team=team, event="handoff.assigned", key="k", payload={}
        )

    # Then the attempt is logged and the next one is due in a minute
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 1
    assert delivery.last_status_code is None
    assert "ConnectionRefusedError" in delivery.last_error
    assert delivery.next_attempt_at == clock.now + dt.timedelta(minutes=1)
    assert delivery.locked_until is None


def test_success_after_failures_ends_delivered(
    db, team, receiver, clock, django_capture_on_commit_callbacks
):
    # Given a receiver that fails twice, then accepts
    receiver.statuses = [503, 502, 204]
    make_webhook(team, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhooks.webhook_event(
            team=team, event="handoff.assigned", key="k", payload={}
        )

    # When the retries come due
    for delay in webhooks.RETRY_DELAYS[:2]:
        clock.advance(delay)
        tasks.webhook_retry_due.delay()

    # Then the third attempt delivered it, and the log says so
    delivery.refresh_from_db()
    assert len(receiver.requests) == 3
    assert {r.headers["X-Hotlist-Delivery"] for r in receiver.requests} == {str(delivery.pk)}
    assert delivery.status == DeliveryStatus.DELIVERED
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (3, 204, "")
    assert delivery.delivered_at == clock.now


def test_duplicate_message_before_the_retry_is_due_sends_nothing(
    db, team, receiver, django_capture_on_commit_callbacks
):
    # Given a delivery that failed a moment ago
    receiver.statuses = [500, 200]
    make_webhook(team, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhooks.webhook_event(
            team=team, event="handoff.assigned", key="k", payload={}
        )

    # When the same task message arrives again right away
    tasks.webhook_deliver.delay(delivery.pk)

    # Then it waits for its retry: one POST so far
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)


def test_broker_down_keeps_the_delivery_for_the_sweeper(
    db, team, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    # Given a broker that cannot be reached when the event is announced
    make_webhook(team, receiver.url)

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise KombuOperationalError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(tasks.webhook_deliver, "delay", unreachable)
        with django_capture_on_commit_callbacks(execute=True):
            assigned_event(team)

    # Then the delivery waits, nothing is lost
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, receiver.requests) == ("pending", 0, [])

    # When beat's sweeper runs once the broker is back
    assert tasks.webhook_retry_due.delay().get() == 1

    # Then it is delivered
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert len(receiver.requests) == 1


def test_delivery_of_a_worker_that_died_is_resent_after_its_claim_expires(
    db, team, receiver, clock
):
    # Given a delivery a worker claimed and never finished
    webhook = make_webhook(team, receiver.url)
    delivery = WebhookDelivery.objects.create(
        webhook=webhook,
        event="handoff.assigned",
        key="k",
        payload={},
        attempts=1,
        next_attempt_at=clock.now,
        locked_until=clock.now + webhooks.LOCK_DURATION,
    )

    # When the sweeper runs during the claim, and after it
    assert tasks.webhook_retry_due.delay().get() == 0
    clock.advance(webhooks.LOCK_DURATION + dt.timedelta(seconds=1))
    assert tasks.webhook_retry_due.delay().get() == 1

    # Then the delivery was sent once, as its second attempt
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(receiver.requests)) == ("delivered", 2, 1)


def test_delivery_of_a_worker_killed_mid_request_is_resent_within_a_minute(
    db, team, receiver, clock, monkeypatch
):
    # Given a delivery whose worker claimed it and died while posting it
    webhook = make_webhook(team, receiver.url)
    delivery = WebhookDelivery.objects.create(
        webhook=webhook, event="handoff.assigned", key="k", payload={}, next_attempt_at=clock.now
    )

    def killed(delivery: WebhookDelivery) -> webhook_http.Attempt:
        raise SystemExit("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(webhooks, "_post", killed)
        with pytest.raises(SystemExit):
            webhooks.webhook_deliver(delivery_id=delivery.pk)

    # When beat's sweeper runs right away, and again a minute later
    assert tasks.webhook_retry_due.delay().get() == 0
    clock.advance(dt.timedelta(minutes=1))
    assert tasks.webhook_retry_due.delay().get() == 1

    # Then the delivery was sent once, as its second attempt
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(receiver.requests)) == ("delivered", 2, 1)


@contextmanager
def trickling_receiver() -> Iterator[str]:
    """A server that starts an answer and then sends one byte of a header every 0.2 s,
    never finishing; its URL."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not stop.is_set():
                try:
                    conn.sendall(b"a")
                except OSError:
                    return
                time.sleep(0.2)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    finally:
        stop.set()
        server.close()
        thread.join(timeout=5)


def test_a_receiver_that_answers_a_byte_at_a_time_is_cut_off_at_the_request_limit(
    db, team, monkeypatch
):
    # Given a receiver that never finishes its answer, and a request limit of 1 second
    monkeypatch.setattr(webhook_http, "REQUEST_SECONDS", 1)
    with trickling_receiver() as url:
        webhook = make_webhook(team, url)
        delivery = WebhookDelivery.objects.create(
            webhook=webhook,
            event="handoff.assigned",
            key="k",
            payload={},
            next_attempt_at=timezone.now(),
        )

        # When a worker posts the delivery
        started = time.monotonic()
        webhooks.webhook_deliver(delivery_id=delivery.pk)
        took = time.monotonic() - started

    # Then it gave up after about the limit (each byte came well within the read
    # timeout), released its claim and will try again
    assert took < webhook_http.TIMEOUT_SECONDS / 2
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.locked_until is None
    assert delivery.last_error == "No complete answer within 1 seconds."


def test_redirect_is_not_followed(db, team, receiver, django_capture_on_commit_callbacks):
    receiver.statuses = [302]
    make_webhook(team, receiver.url)

    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhooks.webhook_event(
            team=team, event="handoff.assigned", key="k", payload={}
        )

    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == ("pending", 302)
    assert "redirects are not followed" in delivery.last_error


def make_certificates(folder, name: str) -> tuple[str, str, str]:
    """A test CA and a server certificate for ``name`` signed by it: (ca, cert, key)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make test certificates")
    ca, ca_key, cert, key = (str(folder / f) for f in ("ca.pem", "ca.key", "srv.pem", "srv.key"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = partial(subprocess.run, check=True, capture_output=True)
    run(["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "1",
         "-subj", "/CN=Hotlist test CA"])  # fmt: skip
    run(["openssl", "req", *ec, "-keyout", key, "-out", f"{cert}.csr", "-subj", f"/CN={name}"])
    extensions = folder / "ext.cnf"
    extensions.write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n")
    run(["openssl", "x509", "-req", "-in", f"{cert}.csr", "-CA", ca, "-CAkey", ca_key,
         "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", str(extensions)])  # fmt: skip
    return ca, cert, key


@pytest.mark.parametrize(("name", "delivered"), [("localhost", True), ("chat.example.com", False)])
def test_https_delivery_verifies_the_certificate_of_the_host(
    db, team, tmp_path, monkeypatch, name, delivered, django_capture_on_commit_callbacks
):
    # Given an https receiver on localhost whose CA is trusted, with a certificate for `name`
    ca, cert, key = make_certificates(tmp_path, name)
    monkeypatch.setenv("SSL_CERT_FILE", ca)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with running_receiver(tls) as receiver:
        make_webhook(team, receiver.url)

        # When an event is delivered
        with django_capture_on_commit_callbacks(execute=True):
            (delivery,) = assigned_event(team, {"n": 1})

    # Then it arrives only when the certificate names the host of the URL
    delivery.refresh_from_db()
    assert (delivery.status == DeliveryStatus.DELIVERED) is delivered
    assert len(receiver.requests) == int(delivered)
    if not delivered:
        assert "CERTIFICATE_VERIFY_FAILED" in delivery.last_error


# --- Which URLs a webhook may reach ------------------------------------------------------


REFUSED_URLS = [
    ("http://hooks.example.com/x", "https://"),
    ("https://10.0.0.5/hook", "private"),
    ("https://192.168.1.20/hook", "private"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://100.64.0.1/hook", "private"),
    ("https://0.0.0.0/hook", "private"),
    ("https://[fd00::1]/hook", "private"),
    ("https://[::ffff:10.0.0.1]/hook", "private"),
    ("https://user:secret@8.8.8.8/hook", "user name and password"),
    ("ftp://8.8.8.8/hook", "https://"),
]


@pytest.mark.parametrize(("url", "message"), REFUSED_URLS)
def test_admin_refuses_webhook_urls_that_could_reach_inside(admin_client, team, url, message):
    # When an admin saves a webhook with a URL pointing inside the network
    response = admin_client.post(
        reverse("admin:crm_teamwebhook_add"),
        {"team": team.pk, "name": "#sales", "url": url, "events": ["handoff.assigned"]},
    )

    # Then the form says why, next to the URL, and nothing is stored
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["url"]
    assert message in errors["url"][0]
    assert not TeamWebhook.objects.exists()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "https://localhost/hook", "https://[::1]/hook"]
)
def test_localhost_is_refused_unless_allowed(admin_client, team, settings, url):
    settings.WEBHOOK_ALLOW_LOCALHOST = False
    data = {"team": team.pk, "name": "#sales", "url": url, "events": ["handoff.assigned"]}

    refused = admin_client.post(reverse("admin:crm_teamwebhook_add"), data)

    assert "url" in refused.context["adminform"].form.errors
    assert not TeamWebhook.objects.exists()

    settings.WEBHOOK_ALLOW_LOCALHOST = True
    accepted = admin_client.post(reverse("admin:crm_teamwebhook_add"), data)

    assert accepted.status_code == 302
    assert TeamWebhook.objects.get().url == url


def test_allowed_network_opens_a_private_address(admin_client, team, settings):
    # Given the internal chat server's network is allowed
    settings.WEBHOOK_ALLOWED_NETWORKS = ["10.8.0.0/16"]
    add = reverse("admin:crm_teamwebhook_add")
    data = {"team": team.pk, "name": "#sales", "events": ["handoff.assigned"]}

    # When webhooks inside and outside it are saved
    inside = admin_client.post(add, {**data, "url": "https://10.8.3.4/hooks/abc"})
    outside = admin_client.post(add, {**data, "url": "https://10.9.0.1/hooks/abc"})

    # Then only the one inside is stored, with a generated secret
    assert inside.status_code == 302
    assert outside.status_code == 200
    webhook = TeamWebhook.objects.get()
    assert webhook.url == "https://10.8.3.4/hooks/abc"
    assert webhook.secret.startswith("whsec_")
    assert len(webhook.secret) > 40


def test_address_refused_at_send_time_is_not_contacted(
    db, team, receiver, settings, django_capture_on_commit_callbacks
):
    # Given a webhook saved while localhost was allowed, and then no longer allowed
    make_webhook(team, receiver.url)
    settings.WEBHOOK_ALLOW_LOCALHOST = False

    # When an event is delivered
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhooks.webhook_event(
            team=team, event="handoff.assigned", key="k", payload={}
        )

    # Then no request reaches the address, and the log says why
    assert receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert "https://" in delivery.last_error


# --- Admin -----------------------------------------------------------------------------


def test_secret_is_generated_shown_and_kept_read_only(admin_client, team):
    # Given a webhook added in the admin
    add = admin_client.post(
        reverse("admin:crm_teamwebhook_add"),
        {
            "team": team.pk,
            "name": "#sales",
            "url": "http://localhost:8080/hook",
            "events": ["handoff.assigned", "handoff.escalated"],
            "active": "on",
            "secret": "whsec_chosen_by_the_form",
        },
    )
    assert add.status_code == 302
    webhook = TeamWebhook.objects.get()
    assert webhook.secret != "whsec_chosen_by_the_form"
    assert webhook.events == ["handoff.assigned", "handoff.escalated"]
    change = reverse("admin:crm_teamwebhook_change", args=[webhook.pk])

    # When its page is opened and saved with another secret posted
    page = admin_client.get(change)
    saved = admin_client.post(
        change,
        {
            "team": team.pk,
            "name": "#sales-de",
            "url": "http://localhost:8080/hook",
            "events": ["handoff.escalated"],
            "secret": "whsec_overwritten",
        },
    )

    # Then the page shows the secret to copy, and saving keeps it
    assert webhook.secret in page.content.decode()
    assert saved.status_code == 302
    webhook.refresh_from_db()
    assert (webhook.name, webhook.events, webhook.active) == (
        "#sales-de",
        ["handoff.escalated"],
        False,
    )
    assert webhook.secret == TeamWebhook.objects.get().secret != "whsec_overwritten"


def test_admin_sends_a_signed_test_event(admin_client, team, receiver):
    # Given a webhook
    webhook = make_webhook(team, receiver.url, name="#sales <north>")

    # When the admin sends it a test event
    response = admin_client.post(
        reverse("admin:crm_teamwebhook_changelist"),
        {"action": "send_test_event", "_selected_action": [webhook.pk]},
        follow=True,
    )

    # Then the receiver got a signed test event, and the admin says it was delivered
    (request,) = receiver.requests
    assert request.headers["X-Hotlist-Event"] == "webhook.test"
    assert request.headers["X-Hotlist-Signature"] == expected_signature(
        webhook.secret, request.headers, request.body
    )
    assert request.json()["webhook"] == {"id": webhook.pk, "name": "#sales <north>"}
    page = response.content.decode()
    assert "#sales &lt;north&gt;: delivered (HTTP 200)." in page
    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED


def test_failed_test_event_is_reported_and_not_retried(admin_client, team, clock):
    webhook = make_webhook(team, closed_port_url())

    response = admin_client.post(
        reverse("admin:crm_teamwebhook_changelist"),
        {"action": "send_test_event", "_selected_action": [webhook.pk]},
        follow=True,
    )

    assert "not delivered: ConnectionRefusedError" in response.content.decode()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)
    clock.advance(dt.timedelta(days=1))
    assert tasks.webhook_retry_due.delay().get() == 0


def test_delivery_log_is_read_only_and_filters_by_status(admin_client, team, receiver):
    # Given a delivered and a failed delivery
    webhook = make_webhook(team, receiver.url)
    done = WebhookDelivery.objects.create(
        webhook=webhook,
        event="handoff.assigned",
        key="a",
        payload={"text": "<b>Ada</b>"},
        status="delivered",
    )
    WebhookDelivery.objects.create(
        webhook=webhook, event="handoff.escalated", key="b", payload={}, status="failed"
    )
    changelist = reverse("admin:crm_webhookdelivery_changelist")

    # When the log is filtered and a delivery opened
    failed = admin_client.get(changelist, {"status__exact": "failed"})
    escalated = admin_client.get(changelist, {"event__exact": "handoff.escalated"})
    detail = admin_client.get(reverse("admin:crm_webhookdelivery_change", args=[done.pk]))
    edit = admin_client.post(
        reverse("admin:crm_webhookdelivery_change", args=[done.pk]), {"status": "failed"}
    )

    # Then the filters select, the page shows the delivery and nothing can be edited
    assert [d.key for d in failed.context["cl"].result_list] == ["b"]
    assert [d.key for d in escalated.context["cl"].result_list] == ["b"]
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()  # no Save button
    assert '"text": "&lt;b&gt;Ada&lt;/b&gt;"' in detail.content.decode().replace("&quot;", '"')
    assert edit.status_code == 403
    assert admin_client.get(reverse("admin:crm_webhookdelivery_add")).status_code == 403
    done.refresh_from_db()
    assert done.status == DeliveryStatus.DELIVERED


def test_admin_retries_a_failed_delivery_now(
    admin_client, team, receiver, django_capture_on_commit_callbacks
):
    # Given a delivery that failed for good, and one already delivered
    webhook = make_webhook(team, receiver.url)
    failed = WebhookDelivery.objects.create(
        webhook=webhook,
        event="handoff.assigned",
        key="a",
        payload={"n": 1},
        status="failed",
        attempts=6,
        last_status_code=500,
    )
    delivered = WebhookDelivery.objects.create(
        webhook=webhook, event="handoff.assigned", key="b", payload={}, status="delivered"
    )

    # When the admin retries both now
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:crm_webhookdelivery_changelist"),
            {"action": "retry_now", "_selected_action": [failed.pk, delivered.pk]},
            follow=True,
        )

    # Then the failed one gets one more attempt, which delivers it; the other is left alone
    assert "Queued 1 of 2 selected deliveries" in response.content.decode()
    (request,) = receiver.requests
    assert request.json() == {"n": 1}
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.last_status_code) == ("delivered", 7, 200)


@pytest.mark.parametrize("persona", ["rep", "manager", "marketer", "outsider"])
def test_webhooks_admin_is_closed_to_other_roles(client, request, team, persona):
    user = request.getfixturevalue(persona)
    webhook = make_webhook(team, "https://8.8.8.8/hook")
    client.force_login(user)

    pages = [
        reverse("admin:crm_teamwebhook_changelist"),
        reverse("admin:crm_teamwebhook_change", args=[webhook.pk]),
        reverse("admin:crm_webhookdelivery_changelist"),
    ]

    for page in pages:
        response = client.get(page)
        assert response.status_code in (302, 403), page
        assert webhook.secret not in response.content.decode()
    posted = client.post(
        reverse("admin:crm_teamwebhook_change", args=[webhook.pk]),
        {"team": team.pk, "name": "x", "url": "https://8.8.4.4/x", "events": []},
    )
    assert posted.status_code in (302, 403)
    webhook.refresh_from_db()
    assert webhook.url == "https://8.8.8.8/hook"


def test_deliver_task_is_routed_to_the_default_queue_and_swept_by_beat(settings):
    from crm.celery import app

    route = app.amqp.router.route({}, "crm.tasks.webhook_deliver")
    assert route["queue"].name == "default"
    entry = settings.CELERY_BEAT_SCHEDULE["webhook-retry-due"]
    assert entry["task"] == "crm.tasks.webhook_retry_due"
    assert entry["task"] in app.tasks


def test_webhook_settings_are_read_from_the_environment(monkeypatch, tmp_path):
    for name in ("SITE_URL", "WEBHOOK_ALLOW_LOCALHOST", "WEBHOOK_ALLOWED_NETWORKS"):
        monkeypatch.delenv(name, raising=False)

    laptop = load_settings(monkeypatch, tmp_path)
    production = load_settings(
        monkeypatch,
        tmp_path,
        **PRODUCTION,
        SITE_URL="https://crm.example.com/",
        WEBHOOK_ALLOWED_NETWORKS="10.8.0.0/16, fd00::/8",
    )

    assert (laptop.SITE_URL, laptop.WEBHOOK_ALLOW_LOCALHOST) == ("http://localhost:8000", True)
    assert laptop.WEBHOOK_ALLOWED_NETWORKS == []
    assert production.SITE_URL == "https://crm.example.com"
    assert production.WEBHOOK_ALLOW_LOCALHOST is False
    assert production.WEBHOOK_ALLOWED_NETWORKS == ["10.8.0.0/16", "fd00::/8"]


def test_allowed_network_that_is_not_a_network_stops_the_settings(monkeypatch, tmp_path):
    with pytest.raises(ImproperlyConfigured, match="WEBHOOK_ALLOWED_NETWORKS: 'intranet'"):
        load_settings(monkeypatch, tmp_path, WEBHOOK_ALLOWED_NETWORKS="10.0.0.0/8,intranet")

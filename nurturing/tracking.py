"""What comes back from a sent message: opens, clicks, unsubscribes, bounces, replies.

Each becomes an Activity through ``leads.activities.activities_record`` (source
``nurture``), so scoring scores it like any other event. Opens and clicks that a
machine made (a link scanner, or within ``NURTURE_MACHINE_OPEN_SECONDS`` of sending,
faster than a person reads) are stored with ``properties["scored"] = False`` and do
not count in the message's statistics. One activity per message and kind (per link for
clicks): the idempotency key makes a reloaded pixel or a second click a no-op.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from leads.activities import activities_record
from leads.models import Activity, ActivityType, EmailStatus, Lead, normalize_email

from .enrollment import enrollments_exit_for_lead
from .models import Enrollment, ExitReason, Message, MessageStatus, Suppression, SuppressionReason
from .personalize import template_links

SOURCE = "nurture"
# Security gateways and link checkers that fetch every link and image of a message.
SCANNER_AGENTS = re.compile(
    r"barracuda|mimecast|proofpoint|symantec|messagelabs|trend ?micro|forcepoint|fireeye"
    r"|ironport|safelinks|urldefense|microsoft office/|python-requests|python-urllib"
    r"|go-http-client|curl/|wget|headlesschrome|phantomjs|bot\b|spider|crawler|scanner"
    r"|slurp|preview",
    re.IGNORECASE,
)
BOUNCE_KINDS = ("bounce", "complaint", "reply")


def is_machine(user_agent: str, sent_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether an open or click was made by a machine rather than the reader."""
    if not user_agent.strip() or SCANNER_AGENTS.search(user_agent):
        return True
    grace = dt.timedelta(seconds=settings.NURTURE_MACHINE_OPEN_SECONDS)
    return sent_at is not None and now - sent_at < grace


def _record_once(lead: Lead, activity: Activity) -> bool:
    """Store the activity unless its idempotency key was stored before; whether it was."""
    try:
        activities_record(lead=lead, activities=[activity])
    except IntegrityError:
        return False
    return True


def _sent_message(message_id: int) -> Message | None:
    return (
        Message.objects.select_related("lead", "step", "enrollment")
        .filter(pk=message_id, sent_at__isnull=False)
        .first()
    )


def _properties(message: Message, **extra: object) -> dict[str, object]:
    return {
        "message_id": message.pk,
        "sequence_id": message.enrollment.sequence_id,
        "step": message.step.position,
        "subject": message.subject,
        **extra,
    }


def message_open(*, message_id: int, user_agent: str = "", now=None) -> bool:
    """Record the open of a sent message; whether it counted as the reader's."""
    now = now or timezone.now()
    message = _sent_message(message_id)
    if message is None:
        return False
    machine = is_machine(user_agent, message.sent_at, now)
    with transaction.atomic():
        if not machine:
            Message.objects.filter(pk=message.pk, opened_at__isnull=True).update(opened_at=now)
        _record_once(
            message.lead,
            Activity(
                type=ActivityType.EMAIL_OPEN,
                source=SOURCE,
                occurred_at=now,
                idempotency_key=f"open:{message.pk}:{'machine' if machine else 'reader'}",
                properties=_properties(message, scored=not machine, user_agent=user_agent[:300]),
            ),
        )
    return not machine


def message_click(
    *, message_id: int, index: int, from_template: bool, user_agent: str = "", now=None
) -> str | None:
    """Record a click on link ``index`` of a sent message; the URL to redirect to, or
    None when the message has no such link (nothing else is ever redirected to).

    ``from_template`` says the click's token was issued with a link list built from
    the template alone. Messages sent before that was so may list URLs that came from
    the lead's own values: their links are followed only while the step's template
    still holds them.
    """
    now = now or timezone.now()
    message = _sent_message(message_id)
    if message is None or not 0 <= index < len(message.links):
        return None
    url = message.links[index]
    if not from_template and url not in _template_links(message):
        return None
    machine = is_machine(user_agent, message.sent_at, now)
    with transaction.atomic():
        if not machine:
            Message.objects.filter(pk=message.pk, clicked_at__isnull=True).update(clicked_at=now)
            Message.objects.filter(pk=message.pk, opened_at__isnull=True).update(opened_at=now)
        _record_once(
            message.lead,
            Activity(
                type=ActivityType.EMAIL_CLICK,
                source=SOURCE,
                url=url[:2000],
                occurred_at=now,
                idempotency_key=f"click:{message.pk}:{index}:{'machine' if machine else 'reader'}",
                properties=_properties(message, scored=not machine, user_agent=user_agent[:300]),
            ),
        )
    return url


def _template_links(message: Message) -> list[str]:
    return template_links(body_text=message.step.body_text, body_html=message.step.body_html)


def _suppress(*, lead: Lead | None, email: str, reason: str, status: str, detail: str) -> None:
    Suppression.objects.get_or_create(
        email=normalize_email(email), defaults={"reason": reason, "detail": detail[:500]}
    )
    if lead is not None:
        # Bounced wins over unsubscribed: the address itself is unusable.
        keep = [EmailStatus.BOUNCED] if status == EmailStatus.UNSUBSCRIBED else []
        Lead.objects.filter(pk=lead.pk).exclude(email_status__in=keep).update(
            email_status=status, updated_at=timezone.now()
        )


def _stop_lead(lead: Lead, reason: str, now: dt.datetime, why: str) -> None:
    """End the lead's enrollments and cancel its messages not yet being sent."""
    enrollments_exit_for_lead(lead_id=lead.pk, reason=reason, now=now)
    Message.objects.filter(lead=lead, status=MessageStatus.QUEUED, claimed_at__isnull=True).update(
        status=MessageStatus.CANCELLED, error=why
    )


def message_unsubscribe(*, message_id: int, how: str = "link", now=None) -> Lead | None:
    """Unsubscribe the lead a message went to, at once: no later step of any sequence,
    queued or not, is sent. Repeating it changes nothing. None for an unknown message."""
    now = now or timezone.now()
    message = (
        Message.objects.select_related("lead", "step", "enrollment").filter(pk=message_id).first()
    )
    if message is None:
        return None
    lead = message.lead
    with transaction.atomic():
        _suppress(
            lead=lead,
            email=message.to_email or lead.email,
            reason=SuppressionReason.UNSUBSCRIBED,
            status=EmailStatus.UNSUBSCRIBED,
            detail=f"Unsubscribed from message {message.pk} ({how})",
        )
        Message.objects.filter(pk=message.pk, unsubscribed_at__isnull=True).update(
            unsubscribed_at=now
        )
        _stop_lead(lead, ExitReason.UNSUBSCRIBED, now, "Not sent: the lead unsubscribed.")
        _record_once(
            lead,
            Activity(
                type=ActivityType.UNSUBSCRIBE,
                source=SOURCE,
                occurred_at=now,
                idempotency_key=f"unsubscribe:{message.pk}",
                properties=_properties(message, how=how),
            ),
        )
    return lead


@dataclass(frozen=True)
class MailEvent:
    """A delivery event reported by the mail provider's webhook."""

    kind: str  # bounce, complaint or reply
    email: str
    provider_message_id: str = ""
    permanent: bool = True
    detail: str = ""


def _event_message(event: MailEvent) -> Message | None:
    sent = Message.objects.select_related("lead", "step", "enrollment").filter(
        sent_at__isnull=False
    )
    wanted = event.provider_message_id.strip()
    if wanted:
        bracketed = wanted if wanted.startswith("<") else f"<{wanted}>"
        found = sent.filter(provider_message_id__in=[wanted, bracketed]).first()
        if found is not None:
            return found
    return sent.filter(to_email=normalize_email(event.email)).order_by("-sent_at").first()


def mail_event_record(*, event: MailEvent, now=None) -> Message | None:
    """Apply a bounce, complaint or reply; the message it concerns, when known.

    A permanent bounce or a complaint suppresses the address (whichever lead carries it),
    marks the leads' email status, ends their enrollments and cancels their queued
    messages; a temporary bounce is only noted on the message. A reply ends the
    enrollments that stop on replies (through the reply activity it records).
    """
    now = now or timezone.now()
    email = normalize_email(event.email)
    message = _event_message(event)
    lead = message.lead if message is not None else Lead.objects.filter(email=email).first()
    with transaction.atomic():
        if event.kind == "bounce" and not event.permanent:
            if message is not None:
                Message.objects.filter(pk=message.pk).update(error=event.detail[:1000])
            return message
        if event.kind == "reply":
            if lead is not None:
                _reply(lead, message, now, event.detail)
            return message
        bounce = event.kind == "bounce"
        _suppress(
            lead=lead,
            email=email,
            reason=SuppressionReason.BOUNCED if bounce else SuppressionReason.COMPLAINED,
            status=EmailStatus.BOUNCED if bounce else EmailStatus.UNSUBSCRIBED,
            detail=event.detail or event.kind,
        )
        if message is not None:
            if bounce:
                Message.objects.filter(pk=message.pk).update(
                    status=MessageStatus.BOUNCED, bounced_at=now, error=event.detail[:1000]
                )
            else:
                Message.objects.filter(pk=message.pk, unsubscribed_at__isnull=True).update(
                    unsubscribed_at=now
                )
        if lead is not None:
            reason = ExitReason.BOUNCED if bounce else ExitReason.UNSUBSCRIBED
            _stop_lead(lead, reason, now, f"Not sent: the address {event.kind}d.")
            _record_once(lead, _event_activity(event, message, now))
    return message


def _event_activity(event: MailEvent, message: Message | None, now: dt.datetime) -> Activity:
    bounce = event.kind == "bounce"
    properties = _properties(message) if message is not None else {}
    properties.update(kind=event.kind, detail=event.detail[:500])
    return Activity(
        type=ActivityType.EMAIL_BOUNCE if bounce else ActivityType.UNSUBSCRIBE,
        source=SOURCE,
        occurred_at=now,
        idempotency_key=f"{event.kind}:{message.pk if message else normalize_email(event.email)}",
        properties=properties,
    )


def _reply(lead: Lead, message: Message | None, now: dt.datetime, detail: str) -> None:
    properties = _properties(message) if message is not None else {}
    properties["detail"] = detail[:500]
    key = f"reply:{message.pk}" if message is not None else ""
    _record_once(
        lead,
        Activity(
            type=ActivityType.EMAIL_REPLY,
            source=SOURCE,
            occurred_at=now,
            idempotency_key=key,
            properties=properties,
        ),
    )


def enrollments_end_on_reply(*, lead_id: int, activity_ids: list[int], now=None) -> int:
    """A reply (from the mail provider, or logged by a rep) ends the lead's enrollments
    that stop on replies and marks the latest message it answers; how many ended.
    Call inside the transaction that stored the activities."""
    if not Activity.objects.filter(pk__in=activity_ids, type=ActivityType.EMAIL_REPLY).exists():
        return 0
    now = now or timezone.now()
    latest = (
        Message.objects.filter(lead_id=lead_id, sent_at__isnull=False, replied_at__isnull=True)
        .order_by("-sent_at")
        .values_list("pk", flat=True)[:1]
    )
    Message.objects.filter(pk__in=list(latest)).update(replied_at=now)
    stopping = Enrollment.objects.filter(sequence__exit_on_reply=True).values("pk")
    return enrollments_exit_for_lead(
        lead_id=lead_id, reason=ExitReason.REPLIED, now=now, where=Q(pk__in=stopping)
    )

"""Sending nurture messages: each queued ``Message`` sent at most once.

``message_send`` claims its row before sending, so a message goes out at most once
however often its task runs, and checks the lead's suppression first, so an unsubscribe
stops even a step that was already queued. Beat's ``messages_resume_stalled`` queues
again the messages whose task message was lost.
"""

from __future__ import annotations

import datetime as dt
import smtplib
from email.utils import formataddr, make_msgid, parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.html import strip_tags

from crm.resilience import task_enqueue
from leads.models import Lead

from .enrollment import enrollment_exit, lead_is_suppressed
from .models import EnrollmentStatus, ExitReason, Message, MessageStatus, SequenceStatus
from .personalize import RenderedEmail, render_email

# A queued message nobody claimed this long after it was made lost its task message.
STALLED_AFTER = dt.timedelta(minutes=5)
# A claim this old means the sending worker died mid-send: the message may have gone out.
ABANDONED_AFTER = dt.timedelta(hours=1)


class TransientSendError(Exception):
    """The mail server could not take the message now; try again later."""


def messages_send_request(*, message_ids: list[int]) -> int:
    """Queue the messages on the email queue; how many were queued. A broker outage is
    logged: beat's ``messages_resume_stalled`` queues them again."""
    queued = 0
    for message_id in message_ids:
        if not task_enqueue(
            "nurturing.tasks.send_message", message_id, what=f"Nurture message {message_id}"
        ):
            break
        queued += 1
    return queued


def sender_for(lead: Lead) -> str:
    """The lead's owner when assigned (people answer people), else the default sender."""
    owner = lead.owner
    if owner is not None and owner.email:
        return formataddr((owner.get_full_name() or owner.username, owner.email))
    return settings.NURTURE_DEFAULT_FROM


def nurture_email(message: Message, rendered: RenderedEmail, sender: str) -> EmailMultiAlternatives:
    """The email of a message, with RFC 8058 one-click unsubscribe headers."""
    headers = {
        "Message-ID": message.provider_message_id,
        "List-Unsubscribe": f"<{rendered.unsubscribe_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    email = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text or strip_tags(rendered.html),
        from_email=sender,
        to=[message.to_email],
        headers=headers,
    )
    if rendered.html:
        email.attach_alternative(rendered.html, "text/html")
    return email


def _cancel_reason(message: Message) -> str:
    lead = message.lead
    if message.enrollment.status == EnrollmentStatus.EXITED:
        return f"Not sent: {message.enrollment.get_exit_reason_display().lower()}."
    if lead_is_suppressed(lead):
        return "Not sent: the address is unsubscribed or bounced."
    if lead.email != message.to_email:
        return "Not sent: the lead's address changed."
    return ""


def _is_permanent(exc: Exception) -> bool:
    """A 5xx answer about this message; authentication and connection trouble are not."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(500 <= code < 600 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return False
    if isinstance(exc, smtplib.SMTPResponseException):
        return 500 <= exc.smtp_code < 600
    return False


def message_send(*, message_id: int, final_attempt: bool = False, now=None) -> str:
    """Send a queued message once; the status it ends in ("" when another run has it).

    Claims the row with a conditional UPDATE, so duplicated task messages send one
    email. A lead unsubscribed or bounced meanwhile, or an enrollment that ended, cancels
    it. A permanent refusal (5xx) fails it and ends the enrollment; a transient one
    releases the claim and raises ``TransientSendError`` for the task to retry, unless
    this is the ``final_attempt``.
    """
    now = now or timezone.now()
    claimed = Message.objects.filter(
        pk=message_id, status=MessageStatus.QUEUED, claimed_at__isnull=True
    ).update(claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return ""
    message = Message.objects.select_related(
        "lead__owner", "lead__company", "step", "enrollment__sequence"
    ).get(pk=message_id)
    if message.enrollment.sequence.status == SequenceStatus.PAUSED:
        # Held back, still queued: resuming the sequence queues it again.
        Message.objects.filter(pk=message_id).update(claimed_at=None, attempts=F("attempts") - 1)
        return ""
    reason = _cancel_reason(message)
    if reason:
        return _finish(message, MessageStatus.CANCELLED, error=reason)
    sender = sender_for(message.lead)
    if not message.provider_message_id:
        message.provider_message_id = make_msgid(domain=_domain(sender))
    try:
        rendered = render_email(
            subject=message.step.subject,
            body_text=message.step.body_text,
            body_html=message.step.body_html,
            lead=message.lead,
            message_id=message.pk,
        )
    except Exception as exc:  # a template that cannot render for this lead
        return _fail(message, f"The step's template failed: {exc}", now)
    try:
        nurture_email(message, rendered, sender).send()
    except (smtplib.SMTPException, OSError) as exc:
        if _is_permanent(exc) or final_attempt:
            return _fail(message, f"{type(exc).__name__}: {exc}", now)
        Message.objects.filter(pk=message_id).update(claimed_at=None, error=str(exc)[:1000])
        raise TransientSendError(str(exc)) from exc
    Message.objects.filter(pk=message_id).update(
        status=MessageStatus.SENT,
        sent_at=now,
        claimed_at=None,
        error="",
        subject=rendered.subject,
        links=rendered.links,
        from_email=sender[:320],
        provider_message_id=message.provider_message_id,
    )
    return MessageStatus.SENT


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "localhost"


def _finish(message: Message, status: str, *, error: str) -> str:
    Message.objects.filter(pk=message.pk).update(status=status, claimed_at=None, error=error)
    return status


def _fail(message: Message, error: str, now: dt.datetime) -> str:
    """Record a permanent failure and end the enrollment: nothing later in it goes out."""
    with transaction.atomic():
        _finish(message, MessageStatus.FAILED, error=error[:1000])
        enrollment_exit(enrollment=message.enrollment, reason=ExitReason.FAILED, now=now)
    return MessageStatus.FAILED


def messages_resume_stalled(*, now: dt.datetime | None = None) -> int:
    """Beat: queue again the messages whose task message was lost; fail those whose
    sender died mid-send (not retried: the mail server may have taken it). How many
    were queued again."""
    now = now or timezone.now()
    queued = Message.objects.filter(status=MessageStatus.QUEUED)
    Message.objects.filter(
        pk__in=queued.filter(claimed_at__lt=now - ABANDONED_AFTER).values("pk")
    ).update(
        status=MessageStatus.FAILED,
        claimed_at=None,
        error="Sending was interrupted; not retried, as the message may have gone out.",
    )
    stalled = list(
        queued.filter(claimed_at__isnull=True, created_at__lt=now - STALLED_AFTER)
        .exclude(enrollment__sequence__status=SequenceStatus.PAUSED)
        .order_by("created_at")
        .values_list("pk", flat=True)[:5000]
    )
    return messages_send_request(message_ids=stalled) if stalled else 0

"""Telling people what needs them: in-app notifications, each emailed at most once.

The notification row is written in the caller's transaction; its email is queued on
the email queue only once that transaction commits, so a rolled-back hand-off never
mails anyone, and the sending task claims the row first, so a retried or duplicated
message sends one email.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from crm.resilience import task_enqueue

from .handoff_models import Notification, NotificationKind
from .models import Lead
from .score_explanations import lead_score_explanation

if TYPE_CHECKING:
    from crm.models import User


RECENT_ACTIVITIES = 5
# The lead fields a rep reads first, in the order the email lists them.
EXPLICIT_FIELDS = (
    "email",
    "phone",
    "job_title",
    "seniority",
    "department",
    "country",
    "region",
    "city",
    "source",
    "campaign",
    "budget",
    "authority",
    "need",
    "timeline",
)


def notify(
    *,
    user: User,
    kind: str,
    title: str,
    body: str,
    url: str = "",
    lead: Lead | None = None,
    email: bool = True,
) -> Notification:
    """Record a notification for ``user`` and, with ``email``, mail it after commit.

    ``body`` is plain text; templates escape it. People without an email address get
    the in-app notification only.
    """
    notification = Notification.objects.create(
        user=user,
        kind=NotificationKind(kind),
        title=title[:200],
        body=body,
        url=url[:500],
        lead=lead,
        email_pending=bool(email and user.email),
    )
    if notification.email_pending:
        transaction.on_commit(partial(_queue_email, notification.pk))
    return notification


def _queue_email(notification_id: int) -> None:
    what = f"Email of notification {notification_id}"
    task_enqueue("leads.tasks.send_notification_email", notification_id, what=what)


def lead_notify_surge(*, lead_id: int, points: float, hours: int) -> bool:
    """Tell the lead's owner their lead's score jumped; whether anyone was told.

    Call after the transaction that scored the lead committed, once per surge (scoring
    calls it for each ``score_surged``).
    """
    lead = Lead.objects.select_related("owner").filter(pk=lead_id).first()
    if lead is None or lead.owner is None or not lead.owner.is_active:
        return False
    with transaction.atomic():
        notify(
            user=lead.owner,
            kind=NotificationKind.SURGE,
            title=f"{lead} is surging",
            body=(
                f"{lead} earned {points:g} points in the last {hours} hours "
                f"and now scores {lead.score} ({lead.get_band_display()})."
            ),
            url=lead.get_absolute_url(),
            lead=lead,
        )
    return True


def notifications_mark_read(*, user: User, ids: Iterable[int] | None = None) -> int:
    """Mark the user's unread notifications read (only ``ids`` when given); how many were.

    Ids of other people's notifications are ignored, never an error.
    """
    unread = Notification.objects.filter(user=user).unread()
    if ids is not None:
        unread = unread.filter(pk__in=list(ids))
    return unread.update(read_at=timezone.now())


def notifications_settle(*, lead_id: int, kinds: Iterable[str], users: Iterable[int]) -> int:
    """Mark read the unread notifications of ``kinds`` about the lead sent to ``users``:
    once the hand-off is accepted or rejected, or the task done, the bell has nothing
    left to say about it; how many were marked."""
    unread = Notification.objects.unread().filter(
        lead_id=lead_id, kind__in=list(kinds), user_id__in=list(users)
    )
    return unread.update(read_at=timezone.now())


def notification_email_send(*, notification_id: int) -> bool:
    """Send a notification's email once; whether this call sent it.

    The row is claimed with a conditional UPDATE before sending, so two deliveries of
    the same task message send one email. A failed send releases the claim and
    re-raises, for the task to retry.
    """
    claimed = Notification.objects.filter(pk=notification_id, emailed_at__isnull=True).update(
        emailed_at=timezone.now(), email_pending=False
    )
    if not claimed:
        return False
    notification = Notification.objects.select_related("user", "lead").get(pk=notification_id)
    try:
        notification_email(notification).send()
    except Exception:
        Notification.objects.filter(pk=notification_id).update(emailed_at=None)
        raise
    return True


EMAIL_STALLED_AFTER = timedelta(minutes=2)


def notifications_email_resume(*, now: datetime | None = None) -> int:
    """Beat: queue again the emails that no worker has taken a while after they were
    asked for (their message was lost); how many were. Sending claims the row, so an
    email queued twice goes out once."""
    older_than = (now or timezone.now()) - EMAIL_STALLED_AFTER
    pending = Notification.objects.filter(email_pending=True, created_at__lt=older_than)
    ids = list(pending.order_by("created_at").values_list("pk", flat=True)[:500])
    for notification_id in ids:
        _queue_email(notification_id)
    return len(ids)


def notification_email(notification: Notification) -> EmailMultiAlternatives:
    """The email of a notification: subject, plain text and HTML from one context."""
    context = email_context(notification)
    subject = render_to_string("leads/email/notification_subject.txt", context)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split())[:200],
        body=render_to_string("leads/email/notification.txt", context),
        to=[notification.user.email],
    )
    message.attach_alternative(
        render_to_string("leads/email/notification.html", context), "text/html"
    )
    return message


def email_context(notification: Notification) -> dict[str, Any]:
    link = notification.url
    if link.startswith("/"):
        link = settings.SITE_URL.rstrip("/") + link
    context: dict[str, Any] = {"notification": notification, "link": link}
    lead = notification.lead if notification.kind != NotificationKind.REJECTION else None
    if lead is not None:
        context["lead"] = lead_brief(lead)
    return context


def lead_brief(lead: Lead) -> dict[str, Any]:
    """What a rep needs to act on a lead without opening it: the explicit data, the score
    with the rules that produced it, and the latest activity."""
    fields = []
    columns = {field.name: field for field in Lead._meta.concrete_fields}
    for name in EXPLICIT_FIELDS:
        if not getattr(lead, name):
            continue
        field = columns[name]
        value = getattr(lead, f"get_{name}_display")() if field.choices else getattr(lead, name)
        fields.append((field.verbose_name.capitalize(), value))
    if lead.company is not None:
        fields.insert(0, ("Company", lead.company.name))
    products = ", ".join(line.name for line in lead.product_interests.all())
    if products:
        fields.append(("Product interest", products))
    activities = list(lead.activities.order_by("-occurred_at", "-id")[:RECENT_ACTIVITIES])
    return {
        "lead": lead,
        "fields": fields,
        "explanation": lead_score_explanation(lead=lead),
        "activities": activities,
    }

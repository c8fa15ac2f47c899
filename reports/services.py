"""The reports' actions: the digest preference and the weekly digest email.

Reports write only their own rows (``DigestPreference``); the digest reads the same
key figures the index page shows, scoped to each recipient.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from crm.models import User

from .models import DigestPreference
from .pages.catalogue import REPORTS, key_facts
from .permissions import DIGEST_ROLES, digest_eligible
from .queries.key_figures import key_figures
from .scope import scope_for
from .sql import report_reads

log = logging.getLogger(__name__)


def digest_wanted(*, user: User) -> bool:
    preference = DigestPreference.objects.filter(user=user).first()
    return preference is None or preference.weekly_digest


def digest_preference_set(*, user: User, weekly_digest: bool) -> DigestPreference:
    preference, _ = DigestPreference.objects.update_or_create(
        user=user, defaults={"weekly_digest": weekly_digest, "updated_at": timezone.now()}
    )
    return preference


def digest_recipients() -> QuerySet[User]:
    """Active managers and marketers with an email address who did not opt out."""
    labels = [role.label for role in DIGEST_ROLES]
    return (
        User.objects.filter(is_active=True, groups__name__in=labels)
        .exclude(email="")
        .exclude(digest_preference__weekly_digest=False)
        .distinct()
        .order_by("pk")
    )


def digest_week(now: dt.datetime) -> tuple[dt.date, dt.date]:
    """The last full week (Monday to Sunday) before ``now``."""
    today = timezone.localdate(now)
    monday = today - dt.timedelta(days=today.weekday() + 7)
    return monday, monday + dt.timedelta(days=6)


def digest_send_weekly(*, now: dt.datetime | None = None) -> int:
    """Email last week's digest to every recipient once; how many were sent.

    Each recipient's preference row is claimed for the week with a conditional UPDATE
    before sending, so a retried or duplicated task sends nobody a second copy; a
    failed send releases the claim for the next run.
    """
    now = now or timezone.now()
    start, end = digest_week(now)
    sent = 0
    for user in digest_recipients():
        if not digest_eligible(user=user):
            continue
        preference, _ = DigestPreference.objects.get_or_create(user=user)
        claimed = (
            DigestPreference.objects.filter(pk=preference.pk, weekly_digest=True)
            .filter(Q(last_sent_for__isnull=True) | Q(last_sent_for__lt=start))
            .update(last_sent_for=start)
        )
        if not claimed:
            continue
        try:
            digest_email(user=user, start=start, end=end).send()
        except Exception:
            DigestPreference.objects.filter(pk=preference.pk).update(
                last_sent_for=preference.last_sent_for
            )
            log.exception("Weekly digest to user %s not sent", user.pk)
            continue
        sent += 1
    return sent


def digest_context(*, user: User, start: dt.date, end: dt.date) -> dict[str, Any]:
    query = f"?date_from={start.isoformat()}&date_to={end.isoformat()}"
    site = settings.SITE_URL.rstrip("/")
    with report_reads():
        figures = key_figures(scope_for(user, date_from=start, date_to=end))
    return {
        "user": user,
        "start": start,
        "end": end,
        "figures": figures,
        "facts": key_facts(figures),
        "index_url": f"{site}{reverse('reports')}{query}",
        "settings_url": f"{site}{reverse('reports-digest')}",
        "links": [
            (report.title, f"{site}{reverse('reports-page', args=[report.slug])}{query}")
            for report in REPORTS.values()
        ],
    }


def digest_email(*, user: User, start: dt.date, end: dt.date) -> EmailMultiAlternatives:
    """The digest: subject, plain text and HTML from one context."""
    context = digest_context(user=user, start=start, end=end)
    subject = render_to_string("reports/email/digest_subject.txt", context)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split())[:200],
        body=render_to_string("reports/email/digest.txt", context),
        to=[user.email],
    )
    message.attach_alternative(render_to_string("reports/email/digest.html", context), "text/html")
    return message

"""Activities: the behavioural and sales events on a lead, and the scoring outbox."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .lead import Lead


class ActivityType(models.TextChoices):
    PAGE_VIEW = "page_view", "Page view"
    EMAIL_OPEN = "email_open", "Email open"
    EMAIL_CLICK = "email_click", "Email click"
    EMAIL_REPLY = "email_reply", "Email reply"
    EMAIL_BOUNCE = "email_bounce", "Email bounce"
    FORM_SUBMISSION = "form_submission", "Form submission"
    CONTENT_DOWNLOAD = "content_download", "Content download"
    WEBINAR_REGISTRATION = "webinar_registration", "Webinar registration"
    WEBINAR_ATTENDANCE = "webinar_attendance", "Webinar attendance"
    DEMO_REQUEST = "demo_request", "Demo request"
    QUOTE_REQUEST = "quote_request", "Quote request"
    TRIAL_SIGNUP = "trial_signup", "Trial sign-up"
    SOCIAL_ENGAGEMENT = "social_engagement", "Social engagement"
    EVENT_ATTENDANCE = "event_attendance", "Event attendance"
    CALL = "call", "Call"
    MEETING = "meeting", "Meeting"
    NOTE = "note", "Note"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe"
    CUSTOM = "custom", "Custom"


# Activities a rep logs by hand: the first of these after a hand-off is the "touch"
# that speed-to-lead measures.
SALES_TOUCH_TYPES = frozenset({ActivityType.CALL, ActivityType.MEETING, ActivityType.EMAIL_REPLY})

# What a lead sends in on its own, waiting for an answer (the work queue's "replies"): an
# email reply counts only when no person logged it (then it is a rep's touch). The
# triggers that keep each lead's latest one on its rank (``LeadRank.inbound_at``) hold
# this list as migration ``leads.0031`` froze it: changing it needs a migration.
INBOUND_TYPES = (
    ActivityType.DEMO_REQUEST,
    ActivityType.QUOTE_REQUEST,
    ActivityType.TRIAL_SIGNUP,
    ActivityType.EMAIL_REPLY,
    ActivityType.FORM_SUBMISSION,
)


class ActivityQuerySet(models.QuerySet["Activity"]):
    def unscored(self) -> ActivityQuerySet:
        return self.filter(scored_at__isnull=True)


class Activity(models.Model):
    """A behavioural or sales event on a lead.

    The row doubles as the scoring outbox: ``scored_at`` stays empty until the
    scoring engine has applied it, so a lost task message delays a score but
    never loses it.
    """

    # Indexed by the timeline index, which starts with the lead.
    lead = models.ForeignKey(
        Lead, on_delete=models.CASCADE, related_name="activities", db_index=False
    )
    type = models.CharField(max_length=30, choices=ActivityType.choices)
    url = models.CharField(max_length=2000, blank=True)
    duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    received_at = models.DateTimeField(default=timezone.now, editable=False)
    source = models.CharField(
        max_length=50, default="crm", help_text="Where the event came from: api, form, tracking…"
    )
    idempotency_key = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    scored_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ActivityQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "activities"
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="activity_unique_key_per_source",
            )
        ]
        indexes = [
            models.Index(fields=["lead", "-occurred_at"], name="activity_timeline_idx"),
            # Activities of a type, per lead: what one engagement rule can match.
            models.Index(fields=["type", "lead", "occurred_at"], name="activity_type_lead_idx"),
            models.Index(
                fields=["lead"], condition=Q(scored_at__isnull=True), name="activity_unscored_idx"
            ),
            # Most activities come from tracking, not a person: only the others are indexed.
            models.Index(
                fields=["created_by"],
                condition=Q(created_by__isnull=False),
                name="activity_created_by_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} at {self.occurred_at:%Y-%m-%d %H:%M}"

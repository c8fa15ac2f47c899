"""Messages: each email of an enrollment's step, unique per enrollment and step, so
retries and concurrent workers never send twice."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from leads.models import Lead

from .enrollments import Enrollment
from .steps import Step


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    BOUNCED = "bounced", "Bounced"
    CANCELLED = "cancelled", "Not sent (unsubscribed or ended)"


class Message(models.Model):
    """One email of one enrollment's step: created once, sent at most once."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="messages")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="messages")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="nurture_messages")
    status = models.CharField(
        max_length=10, choices=MessageStatus.choices, default=MessageStatus.QUEUED
    )
    to_email = models.EmailField(max_length=254, blank=True)
    from_email = models.CharField(max_length=320, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    links = models.JSONField(
        default=list, blank=True, help_text="The URLs in this message: the only click targets."
    )
    provider_message_id = models.CharField(max_length=250, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="Set while a worker sends it."
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    replied_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["enrollment", "step"], name="message_one_per_enrollment_step"
            )
        ]
        indexes = [
            # The frequency cap: a lead's latest messages.
            models.Index(fields=["lead", "-created_at"], name="message_lead_created_idx"),
            models.Index(
                fields=["provider_message_id"],
                condition=~Q(provider_message_id=""),
                name="message_provider_id_idx",
            ),
            models.Index(
                fields=["created_at"], condition=Q(status="queued"), name="message_queued_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.subject or f"Message {self.pk}"

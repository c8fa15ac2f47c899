"""Steps: what a sequence sends, in order, each after a delay and inside a send window.

A step is an email to the lead or a task for its owner; its subject and bodies are
Django templates checked when saved (``nurturing.personalize``).
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from ..personalize import template_errors
from .sequences import Sequence

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


class StepKind(models.TextChoices):
    EMAIL = "email", "Email"
    TASK = "task", "Task for the owner"


class WindowZone(models.TextChoices):
    LEAD = "lead", "The lead's time zone (from its country), else the account's"
    ACCOUNT = "account", "The account's time zone"


class Step(models.Model):
    """One step of a sequence: an email, or a task for the lead's owner.

    Subject and bodies are Django templates over a small context (``first_name``,
    ``last_name``, ``company_name``, ``owner_name``, ``owner_email``,
    ``unsubscribe_url``); the HTML body is autoescaped.
    """

    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(default=1, help_text="Steps run in this order.")
    kind = models.CharField(max_length=10, choices=StepKind.choices, default=StepKind.EMAIL)
    delay_days = models.PositiveIntegerField(
        default=0, help_text="Wait after the previous step (after enrolling, for the first)."
    )
    delay_hours = models.PositiveIntegerField(default=0)
    subject = models.CharField(
        max_length=200, help_text="Email subject, or the task's title. e.g. Hi {{ first_name }}"
    )
    body_text = models.TextField(
        "text body", blank=True, help_text="Plain text. Links are tracked."
    )
    body_html = models.TextField(
        "HTML body",
        blank=True,
        help_text="Optional HTML version; values are escaped. Links are tracked.",
    )
    window_weekdays = models.JSONField(
        "send on weekdays",
        default=list,
        blank=True,
        help_text="0 = Monday … 6 = Sunday; empty: any day.",
    )
    window_start_hour = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Send from this hour (0 to 23)…"
    )
    window_end_hour = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="…until this hour (1 to 24, exclusive)."
    )
    window_zone = models.CharField(
        "window time zone", max_length=10, choices=WindowZone.choices, default=WindowZone.LEAD
    )

    class Meta:
        ordering = ["sequence", "position"]
        constraints = [
            models.UniqueConstraint(fields=["sequence", "position"], name="step_unique_position"),
            models.CheckConstraint(
                condition=Q(window_start_hour__isnull=True) | Q(window_start_hour__lte=23),
                name="step_window_start_hour",
            ),
            models.CheckConstraint(
                condition=Q(window_end_hour__isnull=True)
                | Q(window_end_hour__gte=1, window_end_hour__lte=24),
                name="step_window_end_hour",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sequence} · step {self.position}: {self.subject}"

    @property
    def delay(self) -> dt.timedelta:
        return dt.timedelta(days=self.delay_days, hours=self.delay_hours)

    @property
    def has_window(self) -> bool:
        return bool(self.window_weekdays) or self.window_start_hour is not None

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        for field in ("subject", "body_text", "body_html"):
            problems = template_errors(getattr(self, field))
            if problems:
                errors[field] = problems
        if self.kind == StepKind.EMAIL and not (self.body_text.strip() or self.body_html.strip()):
            errors["body_text"] = ["An email needs a text or an HTML body."]
        weekdays = self.window_weekdays
        if not isinstance(weekdays, list) or any(d not in range(7) for d in weekdays):
            errors["window_weekdays"] = ["Give weekday numbers from 0 (Monday) to 6 (Sunday)."]
        start, end = self.window_start_hour, self.window_end_hour
        if (start is None) != (end is None):
            errors["window_end_hour"] = ["Give both hours of the window, or neither."]
        elif start is not None and end is not None and not (0 <= start < end <= 24):
            errors["window_end_hour"] = ["The window must end after it starts, by 24 at most."]
        if errors:
            raise ValidationError(errors)

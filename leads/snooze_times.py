"""When something put off "for an hour", "until tomorrow" or "until next week" comes
back: a task snoozed from the task list, a lead snoozed in the work queue."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

# Snoozed to a day, a thing comes back at this local hour.
WORKDAY_START = dt.time(9, 0)

SNOOZE_CHOICES = [("hour", "1 hour"), ("tomorrow", "Tomorrow"), ("next_week", "Next week")]


def snooze_until(choice: str, *, now: dt.datetime) -> dt.datetime:
    """When a thing snoozed ``choice`` comes back: an hour on, or 9:00 tomorrow or next
    Monday in the current time zone."""
    if choice == "hour":
        return now + dt.timedelta(hours=1)
    today = timezone.localtime(now).date()
    if choice == "tomorrow":
        day = today + dt.timedelta(days=1)
    else:
        day = today + dt.timedelta(days=7 - today.weekday())
    return timezone.make_aware(dt.datetime.combine(day, WORKDAY_START))

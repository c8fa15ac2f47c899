"""When an activity may say it happened: one rule for the REST API, tracking calls and
touches logged by reps.

An activity is dated from 2000-01-01 to the moment it is received; older times are clock
or unit errors (zero dates, seconds sent as milliseconds). A sender's clock may run a
little ahead, so a time up to ``CLOCK_SKEW`` after receipt is accepted and stored as the
time of receipt: nothing happens after it is reported, and an activity dated after the
moment its lead is scored would be passed over by that scoring (see
``scoring.rules.engagement_awards``) while counted as scored. Anything later is refused.
"""

from __future__ import annotations

import datetime as dt

CLOCK_SKEW = dt.timedelta(minutes=5)
EARLIEST_ACTIVITY = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
TOO_EARLY = "The activity cannot have happened before 2000."
TOO_LATE = "The activity cannot have happened in the future."


class ActivityTimeError(ValueError):
    """A time no activity can have; the message says why."""


def activity_time(at: dt.datetime, *, received_at: dt.datetime) -> dt.datetime:
    """The time to store for an activity said to have happened ``at`` (timezone-aware)
    and received at ``received_at``: ``at`` itself, or ``received_at`` when ``at`` lies
    at most ``CLOCK_SKEW`` after it. Raises ``ActivityTimeError`` for a time before
    2000 or further ahead."""
    if at < EARLIEST_ACTIVITY:
        raise ActivityTimeError(TOO_EARLY)
    if at > received_at + CLOCK_SKEW:
        raise ActivityTimeError(TOO_LATE)
    return min(at, received_at)

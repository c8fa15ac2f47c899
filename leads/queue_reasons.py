"""Why a lead is next in the work queue, in plain words from its own recent events:
"Asked for a demo yesterday; visited pricing 3 times this week".

Pure functions over (type, time, url) triples, tested without a database. The events
are the lead's own (what it did, not what a rep logged), of the last ``WINDOW``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.utils import timezone

from .models import ActivityType

WINDOW = dt.timedelta(days=7)
PHRASES_SHOWN = 3


@dataclass(frozen=True)
class Event:
    type: str
    at: dt.datetime
    url: str = ""


# What each kind of event says, most telling first: (key, what the lead did). An event's
# key is its type, or "pricing" for a view of a pricing page.
PHRASES: list[tuple[str, str]] = [
    (ActivityType.DEMO_REQUEST, "asked for a demo"),
    (ActivityType.QUOTE_REQUEST, "asked for a quote"),
    (ActivityType.TRIAL_SIGNUP, "signed up for a trial"),
    (ActivityType.EMAIL_REPLY, "replied to an email"),
    (ActivityType.FORM_SUBMISSION, "filled in a form"),
    ("pricing", "visited pricing"),
    (ActivityType.WEBINAR_ATTENDANCE, "attended a webinar"),
    (ActivityType.EVENT_ATTENDANCE, "came to an event"),
    (ActivityType.WEBINAR_REGISTRATION, "registered for a webinar"),
    (ActivityType.CONTENT_DOWNLOAD, "downloaded content"),
    (ActivityType.EMAIL_CLICK, "clicked a link in an email"),
    (ActivityType.PAGE_VIEW, "visited the site"),
    (ActivityType.SOCIAL_ENGAGEMENT, "engaged on social media"),
    (ActivityType.EMAIL_OPEN, "opened an email"),
]
RANK = {key: position for position, (key, _) in enumerate(PHRASES)}
SAYS = dict(PHRASES)


def event_key(event: Event) -> str:
    """What the event counts as: its type, or "pricing" for a pricing page view."""
    if event.type == ActivityType.PAGE_VIEW and "pricing" in urlsplit(event.url).path.lower():
        return "pricing"
    return str(event.type)


def how_often(count: int) -> str:
    """'once', 'twice', '3 times'."""
    if count == 1:
        return "once"
    if count == 2:
        return "twice"
    return f"{count} times"


def when(at: dt.datetime, *, now: dt.datetime) -> str:
    """A past moment as a person says it: 'today', 'yesterday', 'on Monday', or
    'N days ago' beyond a week, by the local calendar."""
    days = (timezone.localtime(now).date() - timezone.localtime(at).date()).days
    if days <= 0:
        return "today"
    if days == 1:
        return "yesterday"
    if days < 7:
        return f"on {timezone.localtime(at):%A}"
    return f"{days} days ago"


def reason_sentence(events: Iterable[Event], *, now: dt.datetime) -> str:
    """One sentence from the lead's events of the last week, most telling kind first:
    a kind seen once says when, a kind seen more often how often this week. Events
    older than ``WINDOW`` and kinds that say nothing of interest (bounces, notes, a
    rep's calls) are left out; "" when nothing is left."""
    counts: dict[str, int] = {}
    latest: dict[str, dt.datetime] = {}
    for event in events:
        key = event_key(event)
        if key not in RANK or not now - WINDOW <= event.at <= now + dt.timedelta(minutes=5):
            continue
        counts[key] = counts.get(key, 0) + 1
        latest[key] = max(latest.get(key, event.at), event.at)
    phrases = []
    for key in sorted(counts, key=RANK.__getitem__)[:PHRASES_SHOWN]:
        count = counts[key]
        if count == 1:
            phrases.append(f"{SAYS[key]} {when(latest[key], now=now)}")
        else:
            phrases.append(f"{SAYS[key]} {how_often(count)} this week")
    sentence = "; ".join(phrases)
    return sentence[:1].upper() + sentence[1:]


def duration_words(delta: dt.timedelta) -> str:
    """A span as a person says it, rounded down: '5 minutes', '1 hour', '3 days'."""
    minutes = max(int(abs(delta).total_seconds() // 60), 0)
    for size, unit in ((1440, "day"), (60, "hour"), (1, "minute")):
        if minutes >= size:
            amount = minutes // size
            return f"{amount} {unit}{'' if amount == 1 else 's'}"
    return "less than a minute"

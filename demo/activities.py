"""A lead's own activities, drawn as episodes tilted by its intent: browsing, newsletters,
content, webinars, hand-raises, trials, social and events."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from demo.catalogue import ASSETS, NEWSLETTERS, PAGE_KINDS, PAGES, WEBINARS
from demo.config import DAY, SITE
from demo.context import _Ctx
from demo.propensity import TILT, sigmoid
from demo.rows import ActivityRow, LeadRow
from leads.models import (
    ActivityType,
    Seniority,
    Source,
)


@dataclass(slots=True)
class Episode:
    """Activities that happen together (a browsing session, a webinar), with their
    offsets in seconds from the episode's start."""

    kind: str
    activities: list[ActivityRow]
    offsets: list[float]

    @property
    def span(self) -> float:
        return self.offsets[-1] if self.offsets else 0.0


# kind -> (base weight, intent tilt)
EPISODES: dict[str, tuple[float, float]] = {
    "browse": (40, 0.0),
    "newsletter": (26, 0.1),
    "content": (8, 0.4),
    "webinar": (5, 0.6),
    "hand_raise": (2.2, 1.5),
    "trial": (1.5, 1.0),
    "social": (5, 0.1),
    "event": (2, 0.3),
    "careers": (3, -1.2),
}


def _own_activities(ctx: _Ctx, lead: LeadRow, intent: float) -> list[Episode]:
    """The lead's own activities, drawn tilted by its latent intent, as episodes whose
    times are set once the journey is known (a hand-raise precedes the SQL move)."""
    rng = ctx.rng
    target = _activity_target(ctx, lead, intent)
    weights = dict(EPISODES)
    student = lead.seniority == Seniority.STUDENT
    bounced = lead.kind == "spam" and rng.random() < 0.5
    if bounced:
        weights["newsletter"] = (0, 0)
    if student:
        weights["careers"] = (15, -1.2)
    kinds = list(weights)
    cum: list[float] = []
    total = 0.0
    for weight, tilt in weights.values():
        total += weight * math.exp(TILT * intent * tilt)
        cum.append(total)
    episodes = [_first_episode(ctx, lead)] if lead.source not in _NO_FIRST_EPISODE else []
    count = sum(len(e.activities) for e in episodes)
    raised = False
    while count < target:
        kind = rng.choices(kinds, cum_weights=cum)[0]
        episode = _EPISODE_BUILDERS[kind](ctx, lead, intent)
        if kind == "hand_raise":
            if raised and rng.random() < 0.7:  # back on the pricing page, no new request
                _truncate(episode, 1)
            raised = True
        episodes.append(episode)
        count += len(episode.activities)
    if episodes and count > target > 0:
        _truncate(episodes[-1], len(episodes[-1].activities) - (count - target))
    if bounced:
        episodes.append(Episode("bounce", [ActivityRow(ActivityType.EMAIL_BOUNCE)], [0.0]))
    elif lead.kind != "spam" and rng.random() < sigmoid(-3.0 - 1.0 * intent):
        unsubscribe = ActivityRow(ActivityType.UNSUBSCRIBE, url=f"{SITE}/email/unsubscribe")
        episodes.append(Episode("unsubscribe", [unsubscribe], [0.0]))
    lead.activities = [a for e in episodes for a in e.activities]
    return episodes


_NO_FIRST_EPISODE = {Source.OUTBOUND, Source.IMPORT, Source.PARTNER, Source.REFERRAL}


def _activity_target(ctx: _Ctx, lead: LeadRow, intent: float) -> int:
    """How many of its own activities a lead has: heavy-tailed, more for the keen.

    Rep-logged activities add about half an activity per lead on average, and the
    first and closing episodes about one more, hence the offset.
    """
    if lead.kind == "spam":
        return ctx.rng.randint(0, 3)
    mean = max(ctx.config.activities_per_lead - 1.0, 0.5)
    draw = mean * ctx.rng.lognormvariate(-0.32, 0.8) * math.exp(0.25 * intent - 0.03)
    return max(0, round(draw))


def _truncate(episode: Episode, keep: int) -> None:
    del episode.activities[keep:]
    del episode.offsets[keep:]


def _first_episode(ctx: _Ctx, lead: LeadRow) -> Episode:
    """What made the lead: a form on the site, or a badge scanned at an event."""
    if lead.source == Source.EVENT:
        event = f"Hotlist Roadshow {lead.city}" if lead.city else "Trade fair booth"
        return Episode(
            "first", [ActivityRow(ActivityType.EVENT_ATTENDANCE, properties={"event": event})], [0]
        )
    form = ctx.rng.choice(("newsletter", "contact", "newsletter", "guide"))
    url = f"{SITE}/{form}"
    if lead.utm_source:
        url += f"?utm_source={lead.utm_source}&utm_medium={lead.utm_medium}"
    row = ActivityRow(ActivityType.FORM_SUBMISSION, url=url, properties={"form": form})
    return Episode("first", [row], [0])


def _page(ctx: _Ctx, kind: str, intent: float) -> ActivityRow:
    paths, _, tilt, seconds = PAGES[kind]
    duration = seconds * ctx.rng.lognormvariate(-0.3, 0.8) * math.exp(0.2 * intent * tilt)
    return ActivityRow(
        ActivityType.PAGE_VIEW,
        url=SITE + ctx.rng.choice(paths),
        duration_seconds=max(2, int(duration)),
    )


def _browse(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    """A visit of a few pages; keen leads drift to pricing, the others to the blog and jobs."""
    rng = ctx.rng
    pages = 1 + min(int(rng.expovariate(0.8)), 12)
    weights = [weight * math.exp(TILT * intent * tilt) for _, weight, tilt, _ in PAGES.values()]
    kinds = rng.choices(PAGE_KINDS, weights, k=pages)
    return _session("browse", [_page(ctx, kind, intent) for kind in kinds])


def _session(kind: str, rows: list[ActivityRow]) -> Episode:
    offsets, clock = [], 0.0
    for row in rows:
        offsets.append(clock)
        clock += (row.duration_seconds or 30) + 4
    return Episode(kind, rows, offsets)


def _careers(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    pages = 1 + min(int(ctx.rng.expovariate(1.0)), 4)
    return _session("careers", [_page(ctx, "careers", intent) for _ in range(pages)])


def _newsletter(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    rng = ctx.rng
    subject, path = rng.choice(NEWSLETTERS)
    props = {"email": subject}
    rows = [ActivityRow(ActivityType.EMAIL_OPEN, properties=props)]
    offsets = [0.0]
    if rng.random() < sigmoid(-1.3 + 1.1 * intent):
        link = f"{SITE}{path}?utm_source=hotlist&utm_medium=email&utm_campaign=newsletter"
        rows.append(ActivityRow(ActivityType.EMAIL_CLICK, url=link, properties=props))
        offsets.append(rng.uniform(5, 600))
        if rng.random() < 0.6:
            rows.append(
                ActivityRow(ActivityType.PAGE_VIEW, url=link, duration_seconds=rng.randint(10, 240))
            )
            offsets.append(offsets[-1] + 3)
    return Episode("newsletter", rows, offsets)


def _content(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    slug, title = ctx.rng.choice(ASSETS)
    rows = [
        ActivityRow(
            ActivityType.FORM_SUBMISSION,
            url=f"{SITE}/resources/{slug}",
            properties={"form": "content", "asset": title},
        ),
        ActivityRow(
            ActivityType.CONTENT_DOWNLOAD,
            url=f"{SITE}/downloads/{slug}.pdf",
            properties={"asset": title},
        ),
    ]
    return Episode("content", rows, [0.0, 8.0])


def _webinar(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    rng = ctx.rng
    slug, title = rng.choice(WEBINARS)
    props = {"webinar": title}
    url = f"{SITE}/webinars/{slug}"
    rows = [ActivityRow(ActivityType.WEBINAR_REGISTRATION, url=url, properties=props)]
    offsets = [0.0]
    if rng.random() < sigmoid(-0.2 + 1.1 * intent):
        minutes = min(60, max(3, int(rng.gauss(35 + 8 * intent, 12))))
        rows.append(
            ActivityRow(
                ActivityType.WEBINAR_ATTENDANCE,
                url=url,
                duration_seconds=minutes * 60,
                properties=props,
            )
        )
        offsets.append(rng.uniform(1, 12) * DAY)
    return Episode("webinar", rows, offsets)


def _hand_raise(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    """A pricing visit ending in a demo or quote request."""
    rng = ctx.rng
    pricing = _page(ctx, "pricing", intent)
    large = (lead.company.employee_count if lead.company else 0) or 0
    if large >= 200 and rng.random() < 0.5:
        request = ActivityRow(
            ActivityType.QUOTE_REQUEST,
            url=f"{SITE}/pricing/enterprise/quote",
            properties={"form": "quote", "seats": max(5, large // rng.randint(8, 30))},
        )
    else:
        request = ActivityRow(
            ActivityType.DEMO_REQUEST, url=f"{SITE}/demo", properties={"form": "demo"}
        )
    return Episode("hand_raise", [pricing, request], [0.0, (pricing.duration_seconds or 60) + 5])


def _trial(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    features = _page(ctx, "features", intent)
    signup = ActivityRow(
        ActivityType.TRIAL_SIGNUP, url=f"{SITE}/signup", properties={"plan": "team-trial"}
    )
    return Episode("trial", [features, signup], [0.0, (features.duration_seconds or 30) + 5])


def _social(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    rng = ctx.rng
    post = rng.randint(7_100_000_000_000_000_000, 7_299_999_999_999_999_999)
    row = ActivityRow(
        ActivityType.SOCIAL_ENGAGEMENT,
        url=f"https://www.linkedin.com/feed/update/urn:li:activity:{post}",
        properties={"network": "linkedin", "action": rng.choice(("like", "comment", "share"))},
    )
    return Episode("social", [row], [0.0])


def _event(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    event = ctx.rng.choice(("SaaS Summit", "Sales Leaders Forum", "Marketing Ops Meetup"))
    row = ActivityRow(ActivityType.EVENT_ATTENDANCE, properties={"event": event})
    return Episode("event", [row], [0.0])


_EPISODE_BUILDERS: dict[str, Callable[[_Ctx, LeadRow, float], Episode]] = {
    "browse": _browse,
    "newsletter": _newsletter,
    "content": _content,
    "webinar": _webinar,
    "hand_raise": _hand_raise,
    "trial": _trial,
    "social": _social,
    "event": _event,
    "careers": _careers,
}

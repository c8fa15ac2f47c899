"""The hidden propensity model.

Every lead gets a latent fit (partly shared with its company) and a latent intent; how
far it gets down the funnel, and whether its deal is won, is drawn from a logistic
function of ``hidden_fit`` and ``hidden_behaviour`` of what was generated, plus noise.
Both functions read only stored values, so a test (or a data scientist) can recompute
them from the database."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from urllib.parse import urlsplit

from demo.catalogue import SIZE_BUCKETS
from demo.config import DEFAULT_ACTIVITIES_PER_LEAD
from leads.models import (
    ActivityType,
    Authority,
    Budget,
    Department,
    Industry,
    Need,
    Seniority,
    Timeline,
)

INDUSTRY_FIT: dict[str, float] = {
    Industry.SOFTWARE: 0.6,
    Industry.FINANCE: 0.5,
    Industry.LOGISTICS: 0.5,
    Industry.MANUFACTURING: 0.4,
    Industry.HEALTHCARE: 0.3,
    Industry.CONSULTING: 0.2,
    Industry.RETAIL: 0.1,
    Industry.MEDIA: 0.0,
    Industry.OTHER: -0.3,
    Industry.GOVERNMENT: -0.3,
    Industry.EDUCATION: -0.5,
    Industry.NONPROFIT: -0.6,
    "": -0.4,
}
UNKNOWN_SIZE_FIT = -0.4
SENIORITY_FIT: dict[str, float] = {
    Seniority.C_LEVEL: 0.5,
    Seniority.VP: 0.7,
    Seniority.DIRECTOR: 0.6,
    Seniority.MANAGER: 0.3,
    Seniority.INDIVIDUAL: -0.2,
    Seniority.STUDENT: -1.5,
    Seniority.UNKNOWN: -0.4,
}
DEPARTMENT_FIT: dict[str, float] = {
    Department.SALES: 0.3,
    Department.MARKETING: 0.3,
    Department.EXECUTIVE: 0.2,
    Department.IT: 0.1,
    Department.OPERATIONS: 0.0,
    Department.ENGINEERING: -0.1,
    Department.FINANCE: -0.1,
    Department.HR: -0.3,
    Department.OTHER: -0.2,
    Department.UNKNOWN: -0.2,
}
BUDGET_FIT: dict[str, float] = {
    Budget.OVER_250K: 0.6,
    Budget.FROM_50K: 0.6,
    Budget.FROM_10K: 0.3,
    Budget.UNDER_10K: -0.3,
    Budget.NONE: -0.9,
    Budget.UNKNOWN: 0.0,
}
AUTHORITY_FIT: dict[str, float] = {
    Authority.DECISION_MAKER: 0.6,
    Authority.INFLUENCER: 0.3,
    Authority.USER: -0.1,
    Authority.NONE: -0.6,
    Authority.UNKNOWN: 0.0,
}
NEED_FIT: dict[str, float] = {
    Need.HIGH: 0.7,
    Need.MEDIUM: 0.3,
    Need.LOW: -0.3,
    Need.NONE: -0.9,
    Need.UNKNOWN: 0.0,
}
TIMELINE_FIT: dict[str, float] = {
    Timeline.NOW: 0.6,
    Timeline.QUARTER: 0.5,
    Timeline.HALF_YEAR: 0.2,
    Timeline.YEAR: 0.0,
    Timeline.LATER: -0.6,
    Timeline.UNKNOWN: 0.0,
}
# What a lead's own behaviour says, per signal, for log(1 + count) occurrences.
# Rep-logged activities (calls, meetings, notes, replies to a rep) are consequences of
# the funnel, not behaviour, and count for nothing.
BEHAVIOUR_WEIGHTS: dict[str, float] = {
    "pricing_view": 0.9,
    "careers_view": -1.0,
    "page_view": 0.05,
    ActivityType.EMAIL_OPEN: 0.1,
    ActivityType.EMAIL_CLICK: 0.6,
    ActivityType.EMAIL_BOUNCE: -1.0,
    ActivityType.FORM_SUBMISSION: 0.2,
    ActivityType.CONTENT_DOWNLOAD: 0.4,
    ActivityType.WEBINAR_REGISTRATION: 0.3,
    ActivityType.WEBINAR_ATTENDANCE: 0.8,
    ActivityType.DEMO_REQUEST: 1.8,
    ActivityType.QUOTE_REQUEST: 1.6,
    ActivityType.TRIAL_SIGNUP: 1.0,
    ActivityType.SOCIAL_ENGAGEMENT: 0.1,
    ActivityType.EVENT_ATTENDANCE: 0.4,
    ActivityType.UNSUBSCRIBE: -1.5,
}
# How hard the latent fit and intent pull generated values towards good ones.
TILT = 1.0
# Where the funnel's odds are even: typical hidden values of a lead in the middle.
FIT_CENTER = 0.2
BEHAVIOUR_CENTER = 1.6
# Logistic intercepts per funnel step, and the weight of the hidden propensity.
# Getting through the funnel is mostly engagement; closing leans on fit (budget,
# authority, size) more than on clicks.
MQL_BIAS, SQL_BIAS, OPPORTUNITY_BIAS = 0.3, -1.2, -0.7
FUNNEL_FIT_SLOPE, FUNNEL_BEHAVIOUR_SLOPE = 0.7, 1.0
# The win bias is low because the leads that get this far are already the likelier ones.
WIN_BIAS, WIN_FIT_SLOPE, WIN_BEHAVIOUR_SLOPE, WIN_NOISE = -3.6, 1.5, 0.8, 0.7


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def size_fit(employee_count: int | None) -> float:
    if employee_count is None:
        return UNKNOWN_SIZE_FIT
    for smallest, _, _, fit in reversed(SIZE_BUCKETS):
        if employee_count >= smallest:
            return fit
    return SIZE_BUCKETS[0][3]


def hidden_fit(
    *,
    industry: str,
    employee_count: int | None,
    seniority: str,
    department: str,
    budget: str,
    authority: str,
    need: str,
    timeline: str,
) -> float:
    """How well a lead fits the ideal customer, from its stored attributes.

    ``industry`` and ``employee_count`` are the company's ("" and None without one).
    A sum of per-attribute weights, unknown answers counting nothing: from about -6
    for a student at a tiny non-profit with no budget or need, to about +5 for a VP
    of Sales at a mid-sized software company with budget, buying now.
    """
    return (
        INDUSTRY_FIT.get(industry, 0.0)
        + size_fit(employee_count)
        + SENIORITY_FIT.get(seniority, 0.0)
        + DEPARTMENT_FIT.get(department, 0.0)
        + BUDGET_FIT.get(budget, 0.0)
        + AUTHORITY_FIT.get(authority, 0.0)
        + NEED_FIT.get(need, 0.0)
        + TIMELINE_FIT.get(timeline, 0.0)
    )


def behaviour_signal(activity_type: str, url: str) -> str | None:
    """The behaviour an activity shows: its type, or the kind of page it viewed."""
    if activity_type == ActivityType.PAGE_VIEW:
        path = urlsplit(url).path
        if path.startswith("/pricing"):
            return "pricing_view"
        if path.startswith("/careers"):
            return "careers_view"
        return "page_view"
    return activity_type if activity_type in BEHAVIOUR_WEIGHTS else None


def hidden_behaviour(activities: Iterable[tuple[str, str]]) -> float:
    """How much a lead's own activities say it wants to buy, from ``(type, url)`` pairs.

    Each signal counts ``weight * log(1 + occurrences)``: the first pricing visit
    says more than the tenth. Pricing visits, demo and quote requests, webinars and
    email clicks weigh most; opens barely; careers visits and unsubscribes subtract.
    """
    signals = (behaviour_signal(kind, url) for kind, url in activities)
    counts = Counter(signal for signal in signals if signal is not None)
    return sum(BEHAVIOUR_WEIGHTS[signal] * math.log1p(n) for signal, n in counts.items())


def behaviour_scale(activities_per_lead: float) -> float:
    """How much longer a trail the same intent leaves in a world with more tracking.

    Hidden behaviour grows about as ``activities_per_lead ** 0.85`` (measured on
    generated worlds); dividing by this keeps the funnel's shape whatever the rate.
    """
    return (max(activities_per_lead, 1.0) / DEFAULT_ACTIVITIES_PER_LEAD) ** 0.85


def propensity(fit: float, behaviour: float, scale: float = 1.0) -> float:
    """The log-odds shift that fit and behaviour give a lead at every funnel step."""
    return FUNNEL_FIT_SLOPE * (fit - FIT_CENTER) + FUNNEL_BEHAVIOUR_SLOPE * (
        behaviour / scale - BEHAVIOUR_CENTER
    )


def win_odds(fit: float, behaviour: float, noise: float, scale: float = 1.0) -> float:
    """The log-odds of winning an opportunity's deal."""
    return (
        WIN_BIAS
        + WIN_FIT_SLOPE * (fit - FIT_CENTER)
        + WIN_BEHAVIOUR_SLOPE * (behaviour / scale - BEHAVIOUR_CENTER)
        + noise
    )

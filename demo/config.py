"""What a demo world is built from: its size, seed and time anchor, and the constants
every part of the generator shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

DEFAULT_LEADS = 2000
DEFAULT_SEED = 42
DEFAULT_ACTIVITIES_PER_LEAD = 12.0
DEFAULT_BATCH_SIZE = 2000
# From this many leads on, PostgreSQL gets its rows through COPY instead of INSERT.
COPY_THRESHOLD = 50_000
HISTORY_DAYS = 180
DEMO_PASSWORD = "hotlist"
ACTIVITY_SOURCE = "demo"
SITE = "https://hotlist.example"
# How far the tracking pipeline lags behind the event it records.
RECEIVE_DELAY = timedelta(seconds=3)

DAY = 86_400.0
HOUR = 3_600.0


class DemoWorldExists(Exception):
    """The database holds leads already; the demo world is only seeded into an empty one."""


@dataclass(frozen=True)
class DemoConfig:
    leads: int = DEFAULT_LEADS
    seed: int = DEFAULT_SEED
    now: datetime = field(default_factory=lambda: day_start(timezone.now()))
    activities_per_lead: float = DEFAULT_ACTIVITIES_PER_LEAD
    batch_size: int = DEFAULT_BATCH_SIZE


def day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)

"""The demo world: a deterministic, realistic CRM that ``manage.py seed_demo`` writes.

Outcomes come from a hidden propensity model. Every lead first gets a latent fit
(partly shared with its company) and a latent intent; its attributes are drawn
tilted by the fit and its activities tilted by the intent. How far it gets down
the funnel, and whether its deal is won, is then drawn from a logistic function
of ``hidden_fit`` and ``hidden_behaviour`` of what was generated, plus noise.
Both functions read only stored values, so a test (or a data scientist) can
recompute them from the database, and scoring rules built on the same
attributes and activities find real signal.

Determinism: all randomness comes from one ``random.Random(seed)`` consumed in
lead order, and every time is an offset from an anchor ``now`` passed in, so the
same seed, lead count, activity rate and anchor give the same world whatever the
batch size or database. Nothing here reads the database ids it is given to draw
anything.

Writing streams chunks of whole companies with their leads: ``bulk_create`` on
any database, ``COPY`` on PostgreSQL for big worlds, so memory stays bounded
whatever the number of leads.

The parts, each in its own module: ``config`` (sizes and shared constants), ``places``
and ``catalogue`` (reference data), ``propensity`` (the hidden model), ``cast`` (users,
team, territories), ``rows`` (what generation produces), ``generate`` with ``people``,
``activities``, ``funnel`` and ``sales_work`` (drawing a lead's life), ``writers``
(bulk inserts and COPY). This module runs the whole seeding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection, reset_queries, transaction
from django.utils import timezone

from demo.cast import demo_cast_ensure
from demo.config import (
    COPY_THRESHOLD,
    DEFAULT_ACTIVITIES_PER_LEAD,
    DEFAULT_BATCH_SIZE,
    DEFAULT_LEADS,
    DEFAULT_SEED,
    DemoConfig,
    DemoWorldExists,
    day_start,
)
from demo.generate import generate_world
from demo.rows import LeadBundle
from demo.writers import BulkWriter, CopyWriter, write_groups
from leads.models import (
    Lead,
)


@dataclass
class DemoSummary:
    companies: int = 0
    leads: int = 0
    activities: int = 0
    deals: Counter[str] = field(default_factory=Counter)
    stages: Counter[str] = field(default_factory=Counter)
    used_copy: bool = False
    seconds: float = 0.0

    def add(self, group: LeadBundle) -> None:
        self.companies += group.company is not None
        for lead in group.leads:
            self.leads += 1
            self.activities += len(lead.activities)
            self.stages[lead.stage] += 1
            self.deals.update(deal.status for deal in lead.deals)


def demo_seed(
    *,
    leads: int = DEFAULT_LEADS,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
    activities_per_lead: float = DEFAULT_ACTIVITIES_PER_LEAD,
    batch_size: int = DEFAULT_BATCH_SIZE,
    copy: bool | None = None,
) -> DemoSummary:
    """Create the demo cast and write a world of ``leads`` leads, in one transaction.

    ``now`` anchors every time (default: the start of today, UTC). ``copy`` forces
    (True) or forbids (False) PostgreSQL COPY; by default COPY is used on PostgreSQL
    from ``COPY_THRESHOLD`` leads on. Raises ``DemoWorldExists`` when there are leads
    already, and ``ValueError`` for COPY on another database.
    """
    on_postgres = connection.vendor == "postgresql"
    if copy and not on_postgres:
        raise ValueError("COPY needs PostgreSQL.")
    use_copy = copy if copy is not None else on_postgres and leads >= COPY_THRESHOLD
    config = DemoConfig(
        leads=leads,
        seed=seed,
        now=now or day_start(timezone.now()),
        activities_per_lead=activities_per_lead,
        batch_size=max(1, batch_size),
    )
    started = timezone.now()
    summary = DemoSummary(used_copy=use_copy)
    with transaction.atomic():
        if Lead.objects.exists():
            raise DemoWorldExists("The database has leads already.")
        cast = demo_cast_ensure()
        writer = CopyWriter() if use_copy else BulkWriter(config.batch_size)
        for chunk in chunked_groups(generate_world(config, cast), config.batch_size):
            write_groups(chunk, writer)
            for group in chunk:
                summary.add(group)
            reset_queries()  # with DEBUG on, Django keeps every INSERT's SQL otherwise
    summary.seconds = (timezone.now() - started).total_seconds()
    return summary


def chunked_groups(
    groups: Iterable[LeadBundle], leads_per_chunk: int
) -> Iterator[list[LeadBundle]]:
    """Whole groups, about ``leads_per_chunk`` leads at a time."""
    chunk: list[LeadBundle] = []
    size = 0
    for group in groups:
        chunk.append(group)
        size += len(group.leads)
        if size >= leads_per_chunk:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def parse_anchor(value: str | datetime) -> datetime:
    """An ISO date or datetime as an aware datetime; naive values are taken as UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)

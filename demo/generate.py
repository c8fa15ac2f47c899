"""Generation: the demo world as groups (a company with its leads, or a lone lead).

Pure: touches no database. All randomness comes from one ``random.Random(seed)``
consumed in lead order, so the same config and cast give the same groups."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from datetime import datetime

from demo.activities import Episode, _own_activities
from demo.cast import DemoCast
from demo.catalogue import COMPANY_STEMS, INDUSTRIES
from demo.config import DAY, HISTORY_DAYS, HOUR, RECEIVE_DELAY, DemoConfig
from demo.context import _after, _Ctx
from demo.funnel import _journey, _Path
from demo.people import (
    EMAIL_PATTERN_WEIGHTS,
    EMAIL_PATTERNS,
    _company,
    _country_of,
    _custom_fields,
    _email,
    _interests,
    _marketing,
    _person,
    _place,
)
from demo.places import COUNTRIES, COUNTRY_WEIGHTS, NAMES
from demo.rows import (
    ActivityRow,
    CompanyRow,
    DealRow,
    LeadBundle,
    LeadRow,
    NoteRow,
    StageChangeRow,
    TaskRow,
)
from demo.sales_work import _follow_up
from leads.models import (
    ActivityType,
    DealOutcome,
    EmailStatus,
    Stage,
    furthest_step_of,
)


def generate_world(config: DemoConfig, cast: DemoCast) -> Iterator[LeadBundle]:
    """Yield the demo world as groups (a company with its leads, or a lone lead).

    Pure: touches no database. The same config and cast give the same groups.
    """
    rng = random.Random(config.seed)
    name_orders = {
        industry: _shuffled(rng, len(COMPANY_STEMS) * len(profile.words))
        for industry, profile in INDUSTRIES.items()
    }
    ctx = _Ctx(config=config, cast=cast, rng=rng, name_orders=name_orders)
    while ctx.serial < config.leads:
        yield _group(ctx)


def _shuffled(rng: random.Random, n: int) -> list[int]:
    order = list(range(n))
    rng.shuffle(order)
    return order


def _group(ctx: _Ctx) -> LeadBundle:
    """Mostly a company with a few leads (more for bigger companies); sometimes a lone
    spammer, competitor or private person with a free-mail address."""
    roll = ctx.rng.random()
    if roll < 0.03:
        return LeadBundle(None, [_lead(ctx, "spam", None)])
    if roll < 0.04:
        return LeadBundle(None, [_lead(ctx, "competitor", None)])
    if roll < 0.11:
        return LeadBundle(None, [_lead(ctx, "private", None)])
    company, company_fit = _company(ctx)
    size = company.employee_count or 20
    mean_extra = 0.3 + 0.35 * math.log10(size)
    count = 1 + min(int(ctx.rng.expovariate(1 / mean_extra)), 40)
    count = min(count, ctx.config.leads - ctx.serial)
    pattern = ctx.rng.choices(EMAIL_PATTERNS, EMAIL_PATTERN_WEIGHTS)[0]
    taken: set[str] = set()
    leads = [
        _lead(ctx, "company", company, company_fit, pattern=pattern, taken=taken)
        for _ in range(count)
    ]
    company.created_at = min(lead.created_at for lead in leads)
    return LeadBundle(company, leads)


def _lead(
    ctx: _Ctx,
    kind: str,
    company: CompanyRow | None,
    company_fit: float = -1.0,  # no company to speak of: a worse fit
    *,
    pattern: Callable[[str, str], str] | None = None,
    taken: set[str] | None = None,
) -> LeadRow:
    rng = ctx.rng
    serial = ctx.serial
    ctx.serial += 1
    fit = 0.6 * company_fit + 0.8 * rng.gauss(0, 1)
    intent = 0.3 * fit + 0.95 * rng.gauss(0, 1)
    country = _country_of(company) if company else rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0]
    firsts, lasts = NAMES[country.names]
    first, last = rng.choice(firsts), rng.choice(lasts)
    age = HISTORY_DAYS * DAY * rng.random() ** 1.15 + HOUR
    lead = LeadRow(
        serial=serial,
        kind=kind,
        company=company,
        first_name=first,
        last_name=last,
        email="",
        created_at=ctx.at(age),
    )
    _place(ctx, lead, country)
    _person(ctx, lead, fit, company)
    lead.email = _email(ctx, lead, pattern, taken)
    _marketing(ctx, lead, intent)
    _interests(ctx, lead)
    _custom_fields(ctx, lead)
    episodes = _own_activities(ctx, lead, intent)
    path = _journey(ctx, lead)
    _follow_up(ctx, lead, path)
    _episode_times(ctx, lead, path, episodes)
    _finish(ctx, lead)
    return lead


def _episode_times(ctx: _Ctx, lead: LeadRow, path: _Path, episodes: list[Episode]) -> None:
    """Spread the lead's own episodes over its life: the first at creation, a hand-raise
    just before sales accepted it, unsubscribing after the last newsletter, nothing of
    a customer's or a lost lead's shopping after its deal closed."""
    rng = ctx.rng
    start = lead.created_at
    end = path.exit_at if path.exit_at and lead.deals else ctx.now
    span = max((end - start).total_seconds(), 0.0)
    starts: dict[int, float] = {}
    hand_raise_done = False
    for index, episode in enumerate(episodes):
        latest = max(span - episode.span, 0.0)
        if episode.kind == "first":
            starts[index] = 0.0
        elif episode.kind == "hand_raise" and path.sql_at and not hand_raise_done:
            before = (path.sql_at - start).total_seconds() - rng.uniform(HOUR, 3 * DAY)
            starts[index] = min(max(before, 0.0), latest)
            hand_raise_done = True
        elif episode.kind == "unsubscribe":
            continue
        else:
            starts[index] = rng.uniform(0, latest)
    mails = [s + episodes[i].span for i, s in starts.items() if episodes[i].kind == "newsletter"]
    for index, episode in enumerate(episodes):
        if episode.kind == "unsubscribe":
            after = max(mails, default=rng.uniform(0, span)) + rng.uniform(60, 2 * DAY)
            starts[index] = min(after, span)
    for index, episode in enumerate(episodes):
        base = _after(start, starts[index])
        for row, offset in zip(episode.activities, episode.offsets, strict=True):
            row.occurred_at = min(_after(base, offset), ctx.now)


def _finish(ctx: _Ctx, lead: LeadRow) -> None:
    """Sort the activities, key them, and derive the lead's summary fields from them."""
    activities = lead.activities
    activities.sort(key=_occurred)
    prefix = f"{ctx.config.seed}:{lead.serial}:"
    for n, activity in enumerate(activities):
        activity.lead = lead
        activity.idempotency_key = prefix + str(n)
        assert activity.occurred_at is not None
        activity.received_at = activity.occurred_at + RECEIVE_DELAY
    if activities:
        lead.first_activity_at = activities[0].occurred_at
        lead.last_activity_at = activities[-1].occurred_at
    kinds = {a.type for a in activities}
    if ActivityType.EMAIL_BOUNCE in kinds:
        lead.email_status = EmailStatus.BOUNCED
    elif ActivityType.UNSUBSCRIBE in kinds:
        lead.email_status = EmailStatus.UNSUBSCRIBED
    lead.stage = lead.stage_changes[-1].to_stage if lead.stage_changes else Stage.NEW
    lead.stage_changed_at = lead.stage_changes[-1].at if lead.stage_changes else lead.created_at
    changes = [(change.from_stage, change.to_stage) for change in lead.stage_changes]
    lead.furthest_step = furthest_step_of(lead.stage, changes)
    lead.deal_outcome = DealOutcome.of(deal.status for deal in lead.deals)
    children: list[StageChangeRow | DealRow | TaskRow | NoteRow] = [
        *lead.stage_changes,
        *lead.deals,
        *lead.tasks,
        *lead.notes,
    ]
    for row in children:
        row.lead = lead


def _occurred(activity: ActivityRow) -> datetime:
    assert activity.occurred_at is not None
    return activity.occurred_at

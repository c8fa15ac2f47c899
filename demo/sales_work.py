"""Sales work: what the owner does with a lead from SQL on (calls, meetings, notes and
tasks)."""

from __future__ import annotations

from datetime import datetime

from demo.config import DAY, HOUR
from demo.context import _after, _between, _Ctx, _uniform_time
from demo.funnel import _Path
from demo.rows import ActivityRow, LeadRow, NoteRow, TaskRow
from leads.models import (
    ActivityType,
    Budget,
    DealStatus,
    Stage,
    TaskKind,
    Timeline,
)


def _follow_up(ctx: _Ctx, lead: LeadRow, path: _Path) -> None:
    """What the owner did with the lead from SQL on: calls, meetings, notes and tasks."""
    if path.sql_at is None or lead.owner_id is None:
        return
    rng = ctx.rng
    owner = lead.owner_id
    end = path.exit_at or ctx.now
    start = path.sql_at
    first_call = _between(ctx, start, _after(start, rng.uniform(0.5, 48) * HOUR), end)
    _call(ctx, lead, first_call, connected=True)
    lead.tasks.append(
        TaskRow(
            owner,
            f"Intro call with {lead.first_name or 'the lead'}",
            TaskKind.CALL,
            first_call,
            first_call,
            start,
        )
    )
    for _ in range(min(int(rng.expovariate(1 / 1.5)), 6)):
        _call(ctx, lead, _uniform_time(ctx, start, end), connected=rng.random() < 0.5)
    if rng.random() < 0.6:
        lead.activities.append(
            ActivityRow(
                ActivityType.EMAIL_REPLY,
                created_by_id=owner,
                properties={"subject": "Re: Hotlist for your team"},
                occurred_at=_uniform_time(ctx, start, end),
            )
        )
    _note(
        ctx, lead, min(_after(first_call, rng.uniform(5, 40) * 60), end), _qualification_note(lead)
    )
    if path.opportunity_at:
        _opportunity_work(ctx, lead, path, end)
    _open_task(ctx, lead, path)


def _opportunity_work(ctx: _Ctx, lead: LeadRow, path: _Path, end: datetime) -> None:
    rng = ctx.rng
    opened = path.opportunity_at
    owner = lead.owner_id
    assert opened is not None
    assert path.sql_at is not None
    assert owner is not None
    discovery = _between(ctx, path.sql_at, _after(opened, -rng.uniform(2, 72) * HOUR), opened)
    _meeting(ctx, lead, discovery, "Discovery call", 45)
    demo = _after(opened, rng.uniform(1, 8) * DAY)
    if demo <= end:
        _meeting(ctx, lead, demo, "Product demo", 60)
    deal = lead.deals[0]
    if deal.status == DealStatus.WON:
        assert deal.closed_at is not None
        _note(ctx, lead, deal.closed_at, f"Signed {deal.name} for {deal.amount:,.0f} EUR.")
        kickoff = _after(deal.closed_at, rng.uniform(2, 10) * DAY)
        done = kickoff if kickoff <= ctx.now else None
        if done:
            _meeting(ctx, lead, kickoff, "Kick-off", 60)
        title = f"Kick-off with {deal.name.rpartition(': ')[0]}"
        lead.tasks.append(TaskRow(owner, title, TaskKind.MEETING, kickoff, done, deal.closed_at))
    elif deal.status == DealStatus.LOST:
        assert deal.closed_at is not None
        _note(ctx, lead, deal.closed_at, f"Lost: {deal.lost_reason}.")


def _open_task(ctx: _Ctx, lead: LeadRow, path: _Path) -> None:
    rng = ctx.rng
    name = lead.first_name or "the lead"
    if path.stage == Stage.SQL:
        title, kind = f"Call {name} to qualify", TaskKind.CALL
    elif path.stage == Stage.OPPORTUNITY:
        title, kind = rng.choice(
            (
                (f"Send the proposal to {name}", TaskKind.EMAIL),
                (f"Follow up on the demo with {name}", TaskKind.FOLLOW_UP),
            )
        )
    elif path.stage == Stage.RECYCLED:
        title, kind = f"Check back with {name}", TaskKind.FOLLOW_UP
        due = _after(path.at, rng.uniform(60, 120) * DAY)
        lead.tasks.append(TaskRow(lead.owner_id or 0, title, kind, due, None, path.at))
        return
    else:
        return
    created = max(path.at, _after(ctx.now, -rng.uniform(0, 6) * DAY))
    due = _after(ctx.now, rng.uniform(-5, 10) * DAY)
    lead.tasks.append(TaskRow(lead.owner_id or 0, title, kind, due, None, created))


def _call(ctx: _Ctx, lead: LeadRow, at: datetime, *, connected: bool) -> None:
    rng = ctx.rng
    outcome = "connected" if connected else rng.choice(("voicemail", "no answer"))
    lead.activities.append(
        ActivityRow(
            ActivityType.CALL,
            duration_seconds=rng.randint(180, 1800) if connected else rng.randint(10, 60),
            properties={"outcome": outcome},
            created_by_id=lead.owner_id,
            occurred_at=at,
        )
    )


def _meeting(ctx: _Ctx, lead: LeadRow, at: datetime, title: str, minutes: int) -> None:
    lead.activities.append(
        ActivityRow(
            ActivityType.MEETING,
            duration_seconds=minutes * 60,
            properties={"title": title},
            created_by_id=lead.owner_id,
            occurred_at=at,
        )
    )


def _note(ctx: _Ctx, lead: LeadRow, at: datetime, body: str) -> None:
    """A rep's note, and its line on the lead's timeline."""
    lead.notes.append(NoteRow(lead.owner_id, body, at))
    lead.activities.append(
        ActivityRow(
            ActivityType.NOTE,
            properties={"text": body[:200]},
            created_by_id=lead.owner_id,
            occurred_at=at,
        )
    )


def _qualification_note(lead: LeadRow) -> str:
    parts = [f"Spoke with {lead.first_name or 'the lead'}"]
    if lead.job_title:
        parts[0] += f" ({lead.job_title})"
    if lead.budget:
        parts.append(f"budget {Budget(lead.budget).label.lower()}")
    if lead.timeline:
        parts.append(f"timeline: {Timeline(lead.timeline).label.lower()}")
    crm = lead.custom_fields.get("crm_in_use")
    if crm:
        parts.append(f"uses {crm} today")
    return "; ".join(parts) + "."

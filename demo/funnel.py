"""The funnel: how far a lead gets (MQL, SQL, opportunity, customer), why it stops,
who owns it and what its deal is worth."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from demo.catalogue import LOST_REASONS, PRODUCT_LINES, SQL_EXIT_REASONS
from demo.config import DAY
from demo.context import _after, _Ctx
from demo.propensity import (
    MQL_BIAS,
    OPPORTUNITY_BIAS,
    SQL_BIAS,
    WIN_NOISE,
    propensity,
    sigmoid,
    win_odds,
)
from demo.rows import DealRow, LeadRow, StageChangeRow
from leads.models import (
    ActivityType,
    DealStatus,
    Seniority,
    Stage,
)

# A deal is expected to close this long after it opens, and moves a stage on this often.
DEAL_CYCLE = timedelta(days=45)
STAGE_STEP = timedelta(days=12)


@dataclass(slots=True)
class _Path:
    """Where the lead's journey has got to while it is being drawn."""

    stage: str
    at: datetime
    sql_at: datetime | None = None
    opportunity_at: datetime | None = None
    exit_at: datetime | None = None


def _journey(ctx: _Ctx, lead: LeadRow) -> _Path:
    """Walk the lead down the funnel: each step taken with logistic odds in its hidden
    fit and behaviour, and only if it would have happened before the anchor."""
    rng = ctx.rng
    lift = propensity(lead.fit(), lead.behaviour(), ctx.behaviour_scale)
    path = _Path(Stage.NEW, lead.created_at)
    if rng.random() < _early_exit_odds(lead, lift):
        reason = _early_exit_reason(lead)
        _move(
            ctx,
            lead,
            path,
            Stage.DISQUALIFIED,
            rng.expovariate(1 / 3) + 0.05,
            by=ctx.cast.marketer_id,
            reason=reason,
        )
    elif rng.random() < sigmoid(MQL_BIAS + lift) and _move(
        ctx, lead, path, Stage.MQL, rng.expovariate(1 / 4) + 0.1, reason=_mql_reason(lead)
    ):
        _from_mql(ctx, lead, path, lift)
    return path


def _early_exit_odds(lead: LeadRow, lift: float) -> float:
    if lead.kind == "spam":
        return 0.85
    if lead.kind == "competitor":
        return 0.8
    if lead.seniority == Seniority.STUDENT:
        return 0.5
    return sigmoid(-3.2 - 0.8 * lift)


def _early_exit_reason(lead: LeadRow) -> str:
    if lead.kind == "spam":
        return "Spam or fake sign-up"
    if lead.kind == "competitor":
        return "Competitor"
    if lead.seniority == Seniority.STUDENT:
        return "Student, not a buyer"
    return "Not a fit"


def _mql_reason(lead: LeadRow) -> str:
    if any(a.type in _HAND_RAISES for a in lead.activities):
        return "Asked for a demo or a quote"
    return "Reached the MQL threshold"


_HAND_RAISES = {ActivityType.DEMO_REQUEST, ActivityType.QUOTE_REQUEST, ActivityType.TRIAL_SIGNUP}


def _move(
    ctx: _Ctx,
    lead: LeadRow,
    path: _Path,
    stage: str,
    after_days: float,
    *,
    by: int | None = None,
    reason: str = "",
) -> bool:
    """Record a move ``after_days`` after the current stage began, unless that is past the
    anchor (the lead is still on its way); say whether the move happened."""
    at = _after(path.at, after_days * DAY)
    if at > ctx.now:
        return False
    lead.stage_changes.append(StageChangeRow(path.stage, stage, at, by, reason))
    path.stage, path.at = stage, at
    if stage in (Stage.CUSTOMER, Stage.DISQUALIFIED, Stage.RECYCLED):
        path.exit_at = at
    if stage == Stage.DISQUALIFIED:
        lead.disqualification_reason = reason
    return True


def _from_mql(ctx: _Ctx, lead: LeadRow, path: _Path, lift: float) -> None:
    rng = ctx.rng
    owner = _owner(ctx, lead)
    if rng.random() < sigmoid(SQL_BIAS + lift):
        if _move(
            ctx,
            lead,
            path,
            Stage.SQL,
            rng.expovariate(1 / 6) + 0.2,
            by=owner,
            reason="Accepted by sales",
        ):
            lead.owner_id = owner
            path.sql_at = path.at
            _from_sql(ctx, lead, path, lift, owner)
        return
    if rng.random() < 0.5:
        _move(
            ctx,
            lead,
            path,
            Stage.RECYCLED,
            rng.uniform(30, 75),
            reason="No engagement after nurture",
        )


def _from_sql(ctx: _Ctx, lead: LeadRow, path: _Path, lift: float, owner: int) -> None:
    rng = ctx.rng
    if rng.random() < sigmoid(OPPORTUNITY_BIAS + lift):
        if _move(
            ctx,
            lead,
            path,
            Stage.OPPORTUNITY,
            rng.expovariate(1 / 9) + 1,
            by=owner,
            reason="Qualified: budget and need confirmed",
        ):
            path.opportunity_at = path.at
            _close(ctx, lead, path, owner)
        return
    if rng.random() < 0.7:
        after = rng.expovariate(1 / 10) + 1
        if rng.random() < 0.65:
            _move(
                ctx,
                lead,
                path,
                Stage.DISQUALIFIED,
                after,
                by=owner,
                reason=rng.choice(SQL_EXIT_REASONS),
            )
        else:
            _move(
                ctx,
                lead,
                path,
                Stage.RECYCLED,
                after,
                by=owner,
                reason="Not now: revisit next quarter",
            )


def _close(ctx: _Ctx, lead: LeadRow, path: _Path, owner: int) -> None:
    """Open the deal and, if it closes before the anchor, win or lose it by the hidden
    model: logistic in fit and behaviour, plus noise."""
    rng = ctx.rng
    opened = path.at
    deal = DealRow(
        name=_deal_name(ctx, lead),
        amount=_deal_amount(ctx, lead),
        status=DealStatus.OPEN,
        created_at=opened,
        closed_at=None,
        expected_close=(opened + DEAL_CYCLE).date(),
        product_line_id=ctx.cast.products[_product_slug(ctx, lead)],
        owner_id=owner,
    )
    lead.deals.append(deal)
    noise = rng.gauss(0, WIN_NOISE)
    won = rng.random() < sigmoid(win_odds(lead.fit(), lead.behaviour(), noise, ctx.behaviour_scale))
    after = rng.expovariate(1 / 20) + 5
    reason = rng.choice(LOST_REASONS)
    recycle = reason in ("No decision", "Budget frozen") or rng.random() < 0.3
    if won:
        moved = _move(ctx, lead, path, Stage.CUSTOMER, after, by=owner, reason="Contract signed")
    elif recycle:
        moved = _move(
            ctx, lead, path, Stage.RECYCLED, after, by=owner, reason=f"Deal lost: {reason}"
        )
    else:
        moved = _move(
            ctx, lead, path, Stage.DISQUALIFIED, after, by=owner, reason=f"Deal lost: {reason}"
        )
    if moved:
        deal.status = DealStatus.WON if won else DealStatus.LOST
        deal.closed_at = path.at
        deal.lost_reason = "" if won else reason
    _stage(ctx, deal, until=deal.closed_at or ctx.now)


def _stage(ctx: _Ctx, deal: DealRow, *, until: datetime) -> None:
    """The pipeline stage the deal had reached by ``until`` (its close, or the anchor):
    one more every ``STAGE_STEP`` as it ages, the last one held until it closes, so
    that the longest-open deals idle in it."""
    stages = ctx.cast.deal_stages
    if not stages:
        return
    steps = int((until - deal.created_at) / STAGE_STEP)
    reached = min(steps, len(stages) - 1)
    deal.stage_id = stages[reached]
    deal.stage_changed_at = deal.created_at + reached * STAGE_STEP


def _owner(ctx: _Ctx, lead: LeadRow) -> int:
    """The rep whose territory holds the lead's country, or any rep."""
    reps = ctx.cast.reps
    local = [rep for rep in reps if lead.country in rep.countries]
    return ctx.rng.choice(local or reps).id


def _product_slug(ctx: _Ctx, lead: LeadRow) -> str:
    by_id = {pk: slug for slug, pk in ctx.cast.products.items()}
    return by_id[lead.products[0]] if lead.products else PRODUCT_LINES[0][0]


def _deal_name(ctx: _Ctx, lead: LeadRow) -> str:
    slug = _product_slug(ctx, lead)
    product = next(name for s, name, _ in PRODUCT_LINES if s == slug)
    buyer = lead.company.name if lead.company else f"{lead.first_name} {lead.last_name}"
    return f"{buyer}: {product}"


def _deal_amount(ctx: _Ctx, lead: LeadRow) -> Decimal:
    slug = _product_slug(ctx, lead)
    base = next(amount for s, _, amount in PRODUCT_LINES if s == slug)
    size = (lead.company.employee_count if lead.company else None) or 10
    amount = base * (size / 50) ** 0.35 * ctx.rng.lognormvariate(0, 0.35)
    return Decimal(max(500, round(amount / 500) * 500))

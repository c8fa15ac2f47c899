"""A lead's deals: creating, changing, moving through the pipeline, winning and losing
them, with the lead kept in step. The workspace, the API and the admin write deals
through here (imports and the demo seeder write rows in bulk and set the outcome with
them).

Two facts follow every write: the lead's ``deal_outcome`` (one won deal makes a won
lead), which the reports count by, and the lead's stage: winning a deal makes its
lead a customer, through ``lead_move_to_stage_locked`` like any other move (so the
hand-off, nurture and the reports react as they do to any stage change).

Who may write which deal is the edges' question (``leads.permissions``); these
functions only refuse what no one may do, with ``ValidationError`` (a field's message
where one field is at fault) or ``StageTransitionError`` (the lead cannot become a
customer), writing nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from .facts import lead_facts_kept
from .models import (
    DEFAULT_CURRENCY,
    Deal,
    DealStage,
    DealStatus,
    Lead,
    LeadQuerySet,
    LostReason,
    ProductLine,
    Stage,
    StageTransitionError,
)
from .stages import lead_move_to_stage_locked

if TYPE_CHECKING:
    from crm.models import User

# The fields a person edits on an open or a closed deal; status, close time and lost
# reason change through winning, losing and reopening.
DEAL_EDITABLE = (
    "name",
    "amount",
    "currency",
    "stage",
    "expected_close",
    "probability",
    "product_line",
    "owner",
)
DEAL_CHANGEABLE = frozenset({*DEAL_EDITABLE, "lead", "created_at"})
DEAL_CLOSING = frozenset({"status", "closed_at", "lost_reason"})

WON_ALREADY = "The deal is won already."
LOST_ALREADY = "The deal is lost already."
CLOSED_STAYS = "A won or lost deal stays in the stage it closed from: reopen it first."
DISQUALIFIED_CANNOT_WIN = (
    "The lead is disqualified: recycle it before winning its deal, which makes it a customer."
)
LOST_REASON_NEEDED = "Say why the deal is lost."


# --- Writing rows, with the lead's outcome kept -----------------------------------------


def deal_save(*, deal: Deal, update_fields: Iterable[str] | None = None) -> Deal:
    """Insert or update ``deal`` and work out its lead's outcome again, and that of the
    lead it was on when it moved to another. The leads' rows are locked first, so that
    a concurrent deal write on them is counted. A bare write: the services below keep
    the lead's stage too."""
    with lead_facts_kept(_leads_touched(deal), LeadQuerySet.refresh_deal_outcome):
        deal.save(update_fields=update_fields)
    return deal


def deals_delete(*, deals: QuerySet[Deal]) -> int:
    """Delete the deals and work their leads' outcomes out again; how many were deleted.
    A lead that became a customer by a deal stays one."""
    with lead_facts_kept(
        deals.values_list("lead_id", flat=True), LeadQuerySet.refresh_deal_outcome
    ):
        deleted, _ = deals.delete()
    return deleted


def _leads_touched(deal: Deal) -> set[int]:
    """The lead the deal is on, and the one it was on when stored, if it moved."""
    leads = {deal.lead_id}
    if not deal._state.adding:
        leads.update(Deal.objects.filter(pk=deal.pk).values_list("lead_id", flat=True))
    return leads


# --- Creating and changing ----------------------------------------------------------------


def deal_create(
    *,
    lead: Lead,
    by: User | None,
    name: str,
    amount: Decimal = Decimal(0),
    currency: str = DEFAULT_CURRENCY,
    stage: DealStage | None = None,
    expected_close: dt.date | None = None,
    probability: int | None = None,
    product_line: ProductLine | None = None,
    owner: User | None = None,
) -> Deal:
    """Open a deal on ``lead``: in ``stage``, else the pipeline's first; owned by
    ``owner``, else by the lead's owner. ``probability`` None takes the stage's."""
    deal = Deal(
        lead=lead,
        name=name.strip(),
        amount=amount,
        currency=currency.upper(),
        stage=stage or DealStage.objects.first(),
        expected_close=expected_close,
        probability=probability,
        product_line=product_line,
        owner=owner or lead.owner,
    )
    _check_fields(deal)
    return deal_save(deal=deal)


def deal_update(*, deal: Deal, by: User | None, changes: Mapping[str, Any]) -> Deal:
    """Change the deal's fields (``DEAL_CHANGEABLE``) and, when ``changes`` holds one,
    its ``status``: to won (``deal_win``, the lead becomes a customer), to lost
    (``deal_lose``, with ``lost_reason``), or back to open (``deal_reopen``);
    ``closed_at`` dates a closing. A new stage restarts the deal's idle time. All in
    one transaction: a refused closing leaves the other changes unwritten too."""
    unknown = set(changes) - DEAL_CHANGEABLE - DEAL_CLOSING
    if unknown:
        raise ValueError(f"Not a field a person changes: {sorted(unknown)}")
    with transaction.atomic():
        plain = {name: value for name, value in changes.items() if name in DEAL_CHANGEABLE}
        if "stage" in plain and plain["stage"] != deal.stage:
            deal.stage_changed_at = timezone.now()
        for name, value in plain.items():
            setattr(deal, name, value)
        deal.name = deal.name.strip()
        deal.currency = deal.currency.upper()
        _check_fields(deal)
        status = changes.get("status", deal.status)
        at = changes.get("closed_at")
        if status == DealStatus.WON and deal.status != DealStatus.WON:
            return deal_win(deal=deal, by=by, at=at)
        if status == DealStatus.LOST and (
            deal.status != DealStatus.LOST or "lost_reason" in changes
        ):
            reason = changes.get("lost_reason", deal.lost_reason)
            return deal_lose(deal=deal, by=by, reason=reason, at=at, again=True)
        if status == DealStatus.OPEN and deal.status != DealStatus.OPEN:
            return deal_reopen(deal=deal, by=by)
        if at is not None and deal.status != DealStatus.OPEN:
            deal.closed_at = at
        return deal_save(deal=deal)


def _check_fields(deal: Deal) -> None:
    """The model's own checks of the fields a person fills in."""
    deal.full_clean(exclude=["lead", "status", "closed_at", "lost_reason", "created_at"])


# --- The pipeline --------------------------------------------------------------------------


def deal_move(*, deal: Deal, by: User | None, stage: DealStage) -> Deal:
    """Move an open deal to another stage of the pipeline, restarting its idle time;
    moving it where it is changes nothing."""
    if not deal.is_open:
        raise ValidationError({"stage": CLOSED_STAYS})
    if deal.stage_id == stage.pk:
        return deal
    deal.stage = stage
    deal.stage_changed_at = timezone.now()
    return deal_save(deal=deal, update_fields=["stage", "stage_changed_at"])


def deal_win(*, deal: Deal, by: User | None, at: dt.datetime | None = None) -> Deal:
    """Win the deal (as of ``at``, else now) and make its lead a customer, moving it
    through opportunity when it is not there yet, each move recorded as ``by``'s.

    Raises ``ValidationError`` for a deal won already and ``StageTransitionError`` for
    a disqualified lead (recycle it first); either way nothing is written.
    """
    with transaction.atomic():
        lead = Lead.objects.select_for_update().get(pk=deal.lead_id)
        if _stored_status(deal) == DealStatus.WON:
            raise ValidationError({"status": WON_ALREADY})
        if lead.stage == Stage.DISQUALIFIED:
            raise StageTransitionError(DISQUALIFIED_CANNOT_WIN)
        deal.status = DealStatus.WON
        deal.closed_at = at or timezone.now()
        deal.lost_reason = ""
        deal_save(deal=deal)
        _make_customer(lead=lead, by=by, reason=f"Deal “{deal.name}” won.")
    return deal


def _make_customer(*, lead: Lead, by: User | None, reason: str) -> None:
    """Move the locked lead, whose deal was just won, on to customer."""
    if lead.stage == Stage.CUSTOMER:
        return
    if lead.stage != Stage.OPPORTUNITY:
        lead_move_to_stage_locked(lead=lead, stage=Stage.OPPORTUNITY, by=by, reason=reason)
    lead_move_to_stage_locked(lead=lead, stage=Stage.CUSTOMER, by=by, reason=reason)


def deal_lose(
    *,
    deal: Deal,
    by: User | None,
    reason: str,
    at: dt.datetime | None = None,
    again: bool = False,
) -> Deal:
    """Lose the deal (as of ``at``, else now) for ``reason``, one of the pick-list's
    reasons (``lost_reason_clean``). The lead keeps its stage: a lead with a lost deal
    may still buy, and a customer stays one. ``again`` lets a lost deal's reason be
    changed; otherwise losing a lost deal is refused."""
    name = lost_reason_clean(reason)
    with transaction.atomic():
        Lead.objects.filter(pk=deal.lead_id).lock()
        if _stored_status(deal) == DealStatus.LOST and not again:
            raise ValidationError({"status": LOST_ALREADY})
        if deal.status != DealStatus.LOST or at is not None:
            deal.closed_at = at or timezone.now()
        deal.status = DealStatus.LOST
        deal.lost_reason = name
        return deal_save(deal=deal)


def deal_reopen(*, deal: Deal, by: User | None) -> Deal:
    """Open a won or lost deal again, in the stage it closed from, its idle time
    restarted. Its lead keeps its stage: a customer stays one."""
    deal.status = DealStatus.OPEN
    deal.closed_at = None
    deal.lost_reason = ""
    deal.stage_changed_at = timezone.now()
    if deal.stage_id is None:
        deal.stage = DealStage.objects.first()
    return deal_save(deal=deal)


def _stored_status(deal: Deal) -> str | None:
    """The deal's status as stored, its row locked; None for a deal not stored yet."""
    if deal.pk is None:
        return None
    rows = Deal.objects.select_for_update().filter(pk=deal.pk)
    return rows.values_list("status", flat=True).first()


# --- Lost reasons --------------------------------------------------------------------------


def lost_reasons_offered() -> QuerySet[LostReason]:
    """The reasons a person picks from when losing a deal."""
    return LostReason.objects.filter(active=True)


def lost_reason_clean(reason: str) -> str:
    """``reason`` as the pick-list spells it, whatever its case; with an empty pick-list
    (every reason retired), any reason that says something. Raises ``ValidationError``
    on ``lost_reason`` otherwise."""
    text = (reason or "").strip()
    if not text:
        raise ValidationError({"lost_reason": LOST_REASON_NEEDED})
    offered = list(lost_reasons_offered().values_list("name", flat=True))
    if not offered:
        return text[:200]
    for name in offered:
        if name.casefold() == text.casefold():
            return name
    raise ValidationError({"lost_reason": f"Pick one of: {', '.join(offered)}."})


# --- Defaults --------------------------------------------------------------------------------

# A new installation's pipeline (the migration that adds deal stages creates them too).
DEFAULT_DEAL_STAGES = (("Qualification", 20, 30), ("Proposal", 50, 21), ("Negotiation", 75, 14))
DEFAULT_LOST_REASONS = (
    "Price too high",
    "Chose a competitor",
    "No decision",
    "Bad timing",
    "Missing feature",
)


def deal_pipeline_ensure(
    *,
    stages: Iterable[tuple[str, int, int | None]] = DEFAULT_DEAL_STAGES,
    lost_reasons: Iterable[str] = DEFAULT_LOST_REASONS,
) -> list[DealStage]:
    """The pipeline's stages, first created from ``stages`` (name, probability, days to
    rot) when there are none; the lost reasons named are added when missing."""
    if not DealStage.objects.exists():
        DealStage.objects.bulk_create(
            DealStage(name=name, position=n, probability=chance, rot_days=days)
            for n, (name, chance, days) in enumerate(stages, start=1)
        )
    known = {name.casefold() for name in LostReason.objects.values_list("name", flat=True)}
    start = LostReason.objects.count() + 1
    missing = []
    for name in lost_reasons:
        if name.casefold() not in known:
            known.add(name.casefold())
            missing.append(name)
    LostReason.objects.bulk_create(
        LostReason(name=name, position=n) for n, name in enumerate(missing, start=start)
    )
    return list(DealStage.objects.all())

"""The lead page's Deals card: the lead's deals with what the person may do to each
(change it, win it, lose it), and the form of a new deal, offered up front when the
lead is an opportunity without an open deal.

Built for the whole lead page (``workspace.views.lead``) and alone, when a deal action
answers htmx with the card (``workspace.views.deals``), in a fixed number of queries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.forms import BaseForm

from crm.models import User
from leads.models import Deal, Lead, Stage
from leads.permissions import LeadAccess

from .deal_forms import DealForm, DealOptions, LoseDealForm, lost_reason_names

DEALS_SHOWN = 20


@dataclass
class DealItem:
    deal: Deal
    rotting: int | None
    edit: BaseForm | None = None
    lose: BaseForm | None = None


def deal_card(
    *,
    lead: Lead,
    user: User,
    access: LeadAccess,
    now: dt.datetime,
    bound: Mapping[str, BaseForm],
    notice: str = "",
) -> dict[str, Any]:
    """The card's context. ``bound`` holds forms posted with errors, by prefix ("deal"
    for the new one, "deal-<id>" and "lost-<id>" for a deal's), shown again as posted."""
    deals = list(lead.deals.select_related("stage", "owner", "product_line")[:DEALS_SHOWN])
    items = [DealItem(deal=deal, rotting=deal.rotting_days(now)) for deal in deals]
    has_open = any(deal.is_open for deal in deals)
    card: dict[str, Any] = {
        "items": items,
        "offer": access.may_act and lead.stage == Stage.OPPORTUNITY and not has_open,
        "notice": notice,
        "new": None,
    }
    if not access.may_act:
        return card
    options = DealOptions.load(user)
    names = lost_reason_names() if has_open else []
    for item in items:
        if not item.deal.is_open:
            continue
        prefix = f"deal-{item.deal.pk}"
        item.edit = bound.get(prefix) or DealForm(
            prefix=prefix, lead=lead, user=user, options=options, deal=item.deal
        )
        item.lose = bound.get(f"lost-{item.deal.pk}") or LoseDealForm(
            prefix=f"lost-{item.deal.pk}", names=names
        )
    card["new"] = bound.get("deal") or DealForm(
        prefix="deal", lead=lead, user=user, options=options
    )
    card["new_open"] = "deal" in bound or card["offer"]
    return card

"""Writing and deleting a lead's deals with the lead's ``deal_outcome`` kept: the admin,
the API and the tests write deals through here (the demo seeder writes the outcome with
its rows)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from .facts import lead_facts_kept
from .models import Deal, LeadQuerySet


def deal_save(*, deal: Deal, update_fields: Iterable[str] | None = None) -> Deal:
    """Insert or update ``deal`` and work out its lead's outcome again, and that of the
    lead it was on when it moved to another. The leads' rows are locked first, so that
    a concurrent deal write on them is counted."""
    with lead_facts_kept(_leads_touched(deal), LeadQuerySet.refresh_deal_outcome):
        deal.save(update_fields=update_fields)
    return deal


def deals_delete(*, deals: QuerySet[Deal]) -> int:
    """Delete the deals and work their leads' outcomes out again; how many were deleted."""
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

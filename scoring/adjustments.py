"""Manual score adjustments: points added or taken off by hand, with a reason, as ledger
entries on each lead's primary model. The one service every surface that adjusts
scores calls (``workspace.bulk.leads_adjust`` for the leads list and the lead admin)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from leads.models import Lead

from .lead_scoring import leads_score
from .models import EntryKind, ScoreEntry
from .ruleset import load_ruleset

if TYPE_CHECKING:
    from crm.models import User


def leads_adjust_score(
    *, lead_ids: Sequence[int], points: int, reason: str, by: User | None
) -> int:
    """Add (or take off) points by hand on each lead's primary model; returns how many leads."""
    reason = reason.strip()
    if not reason:
        raise ValueError("Say why the score is adjusted.")
    if not points:
        raise ValueError("Give a non-zero number of points.")
    now = timezone.now()
    ruleset = load_ruleset()
    adjusted = []
    with transaction.atomic():
        leads = (
            Lead.objects.select_for_update()
            .filter(pk__in=lead_ids)
            .prefetch_related("product_interests")
            .order_by("pk")
        )
        for lead in leads:
            slugs = [product.slug for product in lead.product_interests.all()]
            models = ruleset.for_lead(slugs)
            if not models:
                continue
            primary = max(models, key=lambda m: (m.priority, m.is_default, -m.id))
            who = by.get_username() if by else "system"
            ScoreEntry.objects.create(
                lead=lead,
                model_id=primary.id,
                kind=EntryKind.MANUAL,
                points=points,
                reason=f"Adjusted by {who}: {reason}"[:300],
                at=now,
                created_at=now,
                by=by,
            )
            adjusted.append(lead.pk)
        if adjusted:
            # Scored at its own, post-lock "now" (see leads_score), not the pre-lock one.
            leads_score(lead_ids=adjusted, ruleset=ruleset)
    return len(adjusted)

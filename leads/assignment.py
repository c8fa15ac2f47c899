"""Who owns a lead that is handed to sales.

The order is fixed: keep the current owner when they are an active rep, then the
active assignment rules by position (territory, product interest, key account, round
robin, fallback, in whatever order the admin arranged them). The first rule that matches the
lead and yields someone decides.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Count, Max, QuerySet

from .account_scores import lead_account_score
from .handoff_models import AssignmentKind, AssignmentRule, HandOff
from .models import CLOSED_STAGES, Lead, LeadRank
from .permissions import receives_round_robin, round_robin_reps

if TYPE_CHECKING:
    from crm.models import User

KEPT_OWNER = "kept current owner"
NO_OWNER = "no rule matched"


@dataclass(frozen=True)
class LeadFacts:
    """What the rules read of a lead."""

    country: str
    region: str
    product_line_ids: frozenset[int]
    # The company's account score, read only when a key-account rule is active.
    account_score: int | None = None

    @classmethod
    def of(cls, lead: Lead, *, account: bool = False) -> LeadFacts:
        country, region = lead.country, lead.region
        if not (country and region) and lead.company is not None:
            country = country or lead.company.country
            region = region or lead.company.region
        ids = frozenset(lead.product_interests.values_list("pk", flat=True))
        return cls(
            country=(country or "").upper(),
            region=region or "",
            product_line_ids=ids,
            account_score=lead_account_score(lead=lead) if account else None,
        )


def owner_for(*, lead: Lead) -> tuple[User | None, str]:
    """The owner a handed-off lead should get and why, e.g. ``(rep, "territory DE")``.

    Call inside ``transaction.atomic()``: a rule that picks among reps by load locks its
    row until the caller commits, so two workers assigning at once see each other's
    choice and do not both give the least-loaded rep a lead. ``(None, "no rule
    matched")`` when nobody fits.
    """
    if lead.owner is not None and is_active_rep(lead.owner):
        return lead.owner, KEPT_OWNER
    rules = list(AssignmentRule.objects.active().select_related("owner", "product_line", "team"))
    facts = LeadFacts.of(lead, account=any(r.kind == AssignmentKind.ACCOUNT for r in rules))
    for rule in rules:
        if not rule.matches(
            country=facts.country,
            region=facts.region,
            product_line_ids=set(facts.product_line_ids),
            account_score=facts.account_score,
        ):
            continue
        owner = _rule_owner(rule, facts)
        if owner is not None:
            return owner, describe(rule, facts)
    return None, NO_OWNER


def describe(rule: AssignmentRule, facts: LeadFacts) -> str:
    """The short reason kept on the hand-off: “territory DE”, “product line Fleet”…"""
    if rule.kind == AssignmentKind.TERRITORY:
        if facts.country and (not rule.regions or facts.country in rule.countries):
            return f"territory {facts.country}"
        return f"territory {facts.region}".strip()
    if rule.kind == AssignmentKind.PRODUCT_LINE:
        if rule.product_line is not None:
            return f"product line {rule.product_line}"
        return "product line"
    if rule.kind == AssignmentKind.ACCOUNT:
        return f"key account (account score {facts.account_score})"
    if rule.kind == AssignmentKind.ROUND_ROBIN:
        return "round robin"
    return "fallback owner"


def is_active_rep(user: User) -> bool:
    return receives_round_robin(user)


def active_reps() -> QuerySet[User]:
    return round_robin_reps().prefetch_related("product_lines").distinct()


def _rule_owner(rule: AssignmentRule, facts: LeadFacts) -> User | None:
    if rule.owner is not None:
        return rule.owner if rule.owner.is_active else None
    # Serialise the picks of this rule: the loads read below must include the previous
    # pick, which is only visible once its transaction commits.
    list(AssignmentRule.objects.select_for_update().filter(pk=rule.pk).values_list("pk"))
    reps = active_reps()
    if rule.team_id is not None:
        reps = reps.filter(team_id=rule.team_id)
    candidates = [rep for rep in reps if _fits(rule, rep, facts)]
    return least_loaded(candidates)


def _fits(rule: AssignmentRule, rep: User, facts: LeadFacts) -> bool:
    """Whether a rep suits the lead under an owner-less rule."""
    if rule.kind == AssignmentKind.TERRITORY:
        countries = {str(c).upper() for c in rep.territory_countries or []}
        regions = {str(r).lower() for r in rep.territory_regions or []}
        return (bool(facts.country) and facts.country in countries) or (
            bool(facts.region) and facts.region.lower() in regions
        )
    if rule.kind == AssignmentKind.PRODUCT_LINE:
        sells = {line.pk for line in rep.product_lines.all()}
        wanted = {rule.product_line_id} if rule.product_line_id else set(facts.product_line_ids)
        return bool(sells & wanted)
    return True


def least_loaded(candidates: Sequence[User]) -> User | None:
    """The rep with the fewest open leads; on a tie, the one whose last hand-off is oldest
    (never handed a lead counts as oldest), then the lowest id."""
    if not candidates:
        return None
    ids = [rep.pk for rep in candidates]
    # From the rank's owner index alone (``rank_owner_counts_idx``).
    loads = dict(
        LeadRank.objects.filter(owner_id__in=ids)
        .exclude(stage__in=CLOSED_STAGES)
        .order_by()
        .values("owner_id")
        .annotate(n=Count("pk"))
        .values_list("owner_id", "n")
    )
    last = dict(
        HandOff.objects.filter(owner_id__in=ids, assigned_at__isnull=False)
        .order_by()
        .values("owner_id")
        .annotate(at=Max("assigned_at"))
        .values_list("owner_id", "at")
    )
    never = dt.datetime.min.replace(tzinfo=dt.UTC)
    return min(
        candidates, key=lambda rep: (loads.get(rep.pk, 0), last.get(rep.pk) or never, rep.pk)
    )

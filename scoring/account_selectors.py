"""Reads of account scores (``scoring.accounts``) for the company page, the company lists
and the API.

An account score is the company's, summed over all its people whoever can see them, and
is read by everyone who reads the company (``leads.permissions.companies_visible_to``);
the contacts listed with it are only the leads ``Lead.objects.visible_to`` gives the
person.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import IntegerField, OuterRef, QuerySet, Subquery

from leads.models import Company, Lead

from .account_formula import engagement_now
from .models import AccountScore, LeadScore, ModelStatus

if TYPE_CHECKING:
    from crm.models import User

TOP_CONTACTS = 3
# Models in the order their scores are shown, the first one's being the company's main
# account score: the order the primary score of a lead is chosen in.
MODEL_ORDER = ("-model__priority", "-model__is_default", "model_id")


@dataclass(frozen=True)
class AccountView:
    """A company's account score in one model, its engagement carried to now, and the
    people behind it the person may see, best score first."""

    row: AccountScore
    engagement: float
    contacts: list[LeadScore]


def account_scores(company_ids: Iterable[int]) -> dict[int, list[AccountScore]]:
    """The account scores in active models of each company, main one first, in one query."""
    rows = (
        AccountScore.objects.filter(company_id__in=list(company_ids), model__status="active")
        .select_related("model")
        .order_by("company_id", *MODEL_ORDER)
    )
    found: dict[int, list[AccountScore]] = defaultdict(list)
    for row in rows:
        found[row.company_id].append(row)
    return found


def company_account_views(
    *, company: Company, user: User, now: datetime, contacts: int = TOP_CONTACTS
) -> list[AccountView]:
    """The company's account score in each active model, main one first (module
    docstring for who sees what)."""
    visible = Lead.objects.visible_to(user).filter(company=company).values("pk")
    views = []
    for row in account_scores([company.pk]).get(company.pk, []):
        people = (
            LeadScore.objects.filter(model_id=row.model_id, lead__in=visible)
            .select_related("lead")
            .order_by("-score", "lead_id")[:contacts]
        )
        half_life = row.model.decay_half_life_days
        engagement = engagement_now(row.engagement, row.engagement_at, now, half_life)
        views.append(AccountView(row, engagement, list(people)))
    return views


def main_account_score() -> Subquery:
    """The company's account score in the first active model that scores it (``MODEL_ORDER``),
    for a list to show and sort by; NULL for a company without one."""
    rows = AccountScore.objects.filter(
        company_id=OuterRef("pk"), model__status=ModelStatus.ACTIVE
    ).order_by(*MODEL_ORDER)
    return Subquery(rows.values("score")[:1], output_field=IntegerField())


def with_account_score(companies: QuerySet[Company]) -> QuerySet[Company]:
    """The companies with ``account_score`` (``main_account_score``) to show and sort by."""
    return companies.annotate(account_score=main_account_score())


def lead_company_account_score(lead: Lead) -> int | None:
    """The account score of the lead's company in the model of the lead's primary score
    (as nurture tracks read it), None when it has no company or the company no score
    there: the provider behind ``leads.account_scores`` for the key-account assignment
    rules."""
    if lead.company_id is None:
        return None
    primary = LeadScore.objects.filter(lead_id=lead.pk, is_primary=True).values("model_id")
    rows = AccountScore.objects.filter(company_id=lead.company_id, model_id__in=primary)
    return rows.values_list("score", flat=True).first()

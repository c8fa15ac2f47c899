"""A lead and its activities as the plain facts the rules test, and the awards a model's
rules give for them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db.models import Case, F, JSONField, QuerySet, Value, When

from leads.models import Activity, Lead

from .rule_fields import CUSTOM_PREFIX, FIT_FIELDS
from .rules import ActivityFact, Award, engagement_awards, fit_awards
from .ruleset import CompiledModel, Ruleset

KEY_FIELDS = ("first_name", "last_name", "job_title", "company", "country", "phone")


def looks_like_spam(lead: Lead) -> bool:
    local = lead.email.partition("@")[0]
    name = f"{lead.first_name}{lead.last_name}".lower()
    return (
        sum(ch.isdigit() for ch in local) >= 5
        or (bool(name) and any(ch.isdigit() for ch in name))
        or (bool(name) and name in {"test", "testtest", "asdf", "asdfasdf", "qwerty"})
        or lead.first_name.lower() == lead.last_name.lower() != ""
    )


def lead_facts(lead: Lead, product_slugs: Sequence[str]) -> dict[str, Any]:
    """Everything a fit rule can test, as plain values."""
    facts: dict[str, Any] = {
        name: getattr(lead, name)
        for name in FIT_FIELDS
        if "." not in name and hasattr(lead, name) and name != "product_interests"
    }
    facts["email_domain"] = lead.email_domain
    facts["product_interests"] = list(product_slugs)
    company = lead.company
    for name in ("name", "domain", "industry", "employee_count", "annual_revenue", "country"):
        facts[f"company.{name}"] = getattr(company, name) if company else None
    for key, value in (lead.custom_fields or {}).items():
        facts[f"{CUSTOM_PREFIX}{key}"] = value
    facts["missing_key_fields"] = sum(
        1
        for name in KEY_FIELDS
        if not (lead.company_id if name == "company" else getattr(lead, name))
    )
    facts["looks_like_spam"] = looks_like_spam(lead)
    return facts


def lead_products(lead_ids: Sequence[int]) -> dict[int, list[str]]:
    """The product lines each lead is interested in, by slug: its segments and a fit fact."""
    products: dict[int, list[str]] = defaultdict(list)
    through = Lead.product_interests.through
    for lead_id, slug in through.objects.filter(lead_id__in=lead_ids).values_list(
        "lead_id", "productline__slug"
    ):
        products[lead_id].append(slug)
    return products


def activity_rows(activities: QuerySet[Activity], ruleset: Ruleset) -> QuerySet[Any]:
    """The activities as rows (lead id, then what ``activity_facts`` takes).

    Properties are read (and decoded) only for the types a rule reads them of: a long
    history is mostly page views, whose JSON no rule looks at.
    """
    properties = Case(
        When(type__in=sorted(ruleset.property_types()), then=F("properties")),
        default=Value(None),
        output_field=JSONField(),
    )
    return activities.annotate(read_properties=properties).values_list(
        "lead_id", "id", "type", "occurred_at", "url", "duration_seconds", "read_properties"
    )


def activity_facts(rows: Iterable[tuple[Any, ...]]) -> list[ActivityFact]:
    return [
        ActivityFact(
            id=pk,
            type=type_,
            occurred_at=occurred_at,
            url=url or "",
            duration_seconds=duration,
            properties=properties or {},
        )
        for pk, type_, occurred_at, url, duration, properties in rows
    ]


def desired_awards(
    model: CompiledModel,
    facts: dict[str, Any],
    activities: Sequence[ActivityFact],
    domain_lists: dict[str, frozenset[str]],
    now: datetime,
) -> list[Award]:
    return fit_awards(model.fit_rules, facts, domain_lists, now) + engagement_awards(
        model.engagement_rules, activities, now
    )

"""A starter scoring model built from the classic point tables, for new installations."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from demo import places
from scoring.models import DomainList, DomainListKind, ModelStatus, Rule, ScoringModel

# The demo world draws its personal, throw-away and competitor addresses from the same
# lists, so the starter rules recognise them.
FREE_MAIL = sorted(
    {*places.FREE_MAIL_DOMAINS, "web.de", "aol.com", "proton.me", "mail.com", "yahoo.com"}
)
DISPOSABLE = sorted({*places.DISPOSABLE_DOMAINS, "trashmail.com"})
COMPETITORS = sorted(places.COMPETITOR_DOMAINS)

FIT_RULES: list[dict[str, Any]] = [
    {
        "name": "Decision-maker title",
        "points": 20,
        "field": "seniority",
        "operator": "in",
        "value": "c_level,vp,director",
    },
    {
        "name": "Manager title",
        "points": 10,
        "field": "seniority",
        "operator": "equals",
        "value": "manager",
    },
    {
        "name": "Company size over 100",
        "points": 10,
        "field": "company.employee_count",
        "operator": "gt",
        "value": "100",
    },
    {
        "name": "Company size over 1,000",
        "points": 5,
        "field": "company.employee_count",
        "operator": "gt",
        "value": "1000",
    },
    {
        "name": "Target industry",
        "points": 10,
        "field": "company.industry",
        "operator": "in",
        "value": "software,finance,healthcare,manufacturing",
    },
    {
        "name": "Budget confirmed",
        "points": 15,
        "field": "budget",
        "operator": "in",
        "value": "50k_250k,over_250k",
    },
    {
        "name": "Decision maker (BANT)",
        "points": 10,
        "field": "authority",
        "operator": "equals",
        "value": "decision_maker",
    },
    {
        "name": "Buying this quarter",
        "points": 10,
        "field": "timeline",
        "operator": "in",
        "value": "now,quarter",
    },
    {
        "name": "Personal email address",
        "points": -10,
        "field": "email",
        "operator": "in_domain_list",
        "value": DomainListKind.FREE_MAIL,
    },
    {
        "name": "Disposable email address",
        "points": -30,
        "field": "email",
        "operator": "in_domain_list",
        "value": DomainListKind.DISPOSABLE,
    },
    {
        "name": "Works for a competitor",
        "points": -50,
        "field": "email",
        "operator": "in_domain_list",
        "value": DomainListKind.COMPETITOR,
    },
    {
        "name": "Student",
        "points": -15,
        "field": "seniority",
        "operator": "equals",
        "value": "student",
    },
    {"name": "Looks like spam", "points": -40, "field": "looks_like_spam", "operator": "is_true"},
    {
        "name": "Key fields missing",
        "points": -5,
        "field": "missing_key_fields",
        "operator": "gte",
        "value": "3",
    },
]
ENGAGEMENT_RULES: list[dict[str, Any]] = [
    {"name": "Quote request", "points": 50, "activity_type": "quote_request"},
    {"name": "Demo request", "points": 40, "activity_type": "demo_request"},
    {"name": "Trial sign-up", "points": 30, "activity_type": "trial_signup"},
    {
        "name": "Pricing page",
        "points": 25,
        "activity_type": "page_view",
        "target": "url",
        "pattern": "/pricing",
        "max_per_day": 1,
    },
    {
        "name": "Features page, often",
        "points": 5,
        "activity_type": "page_view",
        "target": "url",
        "pattern": "/features",
        "max_per_day": 1,
        "bonus_count": 3,
        "bonus_points": 10,
    },
    {"name": "Webinar attended", "points": 15, "activity_type": "webinar_attendance"},
    {"name": "Webinar registration", "points": 5, "activity_type": "webinar_registration"},
    {
        "name": "Content download",
        "points": 10,
        "activity_type": "content_download",
        "max_per_lead": 5,
    },
    {"name": "Email click", "points": 5, "activity_type": "email_click", "max_per_day": 1},
    {
        "name": "Email open",
        "points": 1,
        "activity_type": "email_open",
        "max_per_day": 1,
        "max_per_lead": 10,
    },
    {"name": "Form submission", "points": 10, "activity_type": "form_submission"},
    {
        "name": "Careers page",
        "points": -10,
        "activity_type": "page_view",
        "target": "url",
        "pattern": "/careers",
        "max_per_lead": 3,
    },
    {"name": "Unsubscribed", "points": -20, "activity_type": "unsubscribe"},
    {"name": "Email bounced", "points": -15, "activity_type": "email_bounce", "max_per_lead": 1},
]


def seed_starter_model() -> ScoringModel:
    """Create the domain lists and an active default model, unless a default exists."""
    with transaction.atomic():
        for kind, domains in (
            (DomainListKind.FREE_MAIL, FREE_MAIL),
            (DomainListKind.DISPOSABLE, DISPOSABLE),
            (DomainListKind.COMPETITOR, COMPETITORS),
        ):
            for domain in domains:
                DomainList.objects.get_or_create(kind=kind, domain=domain)
        existing = ScoringModel.objects.filter(is_default=True).first()
        if existing:
            return existing
        model = ScoringModel.objects.create(
            name="Standard B2B",
            description="Classic fit and behaviour points with a 30-day half-life.",
            status=ModelStatus.ACTIVE,
            is_default=True,
            decay_half_life_days=30,
        )
        rules = [Rule(model=model, kind="fit", **spec) for spec in FIT_RULES]
        rules += [Rule(model=model, kind="engagement", **spec) for spec in ENGAGEMENT_RULES]
        for rule in rules:
            rule.validate()
        Rule.objects.bulk_create(rules)
    return model

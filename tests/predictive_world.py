"""A messy world of closed leads for predictive scoring: a hidden propensity from fields,
custom fields and behaviour before each lead's decision; pick-lists with placeholder
values, missing numbers, a field set after contact that gives the outcome away, and
meetings after the decision that only won leads have."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
from django.utils import timezone

from leads.models import (
    Activity,
    ActivityType,
    Company,
    CustomFieldDefinition,
    Deal,
    DealStatus,
    FieldType,
    Lead,
)

INDUSTRIES = ["software", "finance", "healthcare", "retail", "education"]
SENIORITIES = ["c_level", "vp", "director", "manager", "individual", "student", ""]
INTERESTS = ["High", "Medium", "Low", "Select", "-", ""]


def custom_fields() -> None:
    CustomFieldDefinition.objects.create(
        key="interest", label="Interest", field_type=FieldType.CHOICE, choices=INTERESTS[:3]
    )
    CustomFieldDefinition.objects.create(
        key="fleet_size", label="Fleet size", field_type=FieldType.NUMBER
    )
    CustomFieldDefinition.objects.create(
        key="rep_rating", label="Rep rating", field_type=FieldType.INTEGER, set_after_contact=True
    )


def build(
    n: int, *, seed: int = 7, start: datetime | None = None, prefix: str = "w"
) -> list[tuple[Lead, bool]]:
    """``n`` closed leads, the oldest decided about a year ago; returns leads and outcomes."""
    if not CustomFieldDefinition.objects.filter(key="interest").exists():
        custom_fields()
    rng = np.random.default_rng(seed)
    start = start or timezone.now() - timedelta(days=400)
    companies = Company.objects.bulk_create(
        Company(
            name=f"{prefix}-co{i}",
            industry=INDUSTRIES[i % len(INDUSTRIES)],
            employee_count=None if i % 4 == 0 else int(rng.integers(5, 5000)),
        )
        for i in range(60)
    )
    rows = []
    for i in range(n):
        company = companies[int(rng.integers(len(companies)))]
        seniority = SENIORITIES[int(rng.integers(len(SENIORITIES)))]
        interest = INTERESTS[int(rng.integers(len(INTERESTS)))]
        fleet = None if rng.random() < 0.3 else float(rng.integers(1, 400))
        views = int(rng.poisson(2.0))
        demo = rng.random() < 0.25
        logit = (
            -1.2
            + 1.4 * (company.industry == "software")
            - 0.8 * (company.industry == "education")
            + 1.0 * (seniority in ("c_level", "vp", "director"))
            - 1.5 * (seniority == "student")
            + 1.0 * (interest == "High")
            - 0.8 * (interest == "Low")
            + 0.5 * math.log1p(fleet or 0) / 3
            + 0.45 * views
            + 1.2 * demo
            - 1.0
        )
        won = bool(rng.random() < 1 / (1 + math.exp(-logit)))
        decided = start + timedelta(days=360 * i / n, hours=int(rng.integers(0, 24)))
        custom = {"interest": interest, "rep_rating": 5 if won else 1}
        if fleet is not None:
            custom["fleet_size"] = fleet
        lead = Lead(
            email=f"{prefix}{i}@world.example",
            company=company,
            seniority=seniority,
            source=["website", "referral", "paid_search"][i % 3],
            custom_fields=custom,
            created_at=decided - timedelta(days=30),
        )
        rows.append((lead, won, decided, views, demo))
    Lead.objects.bulk_create([row[0] for row in rows])
    Deal.objects.bulk_create(
        Deal(
            lead=lead,
            name="Deal",
            status=DealStatus.WON if won else DealStatus.LOST,
            created_at=decided,
            closed_at=decided + timedelta(days=20),
        )
        for lead, won, decided, _, _ in rows
    )
    Lead.objects.filter(pk__in=[row[0].pk for row in rows]).refresh_facts()
    activities = []
    for lead, won, decided, views, demo in rows:
        activities += [
            Activity(
                lead=lead,
                type=ActivityType.PAGE_VIEW,
                url=f"https://hotlist.example/pricing/{k}",
                duration_seconds=60,
                occurred_at=decided - timedelta(days=1 + k * 3),
                scored_at=decided,
            )
            for k in range(views)
        ]
        if demo:
            activities.append(
                Activity(
                    lead=lead,
                    type=ActivityType.DEMO_REQUEST,
                    occurred_at=decided - timedelta(days=2),
                    scored_at=decided,
                )
            )
        if won:  # the rep's meetings after the hand-off: only won leads have them
            activities.append(
                Activity(
                    lead=lead,
                    type=ActivityType.MEETING,
                    occurred_at=decided + timedelta(days=5),
                    scored_at=decided,
                )
            )
    Activity.objects.bulk_create(activities)
    return [(row[0], row[1]) for row in rows]

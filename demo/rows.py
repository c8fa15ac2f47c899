"""The rows the generator produces: plain objects, turned into model rows by
``demo.writers`` only when a chunk is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from demo.config import ACTIVITY_SOURCE
from demo.propensity import hidden_behaviour, hidden_fit
from leads.models import (
    DealOutcome,
    EmailStatus,
    Source,
    Stage,
)


@dataclass(slots=True)
class CompanyRow:
    name: str
    domain: str
    industry: str
    employee_count: int | None
    annual_revenue: Decimal | None
    country: str
    region: str
    city: str
    created_at: datetime
    id: int | None = None


@dataclass(slots=True)
class ActivityRow:
    type: str
    url: str = ""
    duration_seconds: int | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    created_by_id: int | None = None
    occurred_at: datetime | None = None
    received_at: datetime | None = None
    idempotency_key: str = ""
    source: str = ACTIVITY_SOURCE
    scored_at: datetime | None = None
    lead: LeadRow | None = None

    @property
    def lead_id(self) -> int | None:
        return self.lead.id if self.lead else None


@dataclass(slots=True)
class StageChangeRow:
    from_stage: str
    to_stage: str
    at: datetime
    by_id: int | None
    reason: str
    lead: LeadRow | None = None

    @property
    def lead_id(self) -> int | None:
        return self.lead.id if self.lead else None


@dataclass(slots=True)
class DealRow:
    name: str
    amount: Decimal
    status: str
    created_at: datetime
    closed_at: datetime | None
    lost_reason: str = ""
    currency: str = "EUR"
    lead: LeadRow | None = None
    stage_id: int | None = None
    stage_changed_at: datetime | None = None
    expected_close: date | None = None
    product_line_id: int | None = None
    owner_id: int | None = None

    def __post_init__(self) -> None:
        if self.stage_changed_at is None:
            self.stage_changed_at = self.created_at

    @property
    def lead_id(self) -> int | None:
        return self.lead.id if self.lead else None


@dataclass(slots=True)
class TaskRow:
    assignee_id: int
    title: str
    kind: str
    due_at: datetime
    done_at: datetime | None
    created_at: datetime
    lead: LeadRow | None = None

    @property
    def lead_id(self) -> int | None:
        return self.lead.id if self.lead else None


@dataclass(slots=True)
class NoteRow:
    author_id: int | None
    body: str
    created_at: datetime
    lead: LeadRow | None = None

    @property
    def lead_id(self) -> int | None:
        return self.lead.id if self.lead else None


@dataclass(slots=True)
class InterestRow:
    lead: LeadRow
    productline_id: int

    @property
    def lead_id(self) -> int | None:
        return self.lead.id


@dataclass(slots=True)
class LeadRow:
    serial: int
    kind: str  # "company", "private", "spam" or "competitor"
    company: CompanyRow | None
    first_name: str
    last_name: str
    email: str
    created_at: datetime
    country: str = ""
    region: str = ""
    city: str = ""
    phone: str = ""
    job_title: str = ""
    seniority: str = ""
    department: str = ""
    source: str = Source.WEBSITE
    campaign: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_term: str = ""
    utm_content: str = ""
    budget: str = ""
    authority: str = ""
    need: str = ""
    timeline: str = ""
    owner_id: int | None = None
    stage: str = Stage.NEW
    stage_changed_at: datetime | None = None
    disqualification_reason: str = ""
    email_status: str = EmailStatus.VALID
    custom_fields: dict[str, Any] = field(default_factory=dict)
    first_activity_at: datetime | None = None
    last_activity_at: datetime | None = None
    furthest_step: int = 0
    deal_outcome: int = DealOutcome.NONE
    updated_at: datetime | None = None
    products: list[int] = field(default_factory=list)
    activities: list[ActivityRow] = field(default_factory=list)
    stage_changes: list[StageChangeRow] = field(default_factory=list)
    deals: list[DealRow] = field(default_factory=list)
    tasks: list[TaskRow] = field(default_factory=list)
    notes: list[NoteRow] = field(default_factory=list)
    id: int | None = None

    @property
    def company_id(self) -> int | None:
        return self.company.id if self.company else None

    def fit(self) -> float:
        company = self.company
        return hidden_fit(
            industry=company.industry if company else "",
            employee_count=company.employee_count if company else None,
            seniority=self.seniority,
            department=self.department,
            budget=self.budget,
            authority=self.authority,
            need=self.need,
            timeline=self.timeline,
        )

    def behaviour(self) -> float:
        return hidden_behaviour((a.type, a.url) for a in self.activities)


@dataclass(slots=True)
class LeadBundle:
    """A unit of generation and writing: a company and its leads, or one lead alone."""

    company: CompanyRow | None
    leads: list[LeadRow]

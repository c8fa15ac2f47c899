"""The CRM's data: companies, leads and their stages, activities, deals, tasks and notes."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import (
    Case,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, Lower
from django.urls import reverse
from django.utils import timezone

from .custom_fields import CustomFieldDefinition, FieldType

if TYPE_CHECKING:
    from crm.models import User

__all__ = [
    "Activity",
    "ActivityType",
    "Company",
    "CustomFieldDefinition",
    "Deal",
    "DealOutcome",
    "FieldType",
    "IdentityKind",
    "Lead",
    "Note",
    "PendingEvent",
    "ProductLine",
    "Stage",
    "StageChange",
    "Task",
    "TrackedEvent",
    "TrackingIdentity",
    "TrackingKey",
    "WebForm",
]


def normalize_email(email: str) -> str:
    """One spelling per mailbox: surrounding blanks dropped, the whole address lower-cased."""
    return (email or "").strip().lower()


class Industry(models.TextChoices):
    SOFTWARE = "software", "Software"
    FINANCE = "finance", "Financial services"
    HEALTHCARE = "healthcare", "Healthcare"
    MANUFACTURING = "manufacturing", "Manufacturing"
    RETAIL = "retail", "Retail"
    EDUCATION = "education", "Education"
    GOVERNMENT = "government", "Government"
    MEDIA = "media", "Media"
    LOGISTICS = "logistics", "Logistics"
    CONSULTING = "consulting", "Consulting"
    NONPROFIT = "nonprofit", "Non-profit"
    OTHER = "other", "Other"


class Company(models.Model):
    name = models.CharField(max_length=200)
    domain = models.CharField(max_length=253, blank=True, help_text="example.com")
    industry = models.CharField(max_length=30, choices=Industry.choices, blank=True)
    employee_count = models.PositiveIntegerField(null=True, blank=True)
    annual_revenue = models.DecimalField(
        max_digits=15, decimal_places=2, null=True, blank=True, help_text="In the account currency."
    )
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 code, e.g. DE")
    region = models.CharField(max_length=100, blank=True)
    city = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("domain"), condition=~Q(domain=""), name="company_unique_domain"
            )
        ]
        # The leads list sorted by company walks this, then each company's leads.
        indexes = [models.Index(fields=["name", "id"], name="company_name_idx")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.domain = self.domain.strip().lower()
        super().save(*args, **kwargs)


class ProductLine(models.Model):
    """A product or service line leads can be interested in and reps can specialise in."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    # The reps who sell this line (``user.product_lines`` from the other side). Declared
    # here so that ``crm`` knows nothing of leads; the table keeps the name it had when
    # the relation was declared on the user.
    reps = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="product_lines",
        db_table="crm_user_product_lines",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Stage(models.TextChoices):
    NEW = "new", "New"
    MQL = "mql", "MQL"
    SQL = "sql", "SQL"
    OPPORTUNITY = "opportunity", "Opportunity"
    CUSTOMER = "customer", "Customer"
    DISQUALIFIED = "disqualified", "Disqualified"
    RECYCLED = "recycled", "Recycled"


# The funnel order; a lead moves forward along it, possibly skipping steps.
FUNNEL = [Stage.NEW, Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER]
# How far along the funnel each of its stages is, 0 (new) to 4 (customer).
FUNNEL_STEP = {stage: step for step, stage in enumerate(FUNNEL)}


def funnel_step(stage: str) -> int:
    """How far along the funnel ``stage`` is; disqualified and recycled are off it (0)."""
    return FUNNEL_STEP.get(stage, 0)


ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Stage.NEW: frozenset({Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.DISQUALIFIED}),
    Stage.MQL: frozenset({Stage.SQL, Stage.OPPORTUNITY, Stage.DISQUALIFIED, Stage.RECYCLED}),
    Stage.SQL: frozenset({Stage.OPPORTUNITY, Stage.DISQUALIFIED, Stage.RECYCLED}),
    Stage.OPPORTUNITY: frozenset({Stage.CUSTOMER, Stage.DISQUALIFIED, Stage.RECYCLED}),
    Stage.CUSTOMER: frozenset(),
    Stage.DISQUALIFIED: frozenset({Stage.RECYCLED}),
    Stage.RECYCLED: frozenset({Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.DISQUALIFIED}),
}


class Seniority(models.TextChoices):
    C_LEVEL = "c_level", "C-level"
    VP = "vp", "VP"
    DIRECTOR = "director", "Director"
    MANAGER = "manager", "Manager"
    INDIVIDUAL = "individual", "Individual contributor"
    STUDENT = "student", "Student"
    UNKNOWN = "", "Unknown"


class Department(models.TextChoices):
    EXECUTIVE = "executive", "Executive"
    SALES = "sales", "Sales"
    MARKETING = "marketing", "Marketing"
    ENGINEERING = "engineering", "Engineering"
    IT = "it", "IT"
    FINANCE = "finance", "Finance"
    OPERATIONS = "operations", "Operations"
    HR = "hr", "Human resources"
    OTHER = "other", "Other"
    UNKNOWN = "", "Unknown"


class Source(models.TextChoices):
    WEBSITE = "website", "Website"
    ORGANIC_SEARCH = "organic_search", "Organic search"
    PAID_SEARCH = "paid_search", "Paid search"
    SOCIAL = "social", "Social"
    EMAIL = "email", "Email"
    REFERRAL = "referral", "Referral"
    EVENT = "event", "Event"
    PARTNER = "partner", "Partner"
    OUTBOUND = "outbound", "Outbound"
    IMPORT = "import", "Import"
    OTHER = "other", "Other"


class Budget(models.TextChoices):
    UNKNOWN = "", "Unknown"
    NONE = "none", "No budget"
    UNDER_10K = "under_10k", "Under 10k"
    FROM_10K = "10k_50k", "10k to 50k"
    FROM_50K = "50k_250k", "50k to 250k"
    OVER_250K = "over_250k", "Over 250k"


class Authority(models.TextChoices):
    UNKNOWN = "", "Unknown"
    DECISION_MAKER = "decision_maker", "Decision maker"
    INFLUENCER = "influencer", "Influencer"
    USER = "user", "End user"
    NONE = "none", "No authority"


class Need(models.TextChoices):
    UNKNOWN = "", "Unknown"
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"
    NONE = "none", "None"


class Timeline(models.TextChoices):
    UNKNOWN = "", "Unknown"
    NOW = "now", "Now"
    QUARTER = "quarter", "Within 3 months"
    HALF_YEAR = "half_year", "Within 6 months"
    YEAR = "year", "Within 12 months"
    LATER = "later", "Later or never"


class EmailStatus(models.TextChoices):
    VALID = "valid", "Valid"
    BOUNCED = "bounced", "Bounced"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"


class Band(models.TextChoices):
    HOT = "hot", "Hot"
    WARM = "warm", "Warm"
    COLD = "cold", "Cold"


class Grade(models.TextChoices):
    A = "A", "A"
    B = "B", "B"
    C = "C", "C"
    D = "D", "D"


class Quadrant(models.TextChoices):
    """Fit against engagement: who to call, who to nurture, who to watch, who to ignore."""

    HOT = "hot", "Hot (good fit, engaged)"
    TARGET = "target", "Long-term target (good fit, quiet)"
    RESEARCHER = "researcher", "Researcher (poor fit, engaged)"
    COLD = "cold", "Cold (poor fit, quiet)"


class DealOutcome(models.IntegerChoices):
    """What a lead's deals came to, the best of them: one won deal makes a won lead."""

    NONE = 0, "No closed deal"
    LOST = 1, "Lost"
    WON = 2, "Won"

    @classmethod
    def of(cls, statuses: Iterable[str]) -> DealOutcome:
        found = set(statuses)
        if DealStatus.WON in found:
            return cls.WON
        if DealStatus.LOST in found:
            return cls.LOST
        return cls.NONE


def furthest_step_of(stage: str, changes: Iterable[tuple[str, str]]) -> int:
    """The furthest funnel step of a lead in ``stage`` with the ``(from_stage, to_stage)``
    history ``changes``: a disqualified or recycled lead keeps the steps it passed."""
    return max([funnel_step(stage), *(funnel_step(s) for change in changes for s in change)])


class LeadQuerySet(models.QuerySet["Lead"]):
    def visible_to(self, user: User) -> LeadQuerySet:
        """The leads a user may see: all for admins and marketers, the team's and the
        unassigned pool for managers, their own and the pool for reps, none for anyone else."""
        from crm.models import Role

        if not user.is_authenticated or not user.is_active:
            return self.none()
        role = user.role
        if role in (Role.ADMIN, Role.MARKETER):
            return self.all()
        if role == Role.MANAGER:
            return self.filter(
                Q(owner__isnull=True)
                | Q(owner=user)
                | Q(owner__team__manager=user)
                | Q(owner__team__isnull=False, owner__team=user.team)
            )
        if role == Role.REP:
            return self.filter(Q(owner=user) | Q(owner__isnull=True))
        return self.none()

    def hottest(self) -> LeadQuerySet:
        return self.order_by("-score", "-id")

    def open(self) -> LeadQuerySet:
        return self.exclude(stage__in=[Stage.CUSTOMER, Stage.DISQUALIFIED])

    def stale_facts(self) -> LeadQuerySet:
        """The leads whose stored ``furthest_step`` or ``deal_outcome`` differs from what
        their stage, stage history and deals give (none, while every write keeps them)."""
        return self.alias(
            furthest_found=_furthest_step_expression(), outcome_found=_deal_outcome_expression()
        ).exclude(furthest_step=F("furthest_found"), deal_outcome=F("outcome_found"))

    def refresh_facts(self) -> int:
        """Set ``furthest_step`` and ``deal_outcome`` from the stage history and the deals,
        set-based, writing only the rows that differ; returns how many."""
        return self.model.objects.filter(pk__in=self.stale_facts().values("pk")).update(
            furthest_step=_furthest_step_expression(), deal_outcome=_deal_outcome_expression()
        )

    def refresh_furthest_step(self) -> int:
        """Set ``furthest_step`` from the leads' stages and stage histories."""
        return self.update(furthest_step=_furthest_step_expression())

    def refresh_deal_outcome(self) -> int:
        """Set ``deal_outcome`` from the leads' deals; call with the leads' rows locked
        (``leads.deals`` does), or a concurrent deal write may be missed."""
        return self.update(deal_outcome=_deal_outcome_expression())

    def lock(self) -> None:
        """Lock the leads' rows in id order, as every writer of several leads does, so
        that two of them wait for each other instead of deadlocking."""
        list(self.order_by("pk").select_for_update(no_key=True).values_list("pk", flat=True))


def _step_expression(field: str) -> Case:
    """SQL for ``funnel_step`` of a stage column."""
    return Case(
        *[When(**{field: stage}, then=Value(step)) for stage, step in FUNNEL_STEP.items() if step],
        default=Value(0),
        output_field=IntegerField(),
    )


def _furthest_step_expression() -> Greatest:
    """SQL for ``furthest_step_of`` a lead's stage and history, one lead at a time."""
    history = (
        StageChange.objects.filter(lead=OuterRef("pk"))
        .order_by()
        .values("lead")
        .annotate(step=Max(Greatest(_step_expression("from_stage"), _step_expression("to_stage"))))
        .values("step")
    )
    return Greatest(_step_expression("stage"), Coalesce(Subquery(history), Value(0)))


def _deal_outcome_expression() -> Case:
    """SQL for ``DealOutcome.of`` a lead's deals."""
    deals = Deal.objects.filter(lead=OuterRef("pk"))
    return Case(
        When(Exists(deals.filter(status=DealStatus.WON)), then=Value(DealOutcome.WON.value)),
        When(Exists(deals.filter(status=DealStatus.LOST)), then=Value(DealOutcome.LOST.value)),
        default=Value(DealOutcome.NONE.value),
        output_field=IntegerField(),
    )


class StageTransitionError(ValidationError):
    """A stage move that the lifecycle does not allow."""


class Lead(models.Model):
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(max_length=254)
    phone = models.CharField(max_length=40, blank=True)
    job_title = models.CharField(max_length=200, blank=True)
    seniority = models.CharField(max_length=20, choices=Seniority.choices, blank=True)
    department = models.CharField(max_length=20, choices=Department.choices, blank=True)
    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.SET_NULL, related_name="leads"
    )
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 code, e.g. DE")
    region = models.CharField(max_length=100, blank=True)
    city = models.CharField(max_length=100, blank=True)

    source = models.CharField(max_length=20, choices=Source.choices, default=Source.WEBSITE)
    campaign = models.CharField(max_length=200, blank=True)
    utm_source = models.CharField(max_length=200, blank=True)
    utm_medium = models.CharField(max_length=200, blank=True)
    utm_campaign = models.CharField(max_length=200, blank=True)
    utm_term = models.CharField(max_length=200, blank=True)
    utm_content = models.CharField(max_length=200, blank=True)
    product_interests = models.ManyToManyField(ProductLine, blank=True, related_name="leads")

    budget = models.CharField(max_length=20, choices=Budget.choices, blank=True)
    authority = models.CharField(max_length=20, choices=Authority.choices, blank=True)
    need = models.CharField(max_length=20, choices=Need.choices, blank=True)
    timeline = models.CharField(max_length=20, choices=Timeline.choices, blank=True)

    # Indexed by lead_owner_hottest_idx, which starts with the owner: a lead row is
    # rewritten on every score change, and each index costs each rewrite an entry.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_leads",
        db_index=False,
    )
    stage = models.CharField(max_length=20, choices=Stage.choices, default=Stage.NEW)
    stage_changed_at = models.DateTimeField(default=timezone.now)
    disqualification_reason = models.CharField(max_length=200, blank=True)
    email_status = models.CharField(
        max_length=20, choices=EmailStatus.choices, default=EmailStatus.VALID
    )
    custom_fields = models.JSONField(default=dict, blank=True)

    # Materialized by the scoring engine for fast, sorted lists.
    score = models.IntegerField(default=0)
    fit_score = models.IntegerField(default=0)
    engagement_score = models.FloatField(default=0)
    engagement_at = models.DateTimeField(
        null=True, blank=True, help_text="When engagement_score was last brought up to date."
    )
    band = models.CharField(max_length=10, choices=Band.choices, default=Band.COLD)
    grade = models.CharField(max_length=1, choices=Grade.choices, default=Grade.D)
    quadrant = models.CharField(max_length=12, choices=Quadrant.choices, default=Quadrant.COLD)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    first_activity_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    # Facts the reports count a million leads by, kept on the row by every stage and deal
    # write (``save`` here, ``leads.stages`` and ``leads.deals``) so that a
    # report reads the leads alone instead of aggregating the whole history per request.
    furthest_step = models.SmallIntegerField(
        default=0,
        db_default=0,
        editable=False,
        help_text="The furthest funnel step reached, 0 (new) to 4 (customer), kept after "
        "a disqualification or a recycle.",
    )
    deal_outcome = models.SmallIntegerField(
        choices=DealOutcome.choices, default=DealOutcome.NONE, db_default=0, editable=False
    )

    objects = LeadQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="lead_unique_email_ci"),
            models.CheckConstraint(
                condition=~Q(stage="disqualified") | ~Q(disqualification_reason=""),
                name="lead_disqualified_has_reason",
            ),
        ]
        indexes = [
            models.Index(fields=["-score", "-id"], name="lead_hottest_idx"),
            models.Index(fields=["owner", "-score", "-id"], name="lead_owner_hottest_idx"),
            models.Index(fields=["stage", "-score"], name="lead_stage_score_idx"),
            models.Index(fields=["band", "-score"], name="lead_band_score_idx"),
            # Band and stage together, the list's most used pair of filters: "warm MQLs"
            # in a rep's view otherwise walk every lead the rep sees.
            models.Index(
                fields=["band", "stage", "-score", "-id"], name="lead_band_stage_score_idx"
            ),
            models.Index(fields=["-last_activity_at"], name="lead_last_activity_idx"),
            # The leads list's other sort orders, each ending in the id its keyset pages use.
            models.Index(fields=["last_name", "first_name", "id"], name="lead_name_idx"),
            models.Index(fields=["-stage_changed_at", "-id"], name="lead_stage_changed_idx"),
            # Filters whose values can be rare (grade A, the hot quadrant): their matches
            # hottest first, without scanning the whole list for them.
            models.Index(fields=["grade", "-score", "-id"], name="lead_grade_score_idx"),
            models.Index(fields=["quadrant", "-score", "-id"], name="lead_quadrant_score_idx"),
            # A rep's list: the unassigned pool, hottest first, beside lead_owner_hottest_idx.
            models.Index(
                fields=["-score", "-id"],
                condition=Q(owner__isnull=True),
                name="lead_pool_hottest_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.full_name or self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = normalize_email(self.email)
        # The stage now counts towards the furthest step, whichever way it was set.
        self.furthest_step = max(self.furthest_step, funnel_step(self.stage))
        fields = kwargs.get("update_fields")
        if fields is not None and "stage" in fields and "furthest_step" not in fields:
            kwargs["update_fields"] = [*fields, "furthest_step"]
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("lead-detail", args=[self.pk])

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def email_domain(self) -> str:
        return self.email.rpartition("@")[2]

    def clean(self) -> None:
        self.email = normalize_email(self.email)
        if self.stage == Stage.DISQUALIFIED and not self.disqualification_reason:
            raise ValidationError({"disqualification_reason": "Say why the lead is disqualified."})
        self.custom_fields = CustomFieldDefinition.clean_values(self.custom_fields)

    def can_move_to(self, stage: str) -> bool:
        return stage in ALLOWED_TRANSITIONS[self.stage]

    def set_stage(self, stage: str, *, reason: str = "", at: dt.datetime) -> list[str]:
        """Move this row along the lifecycle in memory, as of ``at``; the fields to save.

        ``leads.stages.lead_move_to_stage`` saves them and records the move. Raises
        ``StageTransitionError`` for a move the lifecycle does not allow, leaving the
        lead unchanged.
        """
        stage = Stage(stage)
        reason = reason.strip()
        if stage == self.stage:
            raise StageTransitionError(f"The lead is already {stage.label}.")
        if not self.can_move_to(stage):
            raise StageTransitionError(
                f"A lead cannot move from {Stage(self.stage).label} to {stage.label}."
            )
        if stage == Stage.DISQUALIFIED and not reason:
            raise StageTransitionError("Say why the lead is disqualified.")
        self.stage = stage
        self.stage_changed_at = at
        fields = ["stage", "stage_changed_at", "updated_at"]
        if stage == Stage.DISQUALIFIED:
            self.disqualification_reason = reason[:200]
            fields.append("disqualification_reason")
        elif self.disqualification_reason:
            self.disqualification_reason = ""
            fields.append("disqualification_reason")
        return fields


class StageChange(models.Model):
    """Append-only history of a lead's stage; ``by`` is empty when the system moved it.

    Written and deleted through ``leads.stages``, which keeps the lead's ``furthest_step``.
    """

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="stage_changes")
    from_stage = models.CharField(max_length=20, choices=Stage.choices)
    to_stage = models.CharField(max_length=20, choices=Stage.choices)
    at = models.DateTimeField(default=timezone.now)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["lead", "at"], name="stagechange_lead_at_idx"),
            models.Index(fields=["to_stage", "at"], name="stagechange_to_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.from_stage} → {self.to_stage}"

    @property
    def by_system(self) -> bool:
        return self.by_id is None


class ActivityType(models.TextChoices):
    PAGE_VIEW = "page_view", "Page view"
    EMAIL_OPEN = "email_open", "Email open"
    EMAIL_CLICK = "email_click", "Email click"
    EMAIL_REPLY = "email_reply", "Email reply"
    EMAIL_BOUNCE = "email_bounce", "Email bounce"
    FORM_SUBMISSION = "form_submission", "Form submission"
    CONTENT_DOWNLOAD = "content_download", "Content download"
    WEBINAR_REGISTRATION = "webinar_registration", "Webinar registration"
    WEBINAR_ATTENDANCE = "webinar_attendance", "Webinar attendance"
    DEMO_REQUEST = "demo_request", "Demo request"
    QUOTE_REQUEST = "quote_request", "Quote request"
    TRIAL_SIGNUP = "trial_signup", "Trial sign-up"
    SOCIAL_ENGAGEMENT = "social_engagement", "Social engagement"
    EVENT_ATTENDANCE = "event_attendance", "Event attendance"
    CALL = "call", "Call"
    MEETING = "meeting", "Meeting"
    NOTE = "note", "Note"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe"
    CUSTOM = "custom", "Custom"


# Activities a rep logs by hand: the first of these after a hand-off is the "touch"
# that speed-to-lead measures.
SALES_TOUCH_TYPES = frozenset({ActivityType.CALL, ActivityType.MEETING, ActivityType.EMAIL_REPLY})


class ActivityQuerySet(models.QuerySet["Activity"]):
    def unscored(self) -> ActivityQuerySet:
        return self.filter(scored_at__isnull=True)


class Activity(models.Model):
    """A behavioural or sales event on a lead.

    The row doubles as the scoring outbox: ``scored_at`` stays empty until the
    scoring engine has applied it, so a lost task message delays a score but
    never loses it.
    """

    # Indexed by the timeline index, which starts with the lead.
    lead = models.ForeignKey(
        Lead, on_delete=models.CASCADE, related_name="activities", db_index=False
    )
    type = models.CharField(max_length=30, choices=ActivityType.choices)
    url = models.CharField(max_length=2000, blank=True)
    duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    received_at = models.DateTimeField(default=timezone.now, editable=False)
    source = models.CharField(
        max_length=50, default="crm", help_text="Where the event came from: api, form, tracking…"
    )
    idempotency_key = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    scored_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ActivityQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "activities"
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="activity_unique_key_per_source",
            )
        ]
        indexes = [
            models.Index(fields=["lead", "-occurred_at"], name="activity_timeline_idx"),
            # Activities of a type, per lead: what one engagement rule can match.
            models.Index(fields=["type", "lead", "occurred_at"], name="activity_type_lead_idx"),
            models.Index(
                fields=["lead"], condition=Q(scored_at__isnull=True), name="activity_unscored_idx"
            ),
            # Most activities come from tracking, not a person: only the others are indexed.
            models.Index(
                fields=["created_by"],
                condition=Q(created_by__isnull=False),
                name="activity_created_by_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} at {self.occurred_at:%Y-%m-%d %H:%M}"


class DealStatus(models.TextChoices):
    OPEN = "open", "Open"
    WON = "won", "Won"
    LOST = "lost", "Lost"


class Deal(models.Model):
    """A lead's deal, written and deleted through ``leads.deals``, which keeps its lead's
    ``deal_outcome``."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="deals")
    name = models.CharField(max_length=200)
    amount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, default="EUR")
    status = models.CharField(max_length=10, choices=DealStatus.choices, default=DealStatus.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    lost_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="open", closed_at__isnull=True)
                | (~Q(status="open") & Q(closed_at__isnull=False)),
                name="deal_closed_at_matches_status",
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="deal_amount_not_negative"),
        ]
        indexes = [models.Index(fields=["status", "closed_at"], name="deal_status_closed_idx")]

    def __str__(self) -> str:
        return self.name


class TaskKind(models.TextChoices):
    CALL = "call", "Call"
    EMAIL = "email", "Email"
    MEETING = "meeting", "Meeting"
    FOLLOW_UP = "follow_up", "Follow-up"
    OTHER = "other", "Other"


class TaskQuerySet(models.QuerySet["Task"]):
    def open(self) -> TaskQuerySet:
        return self.filter(done_at__isnull=True)

    def overdue(self, now: Any = None) -> TaskQuerySet:
        return self.open().filter(due_at__lt=now or timezone.now())


class Task(models.Model):
    lead = models.ForeignKey(
        Lead, null=True, blank=True, on_delete=models.CASCADE, related_name="tasks"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tasks"
    )
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=TaskKind.choices, default=TaskKind.FOLLOW_UP)
    due_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["due_at"]
        indexes = [
            models.Index(
                fields=["assignee", "due_at"],
                condition=Q(done_at__isnull=True),
                name="task_open_due_idx",
            )
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_overdue(self) -> bool:
        return self.done_at is None and self.due_at < timezone.now()


class Note(models.Model):
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.body[:60]


# Lead fields a public form may fill; ``company`` names a company, found or created by name.
FORM_LEAD_FIELDS = frozenset(
    {
        "email",
        "first_name",
        "last_name",
        "phone",
        "job_title",
        "company",
        "country",
        "region",
        "city",
    }
)
# Posted names read for what they are, never mapped to a lead field.
FORM_RESERVED_NAMES = frozenset(
    {"page_url", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"}
)


def new_form_key() -> str:
    return secrets.token_urlsafe(18)


def default_field_mapping() -> dict[str, str]:
    return {"email": "email", "first_name": "first_name", "last_name": "last_name"}


class WebForm(models.Model):
    """A form on a public website whose submissions create or update leads.

    The key in ``/f/<key>/`` only submits: it reads nothing, so it may sit in the
    HTML of any page. Regenerating it stops submissions sent to the old one.
    """

    name = models.CharField(max_length=100, unique=True)
    key = models.CharField(
        max_length=32,
        unique=True,
        default=new_form_key,
        editable=False,
        help_text="Public: forms post to /f/<key>/.",
    )
    is_active = models.BooleanField(
        "active", default=True, help_text="An inactive form answers 404 to every post."
    )
    field_mapping = models.JSONField(
        default=default_field_mapping,
        help_text='Posted field name → lead field, e.g. {"email": "email", "fname": '
        '"first_name", "company": "company"}. Lead fields: '
        + ", ".join(sorted(FORM_LEAD_FIELDS))
        + ". Email must be mapped.",
    )
    allowed_origins = models.TextField(
        blank=True,
        help_text="Pages whose scripts may post and read the answer (CORS), one origin a line, "
        "e.g. https://www.example.com. Plain HTML form posts work from anywhere.",
    )
    redirect_url = models.URLField(
        "thank-you URL",
        max_length=500,
        blank=True,
        help_text="Where a browser goes after posting; empty shows a short thank-you page.",
    )
    default_source = models.CharField(
        max_length=20,
        choices=Source.choices,
        default=Source.WEBSITE,
        help_text="For new leads when the post carries no UTM medium that names a source.",
    )
    default_campaign = models.CharField(
        max_length=200, blank=True, help_text="For new leads when the post carries no utm_campaign."
    )
    honeypot_field = models.CharField(
        max_length=100,
        default="website",
        help_text="A field hidden from people: a post that fills it is dropped as spam.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "web form"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("form-submit", args=[self.key])

    @property
    def origins(self) -> list[str]:
        return [
            normalize_origin(line) for line in self.allowed_origins.splitlines() if line.strip()
        ]

    def allows_origin(self, origin: str) -> bool:
        return bool(origin) and normalize_origin(origin) in self.origins

    def mapped_names(self) -> dict[str, str]:
        """Lead field → posted name, for the fields this form fills."""
        return {target: posted for posted, target in self.field_mapping.items()}

    def honeypot_filled(self, data: Mapping[str, Any]) -> bool:
        """Whether a post filled the field people never see, as spam bots do."""
        value = data.get(self.honeypot_field)
        values = value if isinstance(value, list) else [value]
        return any(str(v).strip() for v in values if v is not None)

    def regenerate_key(self) -> None:
        """A new public key; posts to the old one answer 404 from now on."""
        self.key = new_form_key()
        self.save(update_fields=["key"])

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        mapping_errors = field_mapping_errors(self.field_mapping, honeypot=self.honeypot_field)
        if mapping_errors:
            errors["field_mapping"] = mapping_errors
        origin_errors = [
            f"“{line.strip()}” is not an origin such as https://www.example.com."
            for line in self.allowed_origins.splitlines()
            if line.strip() and not is_origin(line.strip())
        ]
        if origin_errors:
            errors["allowed_origins"] = origin_errors
        if errors:
            raise ValidationError(errors)
        self.allowed_origins = "\n".join(self.origins)


def field_mapping_errors(mapping: Any, *, honeypot: str) -> list[str]:
    """What is wrong with a form's field mapping; empty when it can be used."""
    if not isinstance(mapping, dict):
        return ['Give the mapping as an object: {"posted name": "lead field"}.']
    errors = []
    for posted, target in mapping.items():
        if not isinstance(target, str) or target not in FORM_LEAD_FIELDS:
            errors.append(f"{posted}: “{target}” is not a lead field a form can set.")
        elif posted in FORM_RESERVED_NAMES:
            errors.append(f"{posted}: this name is read as it is and cannot be mapped.")
        elif posted == honeypot:
            errors.append(f"{posted}: this is the honeypot field.")
    targets = [target for target in mapping.values() if isinstance(target, str)]
    duplicates = sorted({target for target in targets if targets.count(target) > 1})
    errors.extend(f"{target}: more than one posted field maps to it." for target in duplicates)
    if "email" not in targets:
        errors.append("Map a posted field to email: leads are found by their email.")
    return errors


def normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def is_origin(value: str) -> bool:
    """``scheme://host[:port]`` with nothing after it, as browsers send in ``Origin``."""
    try:
        parts = urlsplit(value.strip().rstrip("/"))
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not (parts.path or parts.query or parts.fragment or parts.username)
    )


# The hand-off's and the tracking endpoint's models live in modules of their own;
# importing them here makes them part of this app.
from .handoff_models import AssignmentRule, HandOff, LeadRating, Notification  # noqa: E402, F401
from .tracking_models import (  # noqa: E402
    IdentityKind,
    PendingEvent,
    TrackedEvent,
    TrackingIdentity,
    TrackingKey,
)

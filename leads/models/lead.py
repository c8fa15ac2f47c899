"""The lead, its visibility to users, and the report facts kept on its row."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    F,
    Func,
    IntegerField,
    Max,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Concat, Greatest, Lower, NullIf, Trim
from django.urls import reverse
from django.utils import timezone

from crm.models import Role, User

from ..custom_fields import CustomFieldDefinition
from ..name_collation import SQLITE_NAME_COLLATION
from .company import Company
from .deal import Deal, DealOutcome, DealStatus
from .lead_choices import (
    Authority,
    Band,
    Budget,
    Department,
    EmailStatus,
    Grade,
    Need,
    Quadrant,
    Seniority,
    Source,
    Timeline,
)
from .product_line import ProductLine
from .stage import (
    ALLOWED_TRANSITIONS,
    FUNNEL_STEP,
    Stage,
    StageChange,
    StageTransitionError,
    funnel_step,
)


def normalize_email(email: str) -> str:
    """One spelling per mailbox: surrounding blanks dropped, the whole address lower-cased."""
    return (email or "").strip().lower()


# The stages a lead's work is over in: won, or ruled out.
CLOSED_STAGES = (Stage.CUSTOMER, Stage.DISQUALIFIED)
# What ``owner_visibility`` answers for a person who sees no lead.
SEES_NOTHING = Q(pk__in=[])


def owner_visibility(user: User, *, lead: str = "", resolved: bool = False) -> Q:
    """``LeadQuerySet.visible_to`` said of the lead's owner alone, for rows that point at
    a lead (``lead`` is the path to it, e.g. ``"lead__"``): a manager's people are looked
    up among the users, a small table, instead of joining every lead's owner and team,
    so that a query driven by the rows (a deal board) need not read the leads first.
    ``Q()`` for a person who sees every lead. ``resolved`` reads a manager's people now,
    in a query of its own, and names them: for a caller that puts the condition in
    several queries, each then compiles a list instead of the people's subquery."""
    if not user.is_authenticated or not user.is_active:
        return SEES_NOTHING
    role = user.role
    if role in (Role.ADMIN, Role.MARKETER):
        return Q()
    pool = Q(**{f"{lead}owner__isnull": True})
    if role == Role.MANAGER:
        people = User.objects.filter(
            Q(pk=user.pk) | Q(team__manager=user) | Q(team__isnull=False, team=user.team_id)
        ).values_list("pk", flat=True)
        return pool | Q(**{f"{lead}owner__in": list(people) if resolved else people})
    if role == Role.REP:
        return pool | Q(**{f"{lead}owner": user})
    return SEES_NOTHING


class LeadQuerySet(models.QuerySet["Lead"]):
    def visible_to(self, user: User) -> LeadQuerySet:
        """The leads a user may see: all for admins and marketers, the team's and the
        unassigned pool for managers, their own and the pool for reps, none for anyone else."""
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

    def visible_in_rank(self, user: User) -> LeadQuerySet:
        """``visible_to`` said of the rank's copy of the owner (``owner_visibility``),
        joined inner: the lists, whose filters and sorts are on the rank, then find the
        leads a person sees in the rank's indexes and read only the lead rows they show
        (a rep's score range: the owner's hottest-first index in place of a lookup of
        every candidate's lead for its owner)."""
        visibility = owner_visibility(user, lead="rank__")
        if visibility is SEES_NOTHING:
            return self.none()
        return self.ranked().filter(visibility)

    def ranked(self) -> LeadQuerySet:
        """Join each lead's ``rank`` (``leads.models.lead_rank``) inner, so that filters
        and sorts on ``rank__…`` columns can start from the rank's indexes: joined outer
        (what Django does for a sort on a reverse one-to-one) the database must read
        every lead before it can sort. Every lead has its rank row."""
        return self.filter(rank__isnull=False)

    def hottest(self) -> LeadQuerySet:
        return self.ranked().order_by("-rank__score", "-id")

    def open(self) -> LeadQuerySet:
        return self.exclude(stage__in=CLOSED_STAGES)

    def stale_facts(self) -> LeadQuerySet:
        """The leads whose stored ``furthest_step`` or ``deal_outcome`` differs from what
        their stage, stage history and deals give (none, while every write keeps them)."""
        return self.alias(
            furthest_found=_furthest_step_expression(), outcome_found=_deal_outcome_expression()
        ).exclude(furthest_step=F("furthest_found"), deal_outcome=F("outcome_found"))

    def refresh_facts(self) -> int:
        """Set ``furthest_step`` and ``deal_outcome`` from the stage history and the deals,
        set-based, writing only the rows that differ; returns how many.

        One statement: the leads joined to their histories' furthest steps and their
        deals' outcomes, each grouped by lead in one pass, so that a million leads cost
        three scans and hash joins, not index probes of the history and the deals for
        each lead."""
        ids = self.order_by().values("pk")
        leads = (
            self.order_by()
            .annotate(own_step=_step_expression("stage"))
            .values("id", "own_step", "furthest_step", "deal_outcome")
        )
        history = (
            StageChange.objects.filter(lead__in=ids)
            .order_by()
            .values("lead_id")
            .annotate(
                step=Max(Greatest(_step_expression("from_stage"), _step_expression("to_stage")))
            )
        )
        deals = (
            Deal.objects.filter(lead__in=ids)
            .order_by()
            .values("lead_id")
            .annotate(
                won=Count("pk", filter=Q(status=DealStatus.WON)),
                lost=Count("pk", filter=Q(status=DealStatus.LOST)),
            )
        )
        (leads_sql, leads_params), (history_sql, history_params), (deals_sql, deals_params) = (
            query.query.sql_with_params() for query in (leads, history, deals)
        )
        found = f"""
            SELECT l.id, l.furthest_step AS stored_step, l.deal_outcome AS stored_outcome,
                   CASE WHEN COALESCE(h.step, 0) > l.own_step THEN h.step
                        ELSE l.own_step END AS step,
                   CASE WHEN d.won > 0 THEN {DealOutcome.WON.value}
                        WHEN d.lost > 0 THEN {DealOutcome.LOST.value}
                        ELSE {DealOutcome.NONE.value} END AS outcome
            FROM ({leads_sql}) l
            LEFT JOIN ({history_sql}) h ON h.lead_id = l.id
            LEFT JOIN ({deals_sql}) d ON d.lead_id = l.id
        """
        table = self.model._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET furthest_step = f.step, deal_outcome = f.outcome "
                f"FROM ({found}) f WHERE {table}.id = f.id "
                "AND (f.stored_step <> f.step OR f.stored_outcome <> f.outcome)",
                [*leads_params, *history_params, *deals_params],
            )
            return cursor.rowcount

    def refresh_furthest_step(self) -> int:
        """Set ``furthest_step`` from the leads' stages and stage histories."""
        return self.update(furthest_step=_furthest_step_expression())

    def refresh_deal_outcome(self) -> int:
        """Set ``deal_outcome`` from the leads' deals; call with the leads' rows locked
        (``leads.deals`` does), or a concurrent deal write may be missed."""
        return self.update(deal_outcome=_deal_outcome_expression())

    def lock(self, *, for_delete: bool = False) -> None:
        """Lock the leads' rows in id order, as every writer of several leads does, so
        that two of them wait for each other instead of deadlocking.

        ``for_delete`` takes the stronger ``FOR UPDATE``, which also holds off every
        insert of a row that references one of the leads (its foreign key check waits)
        until the transaction ends: what a merge takes, so that no activity or note
        lands on a lead between the move of its rows and its deletion."""
        rows = self.order_by("pk").select_for_update(no_key=not for_delete)
        list(rows.values_list("pk", flat=True))


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


# The columns the scoring engine materializes on a lead (from its primary score): shown
# on the lead, sorted and filtered through its rank, never written by a person or an
# API client.
SCORE_COLUMNS = ("score", "fit_score", "engagement_score", "band", "grade", "quadrant")


# The collation the name sort compares in on PostgreSQL: ICU's root locale, which orders
# "Émile" among the E's and "ada" before "Bob" (accents and case count only to break a tie).
NAME_COLLATION = "und-x-icu"


class NameSortKey(Func):
    """The name the lists show for a lead (``Lead.__str__``: "first last", else the
    email), as the key the name sort orders by.

    On PostgreSQL compared in ``NAME_COLLATION`` (accent- and case-aware, and
    deterministic, so equal keys and keyset comparisons agree with the order); the
    expression index ``lead_display_name_idx`` holds it, ending in the id the pages
    use. On SQLite compared in the collation ``leads.name_collation`` registers: accents
    and case set aside, as ICU's root locale does before a tie.
    """

    output_field = CharField()
    template = "LOWER(%(expressions)s)"

    def __init__(self) -> None:
        shown = NullIf(Trim(Concat("first_name", Value(" "), "last_name")), Value(""))
        super().__init__(Coalesce(shown, F("email"), output_field=CharField()))

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        template = f'(%(expressions)s) COLLATE "{NAME_COLLATION}"'
        return super().as_sql(compiler, connection, template=template)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        template = f'(%(expressions)s) COLLATE "{SQLITE_NAME_COLLATION}"'
        return super().as_sql(compiler, connection, template=template)


class Lead(models.Model):
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(max_length=254)
    # The lead's id in the system it came from (an old CRM, a spreadsheet), which imports
    # match on; unique when set. NULL, not "", when unset: the unique index then holds
    # only the leads that have one.
    external_id = models.CharField(  # noqa: DJ001
        max_length=100, null=True, blank=True, default=None
    )
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

    # Indexed on PostgreSQL by lead_report_scan_idx, which starts with the owner, and in
    # the lists by the lead's rank (``leads.models.lead_rank``).
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
            models.UniqueConstraint(
                fields=["external_id"],
                condition=Q(external_id__isnull=False),
                name="lead_unique_external_id",
            ),
            models.CheckConstraint(
                condition=~Q(stage="disqualified") | ~Q(disqualification_reason=""),
                name="lead_disqualified_has_reason",
            ),
        ]
        # The score and what follows from it are in no index here: each score write
        # then updates the row in place (heap-only), and the lists sort by the lead's
        # rank (``leads.models.lead_rank``), whose narrow row holds those indexes.
        indexes = [
            models.Index(fields=["-last_activity_at"], name="lead_last_activity_idx"),
            # The leads list's other sort orders, each ending in the id its keyset pages use.
            models.Index(NameSortKey(), F("id"), name="lead_display_name_idx"),
            models.Index(fields=["-stage_changed_at", "-id"], name="lead_stage_changed_idx"),
        ]

    def __str__(self) -> str:
        return self.full_name or self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = normalize_email(self.email)
        self.external_id = (self.external_id or "").strip() or None
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

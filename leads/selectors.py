"""Reads behind the rep pages: a manager's people, My day's lists, a lead's timeline,
a company's people, deals and activity.

Every read starts from what the person may see (``Lead.objects.visible_to``) and
runs a fixed number of queries, whatever the number of leads, activities or tasks:
My day and the lead page are the pages reps keep open all day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from crm.models import Role, User
from crm.permissions import managed_people

from .models import (
    CLOSED_STAGES,
    Activity,
    Band,
    Company,
    Deal,
    DealStatus,
    Lead,
    LeadQuerySet,
    LeadRank,
    Task,
)
from .permissions import leads_answered_for

MY_DAY_LEADS = 10
MY_DAY_TASKS = 20
TIMELINE_PAGE = 20
COMPANY_PEOPLE = 50
COMPANY_DEALS = 20
COMPANY_ACTIVITY = 20


# --- Whose leads -----------------------------------------------------------------------


def team_members(*, manager: User) -> QuerySet[User]:
    """The people whose leads a manager answers for: the teams they manage and their own."""
    return managed_people(manager)


# --- My day ----------------------------------------------------------------------------


def my_day_leads(*, user: User, limit: int = MY_DAY_LEADS) -> QuerySet[Lead]:
    """The hottest open leads a person answers for: a rep's own, a manager's team's,
    everyone's for admins and marketers. Served by the rank's ``rank_owner_counts_idx``
    (reps) and ``rank_hottest_idx`` (the others)."""
    if user.role == Role.REP and user.is_active:
        # A rep answers for their own leads (``leads_answered_for``), said here of the
        # rank alone: its owner index gives them hottest first and its rows tell the
        # closed ones apart. Said of the lead as well, the planner took the lead's
        # filters for independent of the rank's and planned a parallel scan (10 ms
        # instead of under 1).
        leads = Lead.objects.filter(rank__owner=user).exclude(rank__stage__in=CLOSED_STAGES)
    else:
        leads = leads_answered_for(user).open()
    return leads.select_related("company").hottest()[:limit]


def end_of_today(now: datetime) -> datetime:
    """Midnight at the end of ``now``'s day in the current time zone."""
    today = timezone.localtime(now).date()
    return timezone.make_aware(datetime.combine(today + timedelta(days=1), time.min))


def tasks_due(*, user: User, now: datetime, limit: int = MY_DAY_TASKS) -> list[Task]:
    """The person's open tasks that are overdue or due today, oldest first
    (``task_open_due_idx``)."""
    tasks = (
        Task.objects.open()
        .filter(assignee=user, due_at__lt=end_of_today(now))
        .select_related("lead")
        .order_by("due_at", "pk")
    )
    return list(tasks[:limit])


@dataclass
class MemberNumbers:
    member: User
    open_leads: int = 0
    hot_leads: int = 0
    overdue_tasks: int = 0
    awaiting_handoffs: int = 0


def team_numbers(*, manager: User, now: datetime) -> list[MemberNumbers]:
    """Open and hot leads and overdue tasks of each member of a manager's teams: three
    grouped queries, whatever the team's size."""
    members = list(team_members(manager=manager).filter(is_active=True).order_by("username"))
    rows = {member.pk: MemberNumbers(member) for member in members}
    # From the rank's owner index alone (``rank_owner_counts_idx``): a team owns
    # hundreds of thousands of leads, and their lead rows are wide.
    leads = (
        LeadRank.objects.filter(owner__in=list(rows))
        .exclude(stage__in=CLOSED_STAGES)
        .values("owner")
        .annotate(total=Count("pk"), hot=Count("pk", filter=Q(band=Band.HOT)))
        .order_by()
    )
    for row in leads:
        rows[row["owner"]].open_leads = row["total"]
        rows[row["owner"]].hot_leads = row["hot"]
    overdue = (
        Task.objects.overdue(now)
        .filter(assignee__in=list(rows))
        .values("assignee")
        .annotate(total=Count("pk"))
    )
    for task_row in overdue:
        rows[task_row["assignee"]].overdue_tasks = task_row["total"]
    return list(rows.values())


# --- The lead page ---------------------------------------------------------------------


def make_cursor(occurred_at: datetime, pk: int) -> str:
    """The position after an activity in the timeline: its time and id."""
    return f"{occurred_at.isoformat()}~{pk}"


def parse_cursor(value: str) -> tuple[datetime, int] | None:
    """The (time, id) a cursor names, or None when it names nothing."""
    when, _, pk = value.rpartition("~")
    try:
        moment = datetime.fromisoformat(when)
        number = int(pk)
    except ValueError:
        return None
    if timezone.is_naive(moment) or number < 1:
        return None
    return moment, number


@dataclass(frozen=True)
class TimelinePage:
    activities: list[Activity]
    next_cursor: str | None


def timeline_page(
    *,
    lead: Lead,
    type: str = "",
    before: tuple[datetime, int] | None = None,
    size: int = TIMELINE_PAGE,
) -> TimelinePage:
    """One page of the lead's activity, newest first, after the ``before`` cursor.

    Keyset pagination over ``activity_timeline_idx`` (``activity_type_lead_idx`` with a
    type), so the hundredth page costs what the first does.
    """
    activities = Activity.objects.filter(lead=lead).select_related("created_by")
    if type:
        activities = activities.filter(type=type)
    if before is not None:
        when, pk = before
        activities = activities.filter(Q(occurred_at__lt=when) | Q(occurred_at=when, pk__lt=pk))
    rows = list(activities.order_by("-occurred_at", "-pk")[: size + 1])
    if len(rows) <= size:
        return TimelinePage(rows, None)
    last = rows[size - 1]
    return TimelinePage(rows[:size], make_cursor(last.occurred_at, last.pk))


def open_tasks(*, lead: Lead) -> list[Task]:
    return list(lead.tasks.open().select_related("assignee").order_by("due_at", "pk")[:20])


def done_tasks(*, lead: Lead, limit: int = 5) -> list[Task]:
    done = lead.tasks.filter(done_at__isnull=False).select_related("assignee")
    return list(done.order_by("-done_at", "-pk")[:limit])


# --- A company ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CompanyPeople:
    """The hottest of a company's leads in view, and how many are in view."""

    leads: list[Lead]
    count: int


@dataclass(frozen=True)
class CompanyDeals:
    """The newest of the deals on a company's leads in view, with their number and the
    sum of their amounts per status (``DealStatus`` values, zero when none)."""

    deals: list[Deal]
    count: int
    totals: dict[str, Decimal] = field(default_factory=dict)


def company_leads(*, company: Company, user: User) -> LeadQuerySet:
    """The company's leads that ``user`` may see."""
    return Lead.objects.visible_to(user).filter(company=company)


def company_people(*, company: Company, user: User, limit: int = COMPANY_PEOPLE) -> CompanyPeople:
    """The company's leads in view, hottest first, with their owners."""
    leads = company_leads(company=company, user=user)
    hottest = leads.hottest().select_related("owner")[:limit]
    return CompanyPeople(leads=list(hottest), count=leads.order_by().count())


def company_deals(*, company: Company, user: User, limit: int = COMPANY_DEALS) -> CompanyDeals:
    """The deals on the company's leads in view: the newest, counted and summed by status
    in one grouped query."""
    leads = company_leads(company=company, user=user).order_by().values("pk")
    deals = Deal.objects.filter(lead__in=leads)
    totals = {status: Decimal(0) for status in DealStatus.values}
    count = 0
    for row in deals.order_by().values("status").annotate(total=Sum("amount"), n=Count("pk")):
        totals[row["status"]] = row["total"] or Decimal(0)
        count += row["n"]
    newest = deals.select_related("lead").order_by("-created_at", "-pk")[:limit]
    return CompanyDeals(deals=list(newest), count=count, totals=totals)


def company_activity(
    *, company: Company, user: User, limit: int = COMPANY_ACTIVITY
) -> list[Activity]:
    """The newest activity of the company's leads in view, with each one's lead."""
    leads = company_leads(company=company, user=user).order_by().values("pk")
    activities = Activity.objects.filter(lead__in=leads).select_related("lead", "created_by")
    return list(activities.order_by("-occurred_at", "-pk")[:limit])

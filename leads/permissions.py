"""Who may do what to leads, tasks and companies: one answer for every surface.

The REST API, the rep workspace and the admin all ask these functions; none of them
compares roles on its own. Seeing is decided by ``Lead.objects.visible_to`` (a lead
outside it does not exist for the person); this module decides what a person may do
with what they see, and whom they may hand it to:

- A lead is owned by the person creating or assigning it (reps), by a member of the
  manager's teams (managers), or by any active user (admins and marketers). Leaving a
  lead unassigned, or keeping the owner it has, is always allowed.
- Adding to a lead or changing what is on it (notes, tasks, deals, touches, stage) is
  acting on it (``lead_access``), with the reason when refused (``LeadAccess.refusal``).
  A task's done and due times and its assignee (complete, snooze, reassign) are also
  worked by its assignee and the manager of the assignee's team, whatever its lead
  (``task_refusal``); a task without a lead is theirs and an admin's.
- A task is for the person creating it; a manager's also for the members of their
  teams; an admin's for any active user. The same rule holds for tasks without a lead.
- An email address in use is named as such only to someone who can see the lead that
  holds it; anyone else learns only that it cannot be used (``email_in_use``).
- Working leads in bulk (stage moves, nurture enrollment, assignment) is for reps,
  managers and admins; managers and admins assign to others and reassign owned leads,
  a rep takes unassigned leads for themselves, and a lead a rep creates is theirs.
- A hand-off is accepted or rejected by its owner, the owner's team manager or an
  admin; by any manager when nobody owns it.
- A manager's pages show their teams' numbers and tasks, and a manager reassigns tasks.
- Lists of leads are taken out as files (CSV, XLSX) by admins, managers and marketers,
  each the leads they see; reps work their leads in Hotlist but do not take the book
  away in bulk (``may_export_leads``). A large export is written by a worker as an
  export job; the person who asked follows and downloads it, and so do admins, no one
  else (``export_jobs_visible_to``), and only while they may export.
- Round-robin assignment hands leads to active reps only.
- Merging duplicate leads (and undoing a merge) is for admins and marketers, who
  keep the data clean, on any leads, and for managers on leads they can change (their
  teams' and the unassigned pool, all of them in view); never for reps
  (``merge_refusal``).
- A deal is seen exactly when its lead is (``deals_visible_to``) and created, changed,
  moved, won or lost by whoever may act on its lead (``lead_access``); its owner is
  someone the person may give leads to (``may_own``).
- A lead becomes a customer by winning one of its deals; managers and admins may make
  a lead a customer without a won deal, saying why (``customer_override_refusal``).
- A company is shared by the leads it carries: everyone with a role reads every company
  (``companies_visible_to``), and of its leads, deals and activity sees what
  ``visible_to`` gives; admins and marketers edit any; a rep or a manager edits one only
  while every lead it carries is one they can see, so that no one rewrites the account
  another team is working.
- Merging duplicate companies (and undoing it) is for those who merge leads: admins and
  marketers any companies, managers companies whose every lead is in their view; never
  reps (``company_merge_refusal``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet

from crm.models import Role, User
from crm.permissions import managed_people

from .models import (
    Company,
    Deal,
    ExportJob,
    Lead,
    LeadQuerySet,
    Task,
    TaskQuerySet,
    owner_visibility,
)

if TYPE_CHECKING:
    from .handoff_models import HandOff

WORKING_ROLES = (Role.ADMIN, Role.MANAGER, Role.REP)

# --- Acting on a lead ----------------------------------------------------------------


LEAD_UNASSIGNED = "Take this lead before working on it: it is unassigned."
LEAD_NOT_YOURS = "Only the lead's owner, their manager or an admin can work on it."


@dataclass(frozen=True)
class LeadAccess:
    """What a person who can see a lead may do with it."""

    may_act: bool
    may_take: bool

    @property
    def refusal(self) -> str:
        """Why the person may not act on the lead, "" when they may: an unassigned lead
        is taken first; anyone else's lead is its owner's, their manager's and admins'."""
        if self.may_act:
            return ""
        return LEAD_UNASSIGNED if self.may_take else LEAD_NOT_YOURS


def lead_access(*, lead: Lead, user: User) -> LeadAccess:
    """Acting on a lead (logging, notes, tasks, stage, hand-off, rating) is for its owner,
    the owner's manager and admins. An unassigned lead is acted on only after taking it,
    which reps and managers may do; marketers read.

    ``lead`` must come from ``Lead.objects.visible_to(user)`` with ``owner__team`` loaded.
    """
    return _access(lead.owner_id, user, lambda: lead.owner)


def owner_access(*, owner_id: int | None, owner: User | None, user: User) -> LeadAccess:
    """``lead_access`` to a lead ``user`` sees, said of its owner (``owner``, with their
    team loaded, read only when it decides): for reads that build no lead, such as the
    deal board's cards."""
    return _access(owner_id, user, lambda: owner)


def _access(owner_id: int | None, user: User, owner: Callable[[], User | None]) -> LeadAccess:
    role = user.role
    if owner_id is None:
        return LeadAccess(
            may_act=role == Role.ADMIN, may_take=role in (Role.REP, Role.MANAGER, Role.ADMIN)
        )
    if role == Role.ADMIN or owner_id == user.pk:
        return LeadAccess(may_act=True, may_take=False)
    person = owner()
    team = person.team if person is not None else None
    manages = (
        role == Role.MANAGER
        and team is not None
        and (team.manager_id == user.pk or (user.team_id is not None and team.pk == user.team_id))
    )
    return LeadAccess(may_act=manages, may_take=False)


# What the task list does to a task (complete, snooze, reassign): the task's own fields.
TASK_WORK_FIELDS = frozenset({"done_at", "due_at", "assignee"})
TASK_NOT_YOURS = "Only the task's assignee, their manager or an admin can change it."


def task_refusal(*, task: Task, user: User, changed: Collection[str]) -> str:
    """Why ``user`` may not change the ``changed`` fields of ``task``, "" when they may.

    Changing a task on a lead is acting on the lead (``lead_access``); its done and due
    times and its assignee (``TASK_WORK_FIELDS``) are also its assignee's and their
    manager's, whatever its lead. A task without a lead is its assignee's, their
    manager's and an admin's. Who the new assignee may be is ``may_assign_task``.
    ``task`` must be one ``user`` can see (``tasks_visible_to``), its lead with
    ``owner__team`` loaded.
    """
    works_it = _works_task(task=task, user=user)
    if task.lead is None:
        return "" if works_it or user.role == Role.ADMIN else TASK_NOT_YOURS
    refusal = lead_access(lead=task.lead, user=user).refusal
    if refusal and works_it and set(changed) <= TASK_WORK_FIELDS:
        return ""
    return refusal


def _works_task(*, task: Task, user: User) -> bool:
    """Whether the task is ``user``'s or, for a manager, a member's of their teams."""
    if task.assignee_id == user.pk:
        return True
    return manages_team(user) and managed_people(user).filter(pk=task.assignee_id).exists()


def works_leads(user: User) -> bool:
    """Whether ``user`` moves stages, enrolls and assigns (or takes) leads in bulk."""
    return user.role in WORKING_ROLES


def assigns_leads(user: User) -> bool:
    """Whether ``user`` gives leads to others and reassigns leads that have an owner."""
    return user.role in (Role.ADMIN, Role.MANAGER)


def takes_leads(user: User) -> bool:
    """Whether ``user`` takes unassigned leads for themselves (and only those)."""
    return user.role == Role.REP


def default_owner(user: User) -> User | None:
    """The owner of a lead ``user`` creates without naming one: a rep's own, else none."""
    return user if user.role == Role.REP else None


EXPORTING_ROLES = (Role.ADMIN, Role.MANAGER, Role.MARKETER)
EXPORT_REFUSED = "Exporting leads is for managers, marketers and admins."


def may_export_leads(user: User) -> bool:
    """Whether ``user`` may download lists of leads as files: admins, managers and
    marketers, always within what they see (``Lead.objects.visible_to``). A rep's
    leads are the book a rep would take along when leaving; the list shows them."""
    return user.is_active and user.role in EXPORTING_ROLES


def export_jobs_visible_to(user: User) -> QuerySet[ExportJob]:
    """The export jobs ``user`` follows and downloads: their own, every one for an admin;
    none for someone who may not export (any more). A job out of view does not exist."""
    if not may_export_leads(user):
        return ExportJob.objects.none()
    if user.role == Role.ADMIN:
        return ExportJob.objects.all()
    return ExportJob.objects.filter(requested_by=user)


def may_see_export_job(*, job: ExportJob, user: User) -> bool:
    """Whether ``user`` may follow and download ``job`` (``export_jobs_visible_to``)."""
    return may_export_leads(user) and (user.role == Role.ADMIN or job.requested_by_id == user.pk)


def manages_team(user: User) -> bool:
    """Whether ``user`` sees their teams' numbers and tasks and reassigns tasks."""
    return user.role == Role.MANAGER


def may_close_handoff(*, handoff: HandOff, user: User) -> bool:
    """Whether ``user`` may accept or reject: the owner, the owner's team manager, an
    admin; any manager when nobody owns it."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.role == Role.ADMIN or (handoff.owner_id is not None and handoff.owner_id == user.pk):
        return True
    if user.role != Role.MANAGER:
        return False
    if handoff.owner is None:
        return True
    team = handoff.owner.team
    return team is not None and team.manager_id == user.pk


def receives_round_robin(user: User) -> bool:
    """Whether round-robin assignment may hand ``user`` a lead: active reps."""
    return user.is_active and user.role == Role.REP


def round_robin_reps() -> QuerySet[User]:
    """The people round-robin assignment chooses among (``receives_round_robin``)."""
    return User.objects.filter(is_active=True, is_superuser=False, groups__name=Role.REP.label)


# --- Owners and assignees ----------------------------------------------------------------


def _people(user: User) -> QuerySet[User]:
    """The active users a person may hand leads and tasks to (themselves included)."""
    active = User.objects.filter(is_active=True)
    role = user.role
    if role in (Role.ADMIN, Role.MARKETER):
        return active
    if role == Role.MANAGER:
        return active.filter(Q(pk=user.pk) | Q(pk__in=managed_people(user).values("pk")))
    if role == Role.REP:
        return active.filter(pk=user.pk)
    return User.objects.none()


def lead_owners(user: User) -> QuerySet[User]:
    """Who may own a lead that ``user`` creates or assigns."""
    return _people(user).order_by("first_name", "last_name", "username")


def leads_answered_for(user: User) -> LeadQuerySet:
    """The leads a person answers for, which My day and the reports show them: a rep's
    own, a manager's teams', every lead for marketers and admins, none for anyone else.
    Always within ``Lead.objects.visible_to(user)``."""
    leads = Lead.objects.visible_to(user)
    role = user.role
    if role == Role.REP:
        return leads.filter(owner=user)
    if role == Role.MANAGER:
        return leads.filter(owner__in=managed_people(user).values("pk"))
    if role in (Role.ADMIN, Role.MARKETER):
        return leads
    return leads.none()


def teammates_of(user: User) -> QuerySet[User]:
    """The reps and managers besides the user whom the user may give leads to
    (``lead_owners``): a manager's teams, everyone for admins and marketers."""
    if user.role == Role.REP:
        # A rep gives leads to themselves only: no query for an answer known to be none.
        return User.objects.none()
    sellers = User.objects.filter(groups__name__in=[Role.REP.label, Role.MANAGER.label])
    return (
        lead_owners(user)
        .filter(pk__in=sellers.values("pk"))
        .exclude(pk=user.pk)
        .order_by("first_name", "last_name", "username")
    )


def may_own(*, user: User, owner: User | None, current: User | None = None) -> bool:
    """Whether ``user`` may make ``owner`` the owner of a lead now owned by ``current``
    (None: a new lead). Unassigned, or the owner the lead has, is always allowed."""
    if owner is None or (current is not None and owner.pk == current.pk):
        return True
    return lead_owners(user).filter(pk=owner.pk).exists()


def task_assignees(user: User) -> QuerySet[User]:
    """Who a task created or reassigned by ``user`` may be for. Marketers only read
    tasks: a marketer may give none."""
    if user.role == Role.MARKETER:
        return User.objects.none()
    return _people(user).order_by("first_name", "last_name", "username")


def may_assign_task(*, user: User, assignee: User, current: User | None = None) -> bool:
    """Whether ``user`` may make ``assignee`` the assignee of a task now assigned to
    ``current`` (None: a new task). Keeping the assignee is always allowed."""
    if current is not None and assignee.pk == current.pk:
        return True
    return task_assignees(user).filter(pk=assignee.pk).exists()


def tasks_visible_to(user: User) -> TaskQuerySet:
    """The tasks on the leads a person sees, and the tasks without a lead given to them
    or, for a manager, to the people of their teams."""
    if user.role in (Role.ADMIN, Role.MARKETER):
        return Task.objects.all()
    if user.role not in (Role.MANAGER, Role.REP):
        return Task.objects.none()
    on_visible_leads = Q(lead__in=Lead.objects.visible_to(user))
    people = managed_people(user) if user.role == Role.MANAGER else User.objects.filter(pk=user.pk)
    return Task.objects.filter(
        on_visible_leads | Q(lead__isnull=True, assignee__in=people.values("pk"))
    )


OWNER_REFUSED = "You cannot give a lead to this person."
ASSIGNEE_REFUSED = "You cannot give a task to this person."


# --- Deals and customers ------------------------------------------------------------------


def deal_visibility(user: User, *, resolved: bool = False) -> Q:
    """Which deals a person sees, said of the copy of the lead's owner each deal keeps
    (``Deal.lead_owner``) by ``owner_visibility`` (``resolved``: a manager's people
    named, for a condition used in several queries); the deal board's totals
    (``DealBoardTotal``), keyed by the same column, are selected by it too."""
    # ``lead_`` + ``owner``: the ``lead_owner`` column.
    return owner_visibility(user, lead="lead_", resolved=resolved)


def deals_visible_to(user: User) -> QuerySet[Deal]:
    """The deals on the leads a person sees (``Lead.objects.visible_to``), read from the
    deal's row alone (``deal_visibility``): the workspace, the API and the admin list
    exactly these."""
    return Deal.objects.filter(deal_visibility(user))


CUSTOMER_NEEDS_WON_DEAL = (
    "A lead becomes a customer when one of its deals is won: win its deal, or ask a "
    "manager to override with a reason."
)
CUSTOMER_OVERRIDE_NEEDS_REASON = "Say why this lead is a customer without a won deal."


def customer_override_refusal(*, user: User | None, reason: str) -> str:
    """Why ``user`` may not make a lead without a won deal a customer, "" when they may:
    a manager or an admin, saying why. Nobody else, the system included."""
    if user is None or user.role not in (Role.ADMIN, Role.MANAGER):
        return CUSTOMER_NEEDS_WON_DEAL
    return "" if reason.strip() else CUSTOMER_OVERRIDE_NEEDS_REASON


# --- Email addresses ---------------------------------------------------------------------

EMAIL_TAKEN = "A lead with this email exists already."
EMAIL_UNAVAILABLE = "This email address cannot be used for this lead."


def email_in_use(*, user: User, email: str, lead: Lead | None = None) -> str:
    """Why ``user`` cannot give ``email`` (normalized) to ``lead`` (None: a new lead), or
    "" when they can: ``EMAIL_TAKEN`` when they can see the lead that holds it,
    ``EMAIL_UNAVAILABLE``, which tells nothing about that lead, when they cannot."""
    others = Lead.objects.filter(email=email)
    if lead is not None and lead.pk is not None:
        others = others.exclude(pk=lead.pk)
    if not others.exists():
        return ""
    return EMAIL_TAKEN if others.visible_to(user).exists() else EMAIL_UNAVAILABLE


# --- Companies ---------------------------------------------------------------------------


def companies_visible_to(user: User) -> QuerySet[Company]:
    """Every company for anyone with a role, as the REST API reads them; none for anyone
    else. What a person sees of a company's leads, deals and activity is still
    ``Lead.objects.visible_to``."""
    if not user.is_authenticated or not user.is_active or user.role is None:
        return Company.objects.none()
    return Company.objects.all()


def may_change_company(*, user: User, company: Company) -> bool:
    """Admins and marketers change any company; reps and managers one whose every lead
    they can see (a company without leads included). Two counts over the company's
    leads, by the lead's company index, whatever the size of the table."""
    role = user.role
    if role in (Role.ADMIN, Role.MARKETER):
        return True
    if role not in (Role.MANAGER, Role.REP):
        return False
    carried = Lead.objects.filter(company=company)
    return carried.count() == carried.visible_to(user).count()


COMPANY_REFUSED = (
    "This company carries leads you cannot see: its owner's team or a marketer can change it."
)


# --- Merging duplicates ------------------------------------------------------------------

MERGE_REFUSED = "Only managers, marketers and admins merge duplicate leads."
MERGE_OUT_OF_VIEW = "You can merge only leads you can change."


def merges_leads(user: User) -> bool:
    """Whether ``user`` merges duplicates at all (the review queue, the merge actions)."""
    return user.is_active and user.role in (Role.ADMIN, Role.MARKETER, Role.MANAGER)


def merge_refusal(*, user: User, lead_ids: Collection[int]) -> str:
    """Why ``user`` may not merge these leads (or undo their merge), "" when they may:
    admins and marketers merge any, managers the leads in their view (their teams' and
    the pool), reps and people without a role none."""
    if not merges_leads(user):
        return MERGE_REFUSED
    if user.role in (Role.ADMIN, Role.MARKETER):
        return ""
    ids = set(lead_ids)
    seen = Lead.objects.visible_to(user).filter(pk__in=ids).count()
    return "" if seen == len(ids) else MERGE_OUT_OF_VIEW


COMPANY_MERGE_REFUSED = "Only managers, marketers and admins merge duplicate companies."
COMPANY_MERGE_OUT_OF_VIEW = "You can merge only companies whose every lead you can see."


def company_merge_refusal(*, user: User, company_ids: Collection[int]) -> str:
    """Why ``user`` may not merge these companies (or undo their merge), "" when they
    may: who merges leads (``merges_leads``) merges companies; admins and marketers any,
    a manager those whose every lead they can see (``may_change_company`` for all of
    them at once: two counts over the companies' leads)."""
    if not merges_leads(user):
        return COMPANY_MERGE_REFUSED
    if user.role in (Role.ADMIN, Role.MARKETER):
        return ""
    carried = Lead.objects.filter(company__in=set(company_ids))
    return "" if carried.count() == carried.visible_to(user).count() else COMPANY_MERGE_OUT_OF_VIEW


def companies_merged_by(user: User) -> QuerySet[Company]:
    """The companies ``user`` may merge (``company_merge_refusal``), for the lists of
    pairs and merges: none for who merges nothing, every one for admins and marketers,
    for a manager those that carry no lead out of their view."""
    if not merges_leads(user):
        return Company.objects.none()
    if user.role in (Role.ADMIN, Role.MARKETER):
        return Company.objects.all()
    out_of_view = Lead.objects.filter(company__isnull=False).exclude(
        pk__in=Lead.objects.visible_to(user).values("pk")
    )
    return Company.objects.exclude(pk__in=out_of_view.values("company_id"))

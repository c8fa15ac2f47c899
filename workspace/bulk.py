"""Actions on many leads at once: the one bulk-action service, which the leads list
and the lead admin's score adjustment both call.

Each action takes the ids a person selected, keeps those the person can see
(``Lead.objects.visible_to``), and acts on each through the same path as a single
change, so one lead that cannot change never stops the others. The outcome names
what changed and, lead by lead, what did not and why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from crm.models import User
from leads.models import Lead, Stage, StageTransitionError, Task, TaskKind
from leads.permissions import (
    OWNER_REFUSED,
    assigns_leads,
    lead_access,
    may_own,
    takes_leads,
    works_leads,
)
from leads.stages import lead_move_to_stage
from nurturing.enrollment import EnrollmentError, enrollment_start
from nurturing.models import Sequence as NurtureSequence
from nurturing.permissions import may_enroll_leads
from scoring.adjustments import leads_adjust_score
from scoring.permissions import may_adjust_score

# A page shows 25 leads; a selection picked by hand is never more than a few pages.
BULK_MAX = 200
# "Select all leads matching these filters" acts on at most this many at once.
SELECT_ALL_MAX = 2000
# The outcome message names this many refused leads, then counts the rest.
NAMED_REFUSALS = 5
NOT_VISIBLE = "not found among the leads you can see"

BULK_ASSIGN = "assign"
BULK_TAKE = "take"
BULK_STAGE = "stage"
BULK_SCORE = "score"
BULK_NURTURE = "nurture"
BULK_TASK = "task"


def bulk_actions_for(user: User) -> list[tuple[str, str]]:
    """The bulk actions a person may use, as form choices."""
    actions = []
    if assigns_leads(user):
        actions.append((BULK_ASSIGN, "Assign to…"))
    if takes_leads(user):
        actions.append((BULK_TAKE, "Assign to me"))
    if works_leads(user):
        actions.append((BULK_STAGE, "Move to stage…"))
        actions.append((BULK_TASK, "Add a task…"))
    if may_enroll_leads(user):
        actions.append((BULK_NURTURE, "Enroll in a nurture sequence…"))
    if may_adjust_score(user):
        actions.append((BULK_SCORE, "Adjust score…"))
    return actions


@dataclass
class BulkOutcome:
    """What a bulk action did: the leads it changed and those it left, with the reason."""

    done: list[Lead] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def summary(self, did: str) -> str:
        """``did`` completes "N leads …", e.g. "moved to SQL"."""
        text = f"{_leads(len(self.done))} {did}"
        if not self.refused:
            return f"{text}."
        named = [f"{who} ({why})" for who, why in self.refused[:NAMED_REFUSALS]]
        rest = len(self.refused) - len(named)
        if rest:
            named.append(f"and {rest} more")
        return f"{text}; {len(self.refused)} could not: {'; '.join(named)}."


def _leads(count: int) -> str:
    return f"{count} lead" if count == 1 else f"{count} leads"


def _visible(*, user: User, lead_ids: Sequence[int], outcome: BulkOutcome) -> list[Lead]:
    """The selected leads the user can see, in id order; the others count as refused
    without a name, so that nothing about a lead outside the user's view leaks."""
    ids = sorted(set(lead_ids))[:SELECT_ALL_MAX]
    visible = Lead.objects.visible_to(user).select_related("owner__team")
    leads = list(visible.filter(pk__in=ids).order_by("pk"))
    outcome.refused.extend((f"lead #{pk}", NOT_VISIBLE) for pk in _missing(ids, leads))
    return leads


def _missing(ids: Sequence[int], leads: Sequence[Lead]) -> list[int]:
    found = {lead.pk for lead in leads}
    return [pk for pk in ids if pk not in found]


def leads_assign(*, lead_ids: Sequence[int], owner: User, by: User) -> BulkOutcome:
    """Give the selected leads to ``owner``.

    Managers and admins assign to themselves or anyone whose leads they see; a rep only
    takes unassigned leads for themselves. Rows are locked while they are checked and
    changed, so a lead another rep took a moment earlier is reported, not taken over.
    """
    if not works_leads(by):
        raise PermissionDenied("You cannot assign leads.")
    if not may_own(user=by, owner=owner):
        raise PermissionDenied(OWNER_REFUSED)
    outcome = BulkOutcome()
    with transaction.atomic():
        ids = [lead.pk for lead in _visible(user=by, lead_ids=lead_ids, outcome=outcome)]
        locked = Lead.objects.select_for_update(of=("self",)).filter(pk__in=ids).order_by("pk")
        for lead in locked:
            if not assigns_leads(by) and lead.owner_id is not None:
                why = "already yours" if lead.owner_id == by.pk else "already has an owner"
                outcome.refused.append((str(lead), why))
            else:
                outcome.done.append(lead)
        changed = [lead.pk for lead in outcome.done]
        Lead.objects.filter(pk__in=changed).update(owner=owner, updated_at=timezone.now())
    return outcome


def why_not_act(*, lead: Lead, user: User) -> str:
    """Why the user may not change this visible lead's stage, or "" when they may."""
    access = lead_access(lead=lead, user=user)
    if access.may_act:
        return ""
    if access.may_take:
        return "unassigned: take it first"
    return "only its owner, their manager or an admin can change it"


def _actionable(*, user: User, lead_ids: Sequence[int], outcome: BulkOutcome) -> Iterator[Lead]:
    """The selected leads the user may act on; the others are reported with the reason."""
    for lead in _visible(user=user, lead_ids=lead_ids, outcome=outcome):
        refusal = why_not_act(lead=lead, user=user)
        if refusal:
            outcome.refused.append((str(lead), refusal))
        else:
            yield lead


def leads_move_to_stage(
    *, lead_ids: Sequence[int], stage: str, reason: str = "", by: User
) -> BulkOutcome:
    """Move each selected lead through ``lead_move_to_stage``, one transaction per lead:
    a move the lifecycle refuses, or on a lead the person may not act on
    (``lead_access``), is reported for that lead and changes nothing else."""
    if not works_leads(by):
        raise PermissionDenied("You cannot change stages.")
    stage = Stage(stage)
    outcome = BulkOutcome()
    for lead in _actionable(user=by, lead_ids=lead_ids, outcome=outcome):
        try:
            lead_move_to_stage(lead_id=lead.pk, stage=stage, by=by, reason=reason)
        except StageTransitionError as exc:
            outcome.refused.append((str(lead), " ".join(exc.messages)))
        except Lead.DoesNotExist:
            outcome.refused.append((str(lead), "deleted meanwhile"))
        else:
            outcome.done.append(lead)
    return outcome


def leads_add_task(
    *, lead_ids: Sequence[int], title: str, due_at: dt.datetime, by: User
) -> BulkOutcome:
    """Give each selected lead a follow-up task for ``by``, due at ``due_at``: on the
    leads the person may act on (``lead_access``), as the lead page's task form does;
    the others are reported."""
    if not works_leads(by):
        raise PermissionDenied("You cannot add tasks to leads.")
    outcome = BulkOutcome()
    leads = list(_actionable(user=by, lead_ids=lead_ids, outcome=outcome))
    Task.objects.bulk_create(
        Task(lead=lead, assignee=by, title=title, kind=TaskKind.FOLLOW_UP, due_at=due_at)
        for lead in leads
    )
    outcome.done.extend(leads)
    return outcome


def leads_adjust(*, lead_ids: Sequence[int], points: int, reason: str, by: User) -> BulkOutcome:
    """Add ``points`` (negative to take off) with a reason to each selected lead's score,
    through ``scoring.adjustments.leads_adjust_score``, one lead at a time so that each
    outcome is known. Managers and admins only, as in the admin; a lead no scoring model
    applies to is reported."""
    if not may_adjust_score(by):
        raise PermissionDenied("Only managers and admins adjust scores.")
    outcome = BulkOutcome()
    for lead in _visible(user=by, lead_ids=lead_ids, outcome=outcome):
        if leads_adjust_score(lead_ids=[lead.pk], points=points, reason=reason, by=by):
            outcome.done.append(lead)
        else:
            outcome.refused.append((str(lead), "no scoring model applies"))
    return outcome


def leads_enroll(*, lead_ids: Sequence[int], sequence: NurtureSequence, by: User) -> BulkOutcome:
    """Enroll each selected lead in a nurture sequence by hand, through
    ``nurturing.enrollment.enrollment_start``: a lead the person may not act on, one that
    may not be emailed, or one already in the sequence is reported, the others go on."""
    if not may_enroll_leads(by):
        raise PermissionDenied("You cannot enroll leads.")
    outcome = BulkOutcome()
    for lead in _actionable(user=by, lead_ids=lead_ids, outcome=outcome):
        try:
            _, new = enrollment_start(lead=lead, sequence=sequence, by=by)
        except EnrollmentError as exc:
            outcome.refused.append((str(lead), " ".join(exc.messages)))
        else:
            if new:
                outcome.done.append(lead)
            else:
                outcome.refused.append((str(lead), "already in this sequence"))
    return outcome

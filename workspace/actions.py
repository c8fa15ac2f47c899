"""What a person does with leads and tasks in the workspace, besides the hand-off and
stage moves: take a lead, write a note, add, complete, snooze or reassign a task.

Each action that two people could race on is one conditional UPDATE, so only the
first wins and the other is told (a False return).
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.utils import timezone

from crm.models import User
from leads.handoff_models import NotificationKind
from leads.models import Lead, Note, Task
from leads.notifications import notifications_settle
from leads.permissions import ASSIGNEE_REFUSED, manages_team, may_assign_task, task_assignees

# The task list's snooze times, shared with the work queue.
from leads.snooze_times import snooze_until as snooze_until


def lead_take(*, lead: Lead, by: User) -> bool:
    """Make ``by`` the owner of an unassigned lead; False when someone took it first."""
    taken = Lead.objects.filter(pk=lead.pk, owner__isnull=True).update(
        owner=by, updated_at=timezone.now()
    )
    if taken:
        lead.owner = by
    return bool(taken)


def note_add(*, lead: Lead, author: User, body: str) -> Note:
    return Note.objects.create(lead=lead, author=author, body=body)


def task_add(*, task: Task, lead: Lead) -> Task:
    """Store a task (validated by its form) on the lead."""
    task.lead = lead
    task.save()
    return task


def reassignable_to(user: User) -> QuerySet[User]:
    """Who the task list offers a manager to hand a task to (``task_assignees``);
    reassigning from the list is a manager's tool."""
    if not manages_team(user):
        return User.objects.none()
    return task_assignees(user)


def task_complete(*, task: Task) -> bool:
    """Mark an open task done; False when it was done already (a conditional UPDATE).
    The assignee's task notifications about its lead are answered with it."""
    done = Task.objects.filter(pk=task.pk, done_at__isnull=True).update(done_at=timezone.now())
    if done and task.lead_id is not None and task.assignee_id is not None:
        notifications_settle(
            lead_id=task.lead_id, kinds=[NotificationKind.TASK], users=[task.assignee_id]
        )
    return bool(done)


def task_snooze(*, task: Task, until: dt.datetime) -> bool:
    """Move an open task's due time; False when it was done meanwhile."""
    return bool(Task.objects.filter(pk=task.pk, done_at__isnull=True).update(due_at=until))


def task_reassign(*, task: Task, assignee: User, by: User) -> bool:
    """Give an open task to someone ``by`` may give tasks to; False when it was done."""
    if not may_assign_task(user=by, assignee=assignee, current=task.assignee):
        raise PermissionDenied(ASSIGNEE_REFUSED)
    return bool(Task.objects.filter(pk=task.pk, done_at__isnull=True).update(assignee=assignee))

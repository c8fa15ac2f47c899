"""Tasks: the person's open tasks (a manager's team's too), overdue first; complete,
snooze and, for managers, reassign, each a POST that htmx swaps in place.

A task outside the list is a 404, whatever its id; what the list does to a task is
what ``leads.permissions.task_refusal`` allows, the REST API's rule too.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from crm.http import AuthenticatedHttpRequest
from crm.models import User
from leads.models import Task, TaskQuerySet
from leads.permissions import manages_team, task_refusal
from leads.selectors import team_members
from leads.snooze_times import SNOOZE_CHOICES
from workspace.actions import (
    reassignable_to,
    snooze_until,
    task_complete,
    task_reassign,
    task_snooze,
)

TASKS_SHOWN = 100


def tasks_listed_for(user: User) -> TaskQuerySet:
    """The tasks the list shows a person: their own; a manager's team's as well. Who may
    see a task at all is ``leads.permissions.tasks_visible_to``; this is the work list."""
    if user.role is None:
        return Task.objects.none()
    if manages_team(user):
        return Task.objects.filter(
            Q(assignee=user) | Q(assignee__in=team_members(manager=user).values("pk"))
        )
    return Task.objects.filter(assignee=user)


class AssigneeFilterForm(forms.Form):
    assignee = forms.ChoiceField(label="Assignee", required=False)

    def __init__(self, *args, user: User, people: list[User], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        assignee = self.fields["assignee"]
        assert isinstance(assignee, forms.ChoiceField)
        assignee.choices = [
            ("", "My team and me"),
            ("me", "Mine"),
            *[(str(person.pk), str(person)) for person in people if person.pk != user.pk],
        ]


class SnoozeForm(forms.Form):
    until = forms.ChoiceField(choices=SNOOZE_CHOICES)


class ReassignForm(forms.Form):
    assignee = forms.IntegerField(min_value=1, max_value=2**63 - 1)


def _task_context(request: AuthenticatedHttpRequest) -> dict:
    user = request.user
    people = list(reassignable_to(user))
    tasks = tasks_listed_for(user).open()
    filter_form = None
    if manages_team(user):
        filter_form = AssigneeFilterForm(request.GET, user=user, people=people)
        chosen = filter_form.cleaned_data["assignee"] if filter_form.is_valid() else ""
        if chosen == "me":
            tasks = tasks.filter(assignee=user)
        elif chosen:
            tasks = tasks.filter(assignee_id=int(chosen))
    else:
        tasks = tasks.filter(assignee=user)
    rows = list(
        tasks.select_related("lead", "assignee").order_by("due_at", "pk")[: TASKS_SHOWN + 1]
    )
    now = timezone.now()
    soon = now + dt.timedelta(days=1)
    shown = rows[:TASKS_SHOWN]
    query = request.GET.urlencode()
    return {
        "groups": [
            ("Overdue", [t for t in shown if t.due_at < now]),
            ("Due within a day", [t for t in shown if now <= t.due_at < soon]),
            ("Later", [t for t in shown if t.due_at >= soon]),
        ],
        "truncated": len(rows) > TASKS_SHOWN,
        "filter_form": filter_form,
        "people": people,
        "snooze_choices": SNOOZE_CHOICES,
        "query": f"?{query}" if query else "",
        "is_manager": manages_team(user),
        "now": now,
    }


def _render(request: AuthenticatedHttpRequest, *, status: int = 200) -> HttpResponse:
    partial = bool(request.htmx) and not request.htmx.history_restore_request
    template = "workspace/tasks_list.html" if partial else "workspace/tasks.html"
    context = {**_task_context(request), "partial": partial}
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _done(
    request: AuthenticatedHttpRequest, level: int, text: str, *, status: int = 200
) -> HttpResponse:
    """After an action: the list again for htmx, a redirect back to it otherwise."""
    messages.add_message(request, level, text)
    if getattr(request, "htmx", None) or status != 200:
        return _render(request, status=status)
    query = request.GET.urlencode()
    return redirect(reverse("tasks") + (f"?{query}" if query else ""))


def _task_for(request: AuthenticatedHttpRequest, pk: int, *, changing: str) -> Task:
    """A task of the list, which the person may change ``changing`` of: their own or,
    for a manager, their teams' (``task_refusal`` agrees, whatever the task's lead)."""
    tasks = tasks_listed_for(request.user).select_related("lead__owner__team")
    task = get_object_or_404(tasks, pk=pk)
    refusal = task_refusal(task=task, user=request.user, changed={changing})
    if refusal:
        raise PermissionDenied(refusal)
    return task


@login_required
@require_GET
def task_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _render(request)


@login_required
@require_POST
def task_complete_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    task = _task_for(request, pk, changing="done_at")
    if task_complete(task=task):
        return _done(request, messages.SUCCESS, f"Done: {task.title}.")
    return _done(request, messages.INFO, f"“{task.title}” was done already.")


@login_required
@require_POST
def task_snooze_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    task = _task_for(request, pk, changing="due_at")
    form = SnoozeForm(request.POST)
    if not form.is_valid():
        return _done(request, messages.ERROR, "Choose how long to snooze.", status=400)
    until = snooze_until(form.cleaned_data["until"], now=timezone.now())
    if not task_snooze(task=task, until=until):
        return _done(request, messages.INFO, f"“{task.title}” was done already.")
    local = timezone.localtime(until)
    return _done(request, messages.SUCCESS, f"“{task.title}” is due {local:%a %d %b, %H:%M}.")


@login_required
@require_POST
def task_reassign_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    task = _task_for(request, pk, changing="assignee")
    if not manages_team(request.user):
        raise PermissionDenied("Only managers reassign tasks.")
    form = ReassignForm(request.POST)
    assignee = None
    if form.is_valid():
        assignee = reassignable_to(request.user).filter(pk=form.cleaned_data["assignee"]).first()
    if assignee is None:
        return _done(request, messages.ERROR, "Choose someone in your team.", status=400)
    if not task_reassign(task=task, assignee=assignee, by=request.user):
        return _done(request, messages.INFO, f"“{task.title}” was done already.")
    return _done(request, messages.SUCCESS, f"“{task.title}” is now {assignee}'s.")

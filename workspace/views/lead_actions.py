"""What a rep does on the lead page: log a touch, write a note, add a task, move the
stage, take the lead, rate it, answer a hand-off, complete a task.

Acting needs more than seeing (``leads.permissions.lead_access``): a lead outside the
person's view answers 404, a visible lead the person may not change answers 403.
Actions post a plain form and redirect with a message (no JavaScript needed); htmx
posts the same form and swaps in the re-rendered page body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db.models import Q
from django.forms import BaseForm
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from crm.http import AuthenticatedHttpRequest
from leads.handoff_acceptance import handoff_accept, handoff_reject
from leads.models import HandOff, Lead, Task
from leads.permissions import lead_access, task_assignees, task_refusal
from leads.sales_feedback import lead_log_touch, lead_rate_quality
from leads.stages import lead_move_to_stage
from workspace.actions import lead_take as lead_take_service
from workspace.actions import note_add, task_add
from workspace.actions import task_complete as task_complete_service
from workspace.forms import NoteForm, RatingForm, RejectHandOffForm, StageForm, TaskForm, TouchForm

from .lead import acting_lead, render_lead, visible_lead


def _back(
    request: AuthenticatedHttpRequest, message: str, default: str, level: int = messages.SUCCESS
) -> HttpResponse:
    """After an action: the message, and back to ``next`` (My day posts it) or ``default``.
    htmx follows the redirect and swaps in the page it gets."""
    messages.add_message(request, level, message)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = default
    return HttpResponseRedirect(target)


def _done(
    request: AuthenticatedHttpRequest, lead: Lead, message: str, anchor: str = ""
) -> HttpResponse:
    return _back(request, message, lead.get_absolute_url() + (f"#{anchor}" if anchor else ""))


def _act(
    request: AuthenticatedHttpRequest,
    lead: Lead,
    form: BaseForm,
    name: str,
    perform: Callable[[dict[str, Any]], str],
    anchor: str = "",
) -> HttpResponse:
    """Validate ``form``, run ``perform`` with its data, and redirect with the message it
    returns. A form error or a refusal from the service (``ValidationError``) shows the
    page again with the message beside the inputs, answering 400, with nothing stored."""
    if form.is_valid():
        try:
            message = perform(form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            return _done(request, lead, message, anchor)
    return render_lead(request, lead, forms={name: form}, status=400)


def _add_errors(form: BaseForm, error: ValidationError) -> None:
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        form.add_error(field if field in form.fields else NON_FIELD_ERRORS, errors)


@login_required
@require_POST
def lead_log_touch_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    lead = acting_lead(request, pk)
    form = TouchForm(request.POST, prefix="touch")

    def perform(data: dict[str, Any]) -> str:
        activity = lead_log_touch(
            lead=lead,
            by=request.user,
            type=data["type"],
            notes=data["notes"],
            occurred_at=data["occurred_at"],
        )
        return f"{activity.get_type_display()} logged."

    return _act(request, lead, form, "touch", perform, "activity")


@login_required
@require_POST
def lead_add_note(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    lead = acting_lead(request, pk)
    form = NoteForm(request.POST, prefix="note")

    def perform(data: dict[str, Any]) -> str:
        note_add(lead=lead, author=request.user, body=data["body"])
        return "Note added."

    return _act(request, lead, form, "note", perform, "notes")


@login_required
@require_POST
def lead_add_task(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    lead = acting_lead(request, pk)
    assignees = task_assignees(request.user)
    form = TaskForm(request.POST, prefix="task", assignees=assignees)

    def perform(data: dict[str, Any]) -> str:
        task = task_add(task=form.save(commit=False), lead=lead)
        return f"Task “{task.title}” created."

    return _act(request, lead, form, "task", perform, "tasks")


@login_required
@require_POST
def lead_change_stage(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    lead = acting_lead(request, pk)
    form = StageForm(request.POST, prefix="stage", lead=lead)

    def perform(data: dict[str, Any]) -> str:
        change = lead_move_to_stage(
            lead_id=lead.pk, stage=data["stage"], by=request.user, reason=data["reason"]
        )
        return f"Moved to {change.get_to_stage_display()}."

    return _act(request, lead, form, "stage", perform, "stage")


@login_required
@require_POST
def lead_take(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Take an unassigned lead. The conditional UPDATE lets only the first of two people
    taking it at once win; the other is told."""
    lead = visible_lead(request, pk)
    if not lead_access(lead=lead, user=request.user).may_take:
        raise PermissionDenied("Only an unassigned lead can be taken, by a rep or a manager.")
    if not lead_take_service(lead=lead, by=request.user):
        return _back(request, "Someone else took this lead first.", reverse("home"), messages.ERROR)
    return _done(request, lead, "The lead is yours.")


@login_required
@require_POST
def lead_rate(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    lead = acting_lead(request, pk)
    form = RatingForm(request.POST, prefix="rating")

    def perform(data: dict[str, Any]) -> str:
        rating = lead_rate_quality(
            lead=lead, by=request.user, rating=data["rating"], reason=data["reason"]
        )
        return f"Rated: {rating.get_rating_display()}."

    return _act(request, lead, form, "rating", perform, "rating")


def _visible_handoff(request: AuthenticatedHttpRequest, handoff_id: int) -> HandOff:
    handoffs = HandOff.objects.filter(lead__in=Lead.objects.visible_to(request.user))
    related = handoffs.select_related("owner__team", "lead__company", "lead__owner__team")
    return get_object_or_404(related, pk=handoff_id)


@login_required
@require_POST
def handoff_accept_view(request: AuthenticatedHttpRequest, handoff_id: int) -> HttpResponse:
    """Accept a hand-off, from the lead page or My day (which posts ``next``)."""
    handoff = _visible_handoff(request, handoff_id)
    lead = handoff.lead
    try:
        handoff_accept(handoff=handoff, by=request.user)
    except ValidationError as error:
        return _back(request, " ".join(error.messages), lead.get_absolute_url(), messages.ERROR)
    return _done(request, lead, f"Hand-off of {lead} accepted.", "handoff")


@login_required
@require_POST
def handoff_reject_view(request: AuthenticatedHttpRequest, handoff_id: int) -> HttpResponse:
    handoff = _visible_handoff(request, handoff_id)
    lead = handoff.lead
    form = RejectHandOffForm(request.POST, prefix="reject")

    def perform(data: dict[str, Any]) -> str:
        handoff_reject(handoff=handoff, by=request.user, reason=data["reason"])
        return f"Hand-off of {lead} rejected: the lead is back with marketing."

    if request.POST.get("next") == reverse("home") and not form.is_valid():
        # From My day: the day again, with why, rather than the lead's page.
        return _back(
            request,
            " ".join(str(error) for error in form.non_field_errors()),
            reverse("home"),
            messages.ERROR,
        )
    return _act(request, lead, form, "reject", perform, "handoff")


@login_required
@require_POST
def task_complete(request: AuthenticatedHttpRequest, task_id: int) -> HttpResponse:
    """Mark a task done, from My day or the lead page. The person's own tasks, and tasks on
    leads they see; among those, one they may not complete (``task_refusal``) answers 403,
    others 404."""
    user = request.user
    tasks = Task.objects.filter(Q(assignee=user) | Q(lead__in=Lead.objects.visible_to(user)))
    task = get_object_or_404(tasks.select_related("lead__owner__team"), pk=task_id)
    refusal = task_refusal(task=task, user=user, changed={"done_at"})
    if refusal:
        raise PermissionDenied(refusal)
    done = task_complete_service(task=task)
    message = f"Done: {task.title}." if done else f"“{task.title}” was done already."
    default = task.lead.get_absolute_url() + "#tasks" if task.lead else reverse("home")
    return _back(request, message, default, messages.SUCCESS if done else messages.INFO)

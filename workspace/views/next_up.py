"""Next up: the rep's work queue (``leads.work_queue``), worked one lead at a time from
the keyboard or with plain forms.

The page shows the current item large and the ones after it below. Logging an outcome,
snoozing and skipping each post a form; without JavaScript the answer is a redirect
back to the queue with a message, with htmx the queue's body again, whose first item is
then the next one. A bad form answers 400 with the error beside its inputs, and nothing
changes. A lead outside the person's view is a 404, one they may see but not act on a
403 (``lead.acting_lead``), as on the lead page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from crm.http import AuthenticatedHttpRequest
from leads.models import Band, Lead, Task
from leads.permissions import works_leads
from leads.snooze_times import SNOOZE_CHOICES
from leads.work_queue import (
    NOTE_MAX,
    OUTCOME_LABELS,
    OUTCOMES,
    SKIP_REASONS,
    QueueItem,
    queue_outcome_log,
    queue_skip,
    queue_snooze,
    work_queue_for,
)
from scoring.selectors import predictive_score_subquery, surging_lead_ids
from scoring.snapshots import score_before
from workspace.score_trends import trend_badge

from .lead import acting_lead
from .lead_actions import _add_errors

NOT_FOR_YOU = "The work queue is for reps, managers and admins."
BAND_LABELS = dict(Band.choices)


class OutcomeForm(forms.Form):
    outcome = forms.ChoiceField(label="Outcome", choices=OUTCOMES)
    task = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    notes = forms.CharField(label="Notes", required=False, max_length=5000)


class QueueSnoozeForm(forms.Form):
    until = forms.ChoiceField(label="Snooze", choices=SNOOZE_CHOICES)


class SkipForm(forms.Form):
    reason = forms.ChoiceField(
        label="Why skip?",
        choices=SKIP_REASONS,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose why you skip this lead.",
            "invalid_choice": "Choose why you skip this lead.",
        },
    )
    note = forms.CharField(label="Note", required=False, max_length=NOTE_MAX)


def _queue_context(
    request: AuthenticatedHttpRequest,
    *,
    current_id: int | None = None,
    form_lead: Lead | None = None,
    bound: dict[str, forms.Form] | None = None,
) -> dict[str, Any]:
    user = request.user
    now = timezone.now()
    surging = surging_lead_ids(user=user, now=now)
    items = work_queue_for(user, now=now, surging=surging)
    _add_trends_and_predictive(items, now)
    current = next((item for item in items if item.lead.pk == current_id), None)
    if current is None and items:
        current = items[0]
    position = items.index(current) if current is not None else 0
    # A failed form shows again on its lead's card; for a lead no longer in the queue,
    # its errors show on top.
    on_card = bound is not None and current is not None and form_lead == current.lead
    card = bound if on_card and bound else {}
    return {
        "items": items,
        "rows": [_queue_row(item, current=item is current) for item in items],
        "current": current,
        "previous": items[position - 1] if position > 0 else None,
        "following": items[position + 1] if position + 1 < len(items) else None,
        "outcomes": [(str(n), key, label) for n, (key, label) in enumerate(OUTCOMES, start=1)],
        "outcome_form": card.get("outcome") or OutcomeForm(),
        "snooze_form": card.get("snooze") or QueueSnoozeForm(),
        "skip_form": card.get("skip") or SkipForm(),
        "snooze_choices": SNOOZE_CHOICES,
        "stray_form": None if on_card or not bound else next(iter(bound.values())),
        "now": now,
    }


def _add_trends_and_predictive(items: list[QueueItem], now: datetime) -> None:
    """Give each item's lead its score trend (``trend``, for the template) and its
    predictive score (``predictive``, ``None`` while none is live in its model), in one
    query."""
    rows = (
        Lead.objects.filter(pk__in=[item.lead.pk for item in items])
        .annotate(before=score_before(now), predictive=predictive_score_subquery())
        .order_by()
        .values_list("pk", "before", "predictive")
    )
    found = {pk: (before, predictive) for pk, before, predictive in rows}
    for item in items:
        before, predictive = found.get(item.lead.pk, (None, None))
        item.lead.trend = trend_badge(item.lead.score, before)  # type: ignore[attr-defined]
        item.lead.predictive = predictive  # type: ignore[attr-defined]


def _queue_row(item: QueueItem, *, current: bool) -> dict[str, Any]:
    """What the queue's list shows of one item, as plain values: worked out here once
    rather than by lookups through the item, its lead and their display methods, 25
    rows a page."""
    lead = item.lead
    return {
        "pk": lead.pk,
        "name": str(lead),
        "band": lead.band,
        "band_label": BAND_LABELS.get(lead.band, lead.band),
        "score": lead.score,
        "trend": lead.trend,  # type: ignore[attr-defined]
        "predictive": lead.predictive,  # type: ignore[attr-defined]
        "label": item.label,
        "company": lead.company.name if lead.company is not None else "",
        "reason": item.reason,
        "current": current,
    }


def _render(
    request: AuthenticatedHttpRequest, *, status: int = 200, **context: Any
) -> HttpResponse:
    template = "workspace/_next_up_page.html" if request.htmx else "workspace/next_up.html"
    response = render(request, template, _queue_context(request, **context), status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _check_works(request: AuthenticatedHttpRequest) -> None:
    if not works_leads(request.user):
        raise PermissionDenied(NOT_FOR_YOU)


@login_required
@require_GET
def next_up(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The queue; ``?lead=`` makes that lead's item the current one."""
    _check_works(request)
    raw = request.GET.get("lead", "")
    current_id = int(raw) if raw.isdigit() and len(raw) < 19 else None
    return _render(request, current_id=current_id)


def _after(request: AuthenticatedHttpRequest, message: str) -> HttpResponse:
    """Back to the queue, whose first item is now the next one; htmx follows the
    redirect and swaps in the queue's body."""
    messages.success(request, message)
    return redirect("next-up")


def _failed(
    request: AuthenticatedHttpRequest, lead: Lead, name: str, form: forms.Form
) -> HttpResponse:
    return _render(request, status=400, current_id=lead.pk, form_lead=lead, bound={name: form})


@login_required
@require_POST
def next_up_outcome(request: AuthenticatedHttpRequest, lead_id: int) -> HttpResponse:
    _check_works(request)
    lead = acting_lead(request, lead_id)
    form = OutcomeForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        task = None
        if data["task"]:
            task = Task.objects.filter(pk=data["task"], lead=lead, assignee=request.user).first()
        try:
            queue_outcome_log(
                lead=lead, by=request.user, outcome=data["outcome"], task=task, notes=data["notes"]
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            return _after(request, f"{OUTCOME_LABELS[data['outcome']]}: logged for {lead}.")
    return _failed(request, lead, "outcome", form)


@login_required
@require_POST
def next_up_snooze(request: AuthenticatedHttpRequest, lead_id: int) -> HttpResponse:
    _check_works(request)
    lead = acting_lead(request, lead_id)
    form = QueueSnoozeForm(request.POST)
    if form.is_valid():
        deferral = queue_snooze(
            lead=lead, by=request.user, choice=form.cleaned_data["until"], now=timezone.now()
        )
        back = timezone.localtime(deferral.until)
        return _after(request, f"{lead} snoozed until {back:%a %d %b, %H:%M}.")
    return _failed(request, lead, "snooze", form)


@login_required
@require_POST
def next_up_skip(request: AuthenticatedHttpRequest, lead_id: int) -> HttpResponse:
    _check_works(request)
    lead = acting_lead(request, lead_id)
    form = SkipForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            deferral = queue_skip(
                lead=lead,
                by=request.user,
                reason=data["reason"],
                note=data["note"],
                now=timezone.now(),
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            reason = deferral.get_reason_display().lower()
            return _after(request, f"{lead} skipped ({reason}).")
    return _failed(request, lead, "skip", form)

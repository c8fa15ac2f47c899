"""The lead page: who the lead is, why it scores what it does, what happened; the
actions a rep takes on it are in ``lead_actions``.

Every URL here reaches the lead through ``Lead.objects.visible_to``: a lead outside
the person's view answers 404, for reads and posts alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.forms import Form
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from leads.models import CustomFieldDefinition, HandOff, Lead, LeadRating, TaskKind
from leads.permissions import lead_access, task_assignees
from leads.selectors import done_tasks, open_tasks, timeline_page
from scoring.explanation import lead_explanation
from workspace.forms import (
    NoteForm,
    RatingForm,
    RejectHandOffForm,
    StageForm,
    TaskForm,
    TimelineFilterForm,
    TouchForm,
)

# --- Reading ---------------------------------------------------------------------------


def visible_lead(request: HttpRequest, pk: int) -> Lead:
    """The lead, if the person may see it; 404 otherwise (whether or not it exists)."""
    leads = Lead.objects.visible_to(request.user).select_related("company", "owner__team")
    return get_object_or_404(leads, pk=pk)


def acting_lead(request: HttpRequest, pk: int) -> Lead:
    """The lead, if the person may act on it: 404 when they cannot see it, 403 when they
    can see but not change it (a marketer, or a rep on a lead nobody has taken)."""
    lead = visible_lead(request, pk)
    if not lead_access(lead=lead, user=request.user).may_act:
        raise PermissionDenied("Only the lead's owner, their manager or an admin can do this.")
    return lead


@login_required
@require_GET
def lead_score_json(request: HttpRequest, pk: int) -> JsonResponse:
    """Why the lead has its score, and the score over time, as JSON."""
    lead = visible_lead(request, pk)
    return JsonResponse(lead_explanation(lead=lead, history=True))


@login_required
@require_GET
def lead_detail(request: HttpRequest, pk: int) -> HttpResponse:
    lead = visible_lead(request, pk)
    timeline = TimelineFilterForm(request.GET)
    status = 200 if timeline.is_valid() else 400
    return render_lead(request, lead, timeline=timeline, status=status)


@login_required
@require_GET
def lead_activity(request: HttpRequest, pk: int) -> HttpResponse:
    """More of the timeline (htmx "load more" and the type filter): the rows alone.
    Without htmx the same query string opens the whole page at that point."""
    lead = visible_lead(request, pk)
    if not request.htmx:
        query = request.GET.urlencode()
        return redirect(f"{lead.get_absolute_url()}{'?' + query if query else ''}#activity")
    timeline = TimelineFilterForm(request.GET)
    status = 200 if timeline.is_valid() else 400
    context = {"lead": lead, **_timeline_context(lead, timeline)}
    response = render(request, "workspace/_lead_activity_items.html", context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def render_lead(
    request: HttpRequest,
    lead: Lead,
    *,
    forms: dict[str, Form] | None = None,
    timeline: TimelineFilterForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The lead page; for htmx only its body (``_lead_page.html``), which replaces the one
    on screen. ``forms`` carries bound forms to show again with their errors."""
    context = lead_page_context(request, lead, forms=forms or {}, timeline=timeline)
    template = "workspace/_lead_page.html" if request.htmx else "workspace/lead_detail.html"
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def lead_page_context(
    request: HttpRequest,
    lead: Lead,
    *,
    forms: dict[str, Form],
    timeline: TimelineFilterForm | None,
) -> dict[str, Any]:
    """Everything the lead page shows, in a fixed number of queries."""
    user = request.user
    access = lead_access(lead=lead, user=user)
    explanation = lead_explanation(lead=lead, history=True)
    for part in explanation["models"]:
        model = part["model"]
        part["chart"] = score_chart(
            part["history"], hot_from=model["hot_from"], warm_from=model["warm_from"]
        )
    handoff = lead.handoffs.select_related("owner", "closed_by").first()
    context = {
        "lead": lead,
        "now": timezone.now(),
        "access": access,
        "explanation": explanation,
        "interests": list(lead.product_interests.all()),
        "custom_fields": _custom_fields(lead),
        "deals": list(lead.deals.all()[:20]),
        "open_tasks": open_tasks(lead=lead),
        "done_tasks": done_tasks(lead=lead),
        "notes": list(lead.notes.select_related("author")[:20]),
        "stage_changes": list(lead.stage_changes.select_related("by")[:20]),
        "handoff": handoff,
        "ratings": list(LeadRating.objects.filter(lead=lead).select_related("by")[:10]),
        **_timeline_context(lead, timeline or TimelineFilterForm()),
    }
    if access.may_act:
        context["forms"] = _action_forms(request, lead, handoff, forms)
    return context


def _timeline_context(lead: Lead, timeline: TimelineFilterForm) -> dict[str, Any]:
    data = timeline.cleaned_data if timeline.is_bound and timeline.is_valid() else {}
    kind = data.get("type", "")
    page = timeline_page(lead=lead, type=kind, before=data.get("before"))
    return {
        "timeline_form": timeline,
        "timeline": page,
        "timeline_type": kind,
        "timeline_continued": data.get("before") is not None,
    }


def _action_forms(
    request: HttpRequest, lead: Lead, handoff: HandOff | None, bound: dict[str, Form]
) -> dict[str, Form]:
    user = request.user
    due = timezone.localtime() + timedelta(days=1)
    forms: dict[str, Form] = {
        "touch": TouchForm(prefix="touch"),
        "note": NoteForm(prefix="note"),
        "task": TaskForm(
            prefix="task",
            assignees=task_assignees(user),
            initial={"assignee": user.pk, "kind": TaskKind.FOLLOW_UP, "due_at": due},
        ),
        "stage": StageForm(prefix="stage", lead=lead),
        "rating": RatingForm(prefix="rating"),
    }
    if handoff is not None and not handoff.is_closed:
        forms["reject"] = RejectHandOffForm(prefix="reject")
    forms.update(bound)
    return forms


def _custom_fields(lead: Lead) -> list[tuple[str, Any]]:
    """(label, value) of the lead's custom fields, in the definitions' order; a value
    whose definition was deleted keeps its key as its label."""
    values = dict(lead.custom_fields or {})
    shown = []
    for definition in CustomFieldDefinition.objects.all():
        if definition.key in values:
            shown.append((definition.label, values.pop(definition.key)))
    shown.extend(sorted(values.items()))
    return shown


# --- The score chart -------------------------------------------------------------------

CHART_WIDTH = 600
CHART_HEIGHT = 160
CHART_PAD = 24


def score_chart(
    history: list[dict[str, Any]], *, hot_from: int, warm_from: int
) -> dict[str, Any] | None:
    """An inline SVG line of the score over time, with the warm and hot lines, and the
    rows of its text alternative. None without history."""
    if not history:
        return None
    points = [(datetime.fromisoformat(p["at"]), p["score"]) for p in history]
    scores = [score for _, score in points]
    low = min(0, *scores)
    high = max(hot_from, *scores) or 1
    inner_w = CHART_WIDTH - 2 * CHART_PAD
    inner_h = CHART_HEIGHT - 2 * CHART_PAD

    def y(score: float) -> float:
        return round(CHART_PAD + inner_h * (high - score) / (high - low), 1)

    step = inner_w / max(len(points) - 1, 1)
    # The text alternative's rows, formatted here once: (machine time, shown time, score).
    rows = []
    for at, score in points:
        local = timezone.localtime(at)
        rows.append((local.isoformat(), local.strftime("%Y-%m-%d %H:%M"), score))
    line = " ".join(f"{round(CHART_PAD + i * step, 1)},{y(s)}" for i, (_, s) in enumerate(points))
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "pad": CHART_PAD,
        "right": CHART_WIDTH - CHART_PAD,
        "bottom": CHART_HEIGHT - CHART_PAD,
        "line": line,
        "hot_y": y(hot_from),
        "warm_y": y(warm_from),
        "hot_from": hot_from,
        "warm_from": warm_from,
        "first": points[0],
        "last": points[-1],
        "high": max(scores),
        "low": min(scores),
        "rows": rows,
    }

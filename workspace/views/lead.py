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
from django.forms import BaseForm
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.formats import date_format
from django.views.decorators.http import require_GET

from crm.http import AuthenticatedHttpRequest
from leads.duplicates import lead_open_pairs
from leads.merging import lead_alias_target
from leads.models import CustomFieldDefinition, HandOff, Lead, LeadRating, TaskKind
from leads.permissions import lead_access, merges_leads, task_assignees
from leads.selectors import done_tasks, open_tasks, timeline_page
from reports.charts import Frame, line_chart
from scoring.explanation import lead_explanation
from scoring.predictive.services import lead_predictive_explanations
from workspace.deal_card import deal_card
from workspace.forms import (
    NoteForm,
    RatingForm,
    RejectHandOffForm,
    StageForm,
    TaskForm,
    TimelineFilterForm,
    TouchForm,
)
from workspace.score_trends import trend_badge, trend_sentence

# --- Reading ---------------------------------------------------------------------------


def visible_lead(request: AuthenticatedHttpRequest, pk: int) -> Lead:
    """The lead, if the person may see it; 404 otherwise (whether or not it exists)."""
    leads = Lead.objects.visible_to(request.user).select_related("company", "owner__team")
    return get_object_or_404(leads, pk=pk)


def acting_lead(request: AuthenticatedHttpRequest, pk: int) -> Lead:
    """The lead, if the person may act on it: 404 when they cannot see it, 403 when they
    can see but not change it (a marketer, or a rep on a lead nobody has taken)."""
    lead = visible_lead(request, pk)
    refusal = lead_access(lead=lead, user=request.user).refusal
    if refusal:
        raise PermissionDenied(refusal)
    return lead


@login_required
@require_GET
def lead_score_json(request: AuthenticatedHttpRequest, pk: int) -> JsonResponse:
    """Why the lead has its score, and the score over time, as JSON."""
    lead = visible_lead(request, pk)
    return JsonResponse(lead_explanation(lead=lead, history=True))


@login_required
@require_GET
def lead_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The lead page; the id of a lead merged into one in view opens that one, by a
    temporary redirect: a merge can be undone, and browsers keep a permanent one."""
    try:
        lead = visible_lead(request, pk)
    except Http404:
        survivor = lead_alias_target(pk)
        if (
            survivor is None
            or not Lead.objects.visible_to(request.user).filter(pk=survivor).exists()
        ):
            raise
        return redirect("lead-detail", survivor)
    timeline = TimelineFilterForm(request.GET)
    status = 200 if timeline.is_valid() else 400
    return render_lead(request, lead, timeline=timeline, status=status)


@login_required
@require_GET
def lead_activity(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
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
    request: AuthenticatedHttpRequest,
    lead: Lead,
    *,
    forms: dict[str, BaseForm] | None = None,
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
    request: AuthenticatedHttpRequest,
    lead: Lead,
    *,
    forms: dict[str, BaseForm],
    timeline: TimelineFilterForm | None,
) -> dict[str, Any]:
    """Everything the lead page shows, in a fixed number of queries."""
    user = request.user
    access = lead_access(lead=lead, user=user)
    explanation = lead_explanation(lead=lead, history=True)
    predictive = lead_predictive_explanations(
        lead_id=lead.pk, model_ids=[part["model"]["id"] for part in explanation["models"]]
    )
    for part in explanation["models"]:
        model = part["model"]
        part["chart"] = score_chart(part["history"], model=model)
        part["predictive"] = predictive.get(model["id"])
    _add_trend(explanation, lead)
    handoff = lead.handoffs.select_related("owner", "closed_by").first()
    now = timezone.now()
    context = {
        "lead": lead,
        "now": now,
        "access": access,
        "explanation": explanation,
        "interests": list(lead.product_interests.all()),
        "custom_fields": _custom_fields(lead),
        "deal_card": deal_card(lead=lead, user=user, access=access, now=now, bound=forms),
        "open_tasks": open_tasks(lead=lead),
        "done_tasks": done_tasks(lead=lead),
        "notes": list(lead.notes.select_related("author")[:20]),
        "stage_changes": list(lead.stage_changes.select_related("by")[:20]),
        "handoff": handoff,
        "ratings": list(LeadRating.objects.filter(lead=lead).select_related("by")[:10]),
        "duplicates": lead_open_pairs(lead=lead, user=user),
        # The review queue's merge page is the admin's.
        "merges_here": user.is_staff and merges_leads(user),
        **_timeline_context(lead, timeline or TimelineFilterForm()),
    }
    if access.may_act:
        context["forms"] = _action_forms(request, lead, handoff, forms)
    return context


def _add_trend(explanation: dict[str, Any], lead: Lead) -> None:
    """The score trend, on the card of the model that gives the lead's score (the
    primary, or the first)."""
    parts = explanation["models"]
    shown = next((part for part in parts if part["model"]["primary"]), parts[0] if parts else None)
    if shown is not None:
        before = explanation["score_before"]
        shown["trend"] = trend_badge(lead.score, before)
        shown["trend_sentence"] = trend_sentence(lead.score, before)


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
    request: AuthenticatedHttpRequest,
    lead: Lead,
    handoff: HandOff | None,
    bound: dict[str, BaseForm],
) -> dict[str, BaseForm]:
    user = request.user
    due = timezone.localtime() + timedelta(days=1)
    forms: dict[str, BaseForm] = {
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

# The lead page's chart: narrower than a report's, with an even margin all round.
SCORE_FRAME = Frame(width=600, height=160, left=24, right=24, top=24, bottom=24)


def score_chart(history: list[dict[str, Any]], *, model: dict[str, Any]) -> dict[str, Any] | None:
    """The score over time in ``model`` as a line chart, with its warm and hot lines
    (``drawing``), and the rows of its text alternative (``rows``: machine time, shown
    time, score). None without history."""
    if not history:
        return None
    points = [(timezone.localtime(datetime.fromisoformat(p["at"])), p["score"]) for p in history]
    scores = [score for _, score in points]
    rows = [(at.isoformat(), date_format(at, "DATETIME_FORMAT"), score) for at, score in points]
    (first_at, first), (_, last) = points[0], points[-1]
    hot_from, warm_from = model["hot_from"], model["warm_from"]
    drawing = line_chart(
        slug=str(model["id"]),
        title=f"Score over time in {model['name']}",
        labels=[shown for _, shown, _ in rows],
        series=[("Score", scores)],
        frame=SCORE_FRAME,
        ceiling=hot_from,
        guides=[
            (hot_from, f"hot {hot_from}", "tone-hot"),
            (warm_from, f"warm {warm_from}", "tone-warm"),
        ],
        desc=(
            f"From {first} on {first_at:%Y-%m-%d} to {last} now; highest {max(scores)}, "
            f"lowest {min(scores)}. Hot from {hot_from}, warm from {warm_from}."
        ),
        ends=(date_format(first_at, "MONTH_DAY_FORMAT"), "now"),
        y_ticks=False,
        dots=False,
    )
    return {"drawing": drawing, "rows": rows}

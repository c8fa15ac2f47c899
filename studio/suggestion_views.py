"""Suggested weights on a model's studio page: the points a fit on the closed leads
suggests for its rules (``scoring.suggestions``), fitted on the bulk queue
(``scoring.suggestion_runs``): the part says "computing" and asks again every few
seconds until the fit is kept, then shows it; and a draft version made with them in one
click, previewed on its own studio page. Asks ``may_change_models`` as every studio page
does, and the suggestion permissions (``may_view_suggestions``,
``may_draft_suggestions``) as the admin and the API do."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from crm.http import AuthenticatedHttpRequest
from scoring.permissions import may_draft_suggestions, may_view_suggestions
from scoring.suggestion_runs import REFITTING, model_draft_request, model_suggestion_request
from scoring.suggestions import SuggestionError

from .views import _model


@login_required
@require_GET
def studio_suggestions(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The suggestion's table (rule, points now, suggested, lift, flags in words), or
    how many more won and lost leads it needs."""
    model = _model(request, pk)
    if not may_view_suggestions(request.user):
        raise PermissionDenied("Suggested weights are for those who may change models.")
    state = model_suggestion_request(model=model)
    context = {
        "model": model,
        "state": state,
        "suggestion": state.suggestion,
        "may_draft": may_draft_suggestions(request.user),
    }
    return fit_page(request, "suggestions", context, ready=state.ready)


def fit_page(
    request: AuthenticatedHttpRequest, name: str, context: dict[str, Any], *, ready: bool
) -> HttpResponse:
    """A page of a fit run in the background (``studio/<name>.html``, or its part
    ``studio/_<name>.html`` for htmx): 202 until the fit is done, and the part asks
    again by itself."""
    partial = bool(request.headers.get("HX-Request"))
    template = f"studio/_{name}.html" if partial else f"studio/{name}.html"
    return render(request, template, context, status=200 if ready else 202)


@login_required
@require_POST
def studio_suggestions_draft(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """A draft version of the model with the suggested points; its page previews it.
    When the weights are no longer kept, their fit is started (or joined) instead and
    the suggestions' page follows it (202 until they are fitted again), to be checked
    before the draft is made of them (``scoring.suggestion_runs.model_draft_request``)."""
    model = _model(request, pk)
    if not may_draft_suggestions(request.user):
        raise PermissionDenied("Making a draft needs the permission to add scoring models.")
    try:
        draft, _ = model_draft_request(model=model, by=request.user)
    except SuggestionError as exc:
        messages.error(request, str(exc))
        return redirect("studio-model", pk=model.pk)
    if draft is None:
        messages.info(request, REFITTING)
        return redirect("studio-suggestions", pk=model.pk)
    messages.success(
        request,
        f"“{draft}” is a draft with the suggested weights: its preview against "
        f"“{draft.version_of}” is below; no lead is touched until it is published.",
    )
    return redirect("studio-model", pk=draft.pk)

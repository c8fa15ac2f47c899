"""Rule weights from the live predictive model on its studio page: the points that make the
rules follow the model (``scoring.predictive.distilling``), fitted on the bulk queue
(``scoring.predictive.distill_runs``): the part says "computing" and asks again every
few seconds until the fit is kept, then shows it; and a draft version made with them in
one click, previewed against the live version on its own studio page. Asks
``may_change_models`` as every studio page does, and the suggestion permissions
(``may_view_suggestions``, ``may_draft_suggestions``) as suggested weights do: both
sum up every team's leads."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from crm.http import AuthenticatedHttpRequest
from scoring.permissions import may_draft_suggestions, may_view_suggestions
from scoring.predictive.distill_runs import (
    model_distillation_request,
    model_draft_from_kept_distillation,
)
from scoring.predictive.distilling import DistillationError

from .suggestion_views import fit_page
from .views import _model


@login_required
@require_GET
def studio_predictive_weights(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The proposal's figures, table and hints, or why there is none."""
    model = _model(request, pk)
    if not may_view_suggestions(request.user):
        raise PermissionDenied("Rule weights from the model are for those who may change models.")
    state = model_distillation_request(model=model)
    context = {
        "model": model,
        "state": state,
        "distillation": state.distillation,
        "may_draft": may_draft_suggestions(request.user),
    }
    return fit_page(request, "predictive_weights", context, ready=state.ready)


@login_required
@require_POST
def studio_predictive_weights_draft(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """A draft version of the model with the proposed points; its page previews it."""
    model = _model(request, pk)
    if not may_draft_suggestions(request.user):
        raise PermissionDenied("Making a draft needs the permission to add scoring models.")
    try:
        draft = model_draft_from_kept_distillation(model=model, by=request.user)
    except DistillationError as exc:
        messages.error(request, str(exc))
        return redirect("studio-predictive", pk=model.pk)
    messages.success(
        request,
        f"“{draft}” is a draft with the rule weights from the predictive model: its preview "
        f"against “{draft.version_of}” is below; no lead is touched until it is published.",
    )
    return redirect("studio-model", pk=draft.pk)

"""Predictive scoring on a model's studio page of its own: the live model's card (ROC AUC
beside the rules', Brier score, calibration and lift by decile, the features that weigh
most), earlier runs kept as reports, how many more closed leads are needed while there
are too few, and a button that trains on demand on the bulk queue. Asks
``may_change_models`` as every studio page does."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from crm.http import AuthenticatedHttpRequest
from scoring.models import PredictiveModel
from scoring.permissions import may_view_suggestions
from scoring.predictive.services import (
    live_predictive,
    predictive_disagreement,
    predictive_readiness,
)
from scoring.tasks import predictive_train_model

from .views import _model

RUNS_SHOWN = 10


@login_required
@require_GET
def studio_predictive(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    model = _model(request, pk)
    live = live_predictive(model)
    context = {
        "model": model,
        "readiness": predictive_readiness(model=model),
        "live": live,
        "latest": PredictiveModel.objects.filter(model=model).defer("artifact").first(),
        "runs": PredictiveModel.objects.filter(model=model).defer("artifact")[:RUNS_SHOWN],
        "disagreement": predictive_disagreement(model=model) if live else None,
        "weights_visible": live is not None and may_view_suggestions(request.user),
    }
    return render(request, "studio/predictive.html", context)


@login_required
@require_POST
def studio_predictive_train(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Queue a training run; the page says how many more closed leads it needs instead
    when there are too few."""
    model = _model(request, pk)
    readiness = predictive_readiness(model=model)
    if readiness.needed:
        messages.error(request, readiness.message)
        return redirect("studio-predictive", pk=model.pk)
    transaction.on_commit(lambda: predictive_train_model.delay(model.pk, request.user.pk))
    messages.success(
        request,
        "Training started on the closed leads. The new model goes live only if it beats the "
        "rules on the newest outcomes; reload this page to see its card.",
    )
    return redirect("studio-predictive", pk=model.pk)

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render

from leads.models import Lead
from scoring.models import ScoringModel
from scoring.selectors import lead_explanation, score_history


@login_required
def lead_score_json(request: HttpRequest, pk: int) -> JsonResponse:
    """Why the lead has its score, and the score over time, as JSON."""
    lead = get_object_or_404(Lead.objects.visible_to(request.user), pk=pk)
    explanation = lead_explanation(lead=lead)
    for part in explanation["models"]:
        model = ScoringModel.objects.get(pk=part["model"]["id"])
        part["history"] = score_history(lead=lead, model=model)
    return JsonResponse(explanation)


@login_required
def lead_detail(request: HttpRequest, pk: int) -> HttpResponse:
    lead = get_object_or_404(
        Lead.objects.visible_to(request.user).select_related("company", "owner"), pk=pk
    )
    activities = lead.activities.all()[:50]
    stage_changes = lead.stage_changes.select_related("by")
    context = {
        "lead": lead,
        "activities": activities,
        "stage_changes": stage_changes,
        "explanation": lead_explanation(lead=lead),
    }
    return render(request, "leads/lead_detail.html", context)

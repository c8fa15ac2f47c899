"""My day: the page a rep opens first, with who to call, why, and what is waiting for them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from crm.http import AuthenticatedHttpRequest
from crm.models import User
from leads.handoff_models import HandOff
from leads.permissions import manages_team
from leads.selectors import my_day_leads, tasks_due, team_numbers
from scoring.selectors import lead_reasons, surging_leads
from workspace.forms import RejectHandOffForm


@login_required
@require_GET
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    """My day. An htmx request (an action on this page, followed by its redirect) gets
    the page's body only, which replaces the one on screen."""
    template = "workspace/_home_page.html" if request.htmx else "workspace/home.html"
    all_handoffs = request.GET.get("handoffs") == "all"
    context = my_day_context(request.user, timezone.now(), all_handoffs=all_handoffs)
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


HANDOFFS_SHOWN = 20
HANDOFFS_ALL = 500


def my_day_context(user: User, now: datetime, *, all_handoffs: bool = False) -> dict[str, Any]:
    """Everything My day shows, in a fixed number of queries."""
    leads = list(my_day_leads(user=user))
    reasons = lead_reasons(leads=leads, now=now)
    for lead in leads:
        lead.reasons = reasons.get(lead.pk, [])  # type: ignore[attr-defined]  # for the template
    awaiting = HandOff.objects.awaiting(user)
    handoff_count = awaiting.count()
    shown = HANDOFFS_ALL if all_handoffs else HANDOFFS_SHOWN
    handoffs = list(awaiting.select_related("lead__company")[:shown])
    numbers = team_numbers(manager=user, now=now) if manages_team(user) else []
    if numbers:
        awaiting = HandOff.objects.pending().filter(owner__in=[row.member for row in numbers])
        counts = _count_by(awaiting, "owner")
        for row in numbers:
            row.awaiting_handoffs = counts.get(row.member.pk, 0)
    return {
        "leads": leads,
        "handoffs": handoffs,
        "handoff_count": handoff_count,
        "reject_form": RejectHandOffForm(prefix="reject"),
        "tasks": tasks_due(user=user, now=now),
        "surging": surging_leads(user=user, now=now),
        "team_numbers": numbers,
        "now": now,
        "is_manager": manages_team(user),
    }


def _count_by(queryset: Any, column: str) -> dict[int, int]:
    return dict(queryset.values_list(column).annotate(total=Count("pk")).order_by())

"""A company's page: what it is, its account score per scoring model, its people with
their scores, its deals and its latest activity.

Everyone with a role reads every company (``leads.permissions.companies_visible_to``,
as the REST API does); of its leads, and of the deals and activity on them, the page
shows only those ``Lead.objects.visible_to`` gives the person. The account score is the
company's, summed over all its people; the contacts listed with it are again only those
the person may see (``scoring.account_selectors``). A company that does not
exist, or anyone without a role, gets 404.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from crm.http import AuthenticatedHttpRequest
from leads.models import DealStatus
from leads.permissions import companies_visible_to
from leads.selectors import company_activity, company_deals, company_people
from scoring.account_selectors import company_account_views


@login_required
@require_GET
def company_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The company page (module docstring)."""
    user = request.user
    company = get_object_or_404(companies_visible_to(user), pk=pk)
    deals = company_deals(company=company, user=user)
    context = {
        "company": company,
        "accounts": company_account_views(company=company, user=user, now=timezone.now()),
        "people": company_people(company=company, user=user),
        "deals": deals,
        "open_total": deals.totals[DealStatus.OPEN],
        "won_total": deals.totals[DealStatus.WON],
        "lost_total": deals.totals[DealStatus.LOST],
        "activities": company_activity(company=company, user=user),
    }
    return render(request, "workspace/company_detail.html", context)

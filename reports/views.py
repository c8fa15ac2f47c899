"""The report pages: thin edges over the scope, the query layer and the page builders.

Every page reads the same filter form; invalid filters answer 400 with the form and its
messages. ``?format=csv`` exports a table of the page (``&table=<key>``, the first by
default) with the same rows.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from crm.http import AuthenticatedHttpRequest
from crm.models import User

from . import services
from .forms import DigestPreferenceForm
from .pages.catalogue import REPORTS, Report, key_facts
from .permissions import digest_eligible, may_see_reports
from .queries.key_figures import key_figures
from .scope import ReportFilterForm, ReportScope, scope_from
from .sql import report_reads
from .tables import csv_response


def _require_reader(user: User) -> None:
    if not may_see_reports(user):
        raise PermissionDenied("Reports are for sales and marketing.")


def _filters(request: AuthenticatedHttpRequest) -> tuple[ReportFilterForm, ReportScope | None]:
    form = ReportFilterForm(request.GET, user=request.user)
    return form, scope_from(form) if form.is_valid() else None


def _context(
    request: AuthenticatedHttpRequest, form: ReportFilterForm, scope: ReportScope | None
) -> dict[str, Any]:
    query = request.GET.copy()
    for name in ("format", "table"):
        query.pop(name, None)
    return {
        "form": form,
        "scope": scope,
        "reports": REPORTS.values(),
        "query": query.urlencode(),
    }


@login_required
@require_GET
def report_index(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The key figures of the range and the links to every report."""
    _require_reader(request.user)
    form, scope = _filters(request)
    context = _context(request, form, scope)
    if scope is None:
        return render(request, "reports/index.html", context, status=400)
    with report_reads():
        context["figures"] = figures = key_figures(scope)
    context["facts"] = key_facts(figures)
    return render(request, "reports/index.html", context)


@login_required
@require_GET
def report_page(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    _require_reader(request.user)
    report = REPORTS.get(slug)
    if report is None:
        raise Http404("No such report.")
    form, scope = _filters(request)
    context = {**_context(request, form, scope), "report": report}
    if scope is None:
        if request.GET.get("format") == "csv":
            return HttpResponseBadRequest(_errors_text(form), content_type="text/plain")
        return render(request, "reports/report.html", context, status=400)
    with report_reads():
        page = report.build(scope, request.GET)
    if request.GET.get("format") == "csv":
        return _export(report, page, request.GET.get("table"), scope)
    context["page"] = page
    return render(request, "reports/report.html", context)


def _export(report: Report, page: Any, key: str | None, scope: ReportScope) -> HttpResponse:
    table = page.table(key)
    if table is None:
        return HttpResponseBadRequest(
            f"table: choose one of {', '.join(t.key for t in page.tables) or 'none'}.",
            content_type="text/plain",
        )
    day = scope.last_day.isoformat()
    return csv_response(table, filename=f"hotlist-{report.slug}-{table.key}-{day}.csv")


def _errors_text(form: ReportFilterForm) -> str:
    return "\n".join(
        f"{name}: {' '.join(str(error) for error in errors)}"
        for name, errors in form.errors.items()
    )


@login_required
@require_http_methods(["GET", "POST"])
def digest_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Whether the signed-in person receives the weekly digest."""
    _require_reader(request.user)
    current = services.digest_wanted(user=request.user)
    data = request.POST if request.method == "POST" else None
    form = DigestPreferenceForm(data, initial={"weekly_digest": current})
    if request.method == "POST":
        if form.is_valid():
            wanted = form.cleaned_data["weekly_digest"]
            services.digest_preference_set(user=request.user, weekly_digest=wanted)
            messages.success(
                request, "The weekly digest is on." if wanted else "No more weekly digests."
            )
            return redirect("reports-digest")
        return render(request, "reports/digest.html", _digest_context(request, form), status=400)
    return render(request, "reports/digest.html", _digest_context(request, form))


def _digest_context(
    request: AuthenticatedHttpRequest, form: DigestPreferenceForm
) -> dict[str, Any]:
    return {"form": form, "receives": digest_eligible(user=request.user)}

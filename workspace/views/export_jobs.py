"""Exports of leads written in the background (``leads.export_jobs``): asking for one
from the leads list, the list of past exports, following one's progress and
downloading its file.

With htmx the list's "Prepare a file" form swaps the job's progress panel in beside the
list, and the panel polls itself until the file is ready; without JavaScript the form
leads to the job's page, which reloads itself until then. Only the person who asked,
and admins, see a job (``export_jobs_visible_to``); anyone else gets 404. The list of
past exports shows the same jobs as the REST API's ``/api/v1/export-jobs/``, whichever
surface asked for them (the leads list, the lead admin, the API).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseBadRequest, QueryDict
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods

from crm.http import AuthenticatedHttpRequest
from leads.admin.lead_exports import SOURCE as ADMIN_SOURCE
from leads.export_jobs import ExportQueryError, export_job_create
from leads.export_responses import EXPORT_FORMATS, FORMAT_UNKNOWN, export_job_file_response
from leads.models import ExportJob, ExportStatus
from leads.permissions import EXPORT_REFUSED, export_jobs_visible_to, may_export_leads
from workspace.exports import (
    EXPORT_FILTERS_INVALID,
    SOURCE,
    list_export_columns,
    list_leads_for_export,
)

JOBS_PER_PAGE = 50
NOT_READY = "The file is not written yet."
EXPIRED = "The file was deleted after its keeping time: export the list again."
GONE = "The file is missing: export the list again."


def _job(request: AuthenticatedHttpRequest, pk: int) -> ExportJob:
    return get_object_or_404(export_jobs_visible_to(request.user), pk=pk)


def _partial(request: AuthenticatedHttpRequest) -> bool:
    htmx = request.htmx
    return bool(htmx) and not htmx.history_restore_request and not htmx.boosted


def _list_url(job: ExportJob) -> str:
    """Where the job's list is shown again, to export it anew: "" for the API's."""
    if job.source == SOURCE:
        return reverse("lead-list") + (f"?{job.query}" if job.query else "")
    if job.source == ADMIN_SOURCE:
        query = QueryDict(job.query, mutable=True)
        query.pop(ACTION_CHECKBOX_NAME, None)  # the ticked leads: not a filter
        filters = query.urlencode()
        return reverse("admin:leads_lead_changelist") + (f"?{filters}" if filters else "")
    return ""


def _panel(request: AuthenticatedHttpRequest, job: ExportJob) -> HttpResponse:
    context = {
        "job": job,
        "keep_hours": settings.EXPORT_KEEP_HOURS,
        "list_url": _list_url(job),
    }
    if _partial(request):
        response = render(request, "workspace/_export_job.html", context)
    else:
        response = render(request, "workspace/export_job.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_http_methods(["GET", "POST"])
def export_jobs_view(request: AuthenticatedHttpRequest) -> HttpResponseBase:
    """The person's exports (GET), or asking for a new one (POST)."""
    if not may_export_leads(request.user):
        raise PermissionDenied(EXPORT_REFUSED)
    if request.method == "POST":
        return _export_job_create(request)
    return _export_job_list(request)


def _export_job_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Past exports, newest first: status, rows, when asked for and until when the file
    is kept, its download while it is, the reason of a failed one."""
    user = request.user
    jobs = export_jobs_visible_to(user).select_related("requested_by").order_by("-id")
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        # Who asked is shown when the page holds someone else's (an admin's view).
        "others": any(job.requested_by_id != user.pk for job in page),
        "keep_hours": settings.EXPORT_KEEP_HOURS,
    }
    return render(request, "workspace/export_jobs.html", context)


def _export_job_create(request: AuthenticatedHttpRequest) -> HttpResponseBase:
    """Ask for the file of the list the ``query`` field names (its query string) in
    ``format``; the filters are checked now, so a bad one answers here, not later."""
    user = request.user
    file_format = request.POST.get("format", "")
    if file_format not in EXPORT_FORMATS:
        return HttpResponseBadRequest(FORMAT_UNKNOWN, content_type="text/plain; charset=utf-8")
    query = QueryDict(request.POST.get("query", ""))
    try:
        list_leads_for_export(user, query)
    except ExportQueryError:
        messages.error(request, EXPORT_FILTERS_INVALID)
        return redirect(reverse("lead-list") + f"?{query.urlencode()}")
    job = export_job_create(
        by=user,
        source=SOURCE,
        query=query.urlencode(),
        columns=[column.name for column in list_export_columns(query)],
        file_format=file_format,
    )
    if _partial(request):
        return _panel(request, job)
    return redirect("lead-export-job", pk=job.pk)


@login_required
@require_GET
def export_job_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The job's progress and, once written, its download link: the page, or for htmx
    the panel that polls it."""
    return _panel(request, _job(request, pk))


@login_required
@require_GET
def export_job_download(request: AuthenticatedHttpRequest, pk: int) -> HttpResponseBase:
    """The written file, streamed from disk."""
    job = _job(request, pk)
    path = job.path
    if path is None:
        status = 410 if job.status == ExportStatus.EXPIRED else 409
        text = EXPIRED if status == 410 else NOT_READY
        return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
    try:
        return export_job_file_response(
            path=path, filename=job.download_name(), file_format=job.file_format
        )
    except FileNotFoundError:
        raise Http404(GONE) from None

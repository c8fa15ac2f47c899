"""The lead admin's "Export selected leads (CSV)" action, small and large.

A selection of up to ``HOTLIST_EXPORT_INLINE_MAX`` leads is answered at once with its
file. A larger one (in practice "select all" across pages of a filtered changelist) is
written by a worker as an export job (``leads.export_jobs``), which the admin asks for
through the same service as the leads list and the REST API: an admin action is a form
post answered while the person waits, with no progress to show, and a file of a
million rows must not hold a request that long.

What the job keeps is the changelist's query string (filters, search, order) and, when
the person ticked leads rather than selecting all, the ticked ids. At run time the
changelist is built again from them for the person who asked (``admin_leads_for_export``,
the source ``admin``), through the lead admin's own queryset, which is
``Lead.objects.visible_to`` of that person as they are then.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME, ActionForm
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.messages.storage.cookie import CookieStorage
from django.db.models import QuerySet
from django.http import HttpRequest, QueryDict
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.html import format_html

from crm.http import signed_in
from crm.models import User

from ..export_jobs import ExportQueryError, export_exceeds_inline, export_job_create
from ..export_responses import CSV, leads_export_response
from ..exports import export_columns
from ..models import Lead

SOURCE = "admin"
FILTERS_INVALID = "The admin's filters of this export are no longer valid."


def selection_query(request: HttpRequest) -> str:
    """The query string that selects again what the action was given: the changelist's
    own (filters, search, order), with the ticked ids unless "select all" was chosen."""
    query = request.GET.copy()
    select_across = ActionForm.base_fields["select_across"].to_python(
        request.POST.get("select_across")
    )
    if not select_across:
        query.setlist(ACTION_CHECKBOX_NAME, request.POST.getlist(ACTION_CHECKBOX_NAME))
    return query.urlencode()


def export_selected(request: HttpRequest, leads: QuerySet[Lead]) -> HttpResponseBase | None:
    """The action's answer: the CSV of ``leads`` at once, or an export job and a message
    linking to it (the admin then shows the changelist again)."""
    columns = export_columns()
    if not export_exceeds_inline(leads=leads):
        return leads_export_response(leads=leads, columns=columns, file_format=CSV)
    job = export_job_create(
        by=signed_in(request),
        source=SOURCE,
        query=selection_query(request),
        columns=[column.name for column in columns],
        file_format=CSV,
    )
    link = format_html(
        '<a href="{}">export {}</a>', reverse("lead-export-job", args=[job.pk]), job.pk
    )
    messages.info(
        request,
        format_html(
            "The selection holds more leads than are exported at once: its CSV file is "
            "being written in the background as {}. A notification tells you when it is "
            "ready to download.",
            link,
        ),
    )
    return None


def admin_leads_for_export(user: User, query: QueryDict) -> QuerySet[Lead]:
    """The leads the lead admin's changelist gives ``user`` for ``query`` (as made by
    ``selection_query``), in its order: the export source ``admin``. Raises
    ``ExportQueryError`` when its filters no longer apply."""
    filters = query.copy()
    selected = filters.pop(ACTION_CHECKBOX_NAME, None)
    request = HttpRequest()
    request.method, request.path = "GET", reverse("admin:leads_lead_changelist")
    request.GET = QueryDict(filters.urlencode())
    request.user = user
    # The changelist reports a bad search as a message: kept here to refuse the export.
    request._messages = CookieStorage(request)  # type: ignore[attr-defined]
    model_admin = admin.site.get_model_admin(Lead)
    try:
        changelist = model_admin.get_changelist_instance(request)
    except IncorrectLookupParameters as exc:
        raise ExportQueryError(FILTERS_INVALID) from exc
    if list(request._messages):  # type: ignore[attr-defined]
        raise ExportQueryError(FILTERS_INVALID)
    leads: QuerySet[Lead] = changelist.queryset
    if selected is not None:
        leads = leads.filter(pk__in=[pk for pk in selected if pk.isdigit()])
    return leads

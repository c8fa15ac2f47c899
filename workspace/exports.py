"""The leads list as an export sees it: the leads the list shows a person for a query
string, in its order, and the file's columns for its chosen columns.

The list's export view and its export jobs (``leads.export_jobs``, which runs this
again at run time for the person who asked, registered as the source ``workspace``)
read the same leads.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest, QueryDict

from crm.models import User
from leads.export_jobs import ExportQueryError
from leads.exports import ExportColumn, export_columns
from leads.models import Lead
from leads.permissions import teammates_of

from .columns import chosen_columns, export_names
from .filters import LeadListFilter
from .keyset import whole_list_order

SOURCE = "workspace"
EXPORT_FILTERS_INVALID = "Nothing was exported: correct the filters first."


def list_leads_for_export(user: User, query: QueryDict) -> QuerySet[Lead]:
    """Every lead the list shows ``user`` for ``query``, in the list's sort order;
    ``ExportQueryError`` when the filters are not valid (a file that silently left one
    out would hold leads the person did not ask for)."""
    request = HttpRequest()
    request.user = user
    filters = LeadListFilter(query, request=request, people=list(teammates_of(user)))
    if not filters.is_valid():
        raise ExportQueryError(EXPORT_FILTERS_INVALID)
    return filters.qs.order_by(*whole_list_order(filters.sort_key))


def list_export_columns(query: QueryDict) -> list[ExportColumn]:
    """The file's columns: those of the chosen list columns (``cols``), else all."""
    keys, chosen = chosen_columns(query)
    return export_columns(export_names(keys)) if chosen else export_columns()

"""The leads list: filters, sort, keyset pages, bulk actions and exports.

Full pages for plain requests; the results partial (``workspace/_lead_rows.html``) for htmx
requests, so filtering, sorting and paging swap the table in place and push the URL.
The list's export links carry its query string, so a file holds the leads the list
shows, in its order; with chosen columns (``cols``), exactly those columns.

Saved views (``workspace.saved_views``) keep a list's query string and columns; the
list opened with ``view=<id>`` names the view it shows. "Select all leads matching
these filters" sends the bulk action the list's query string instead of ids: the
server runs the filters again for the person, within what they may see.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpResponse, HttpResponseBadRequest, QueryDict
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from crm.http import AuthenticatedHttpRequest
from crm.models import User
from leads.export_jobs import ExportQueryError, export_needs_job
from leads.export_responses import CSV, EXPORT_FORMATS, FORMAT_UNKNOWN, leads_export_response
from leads.models import Band, Stage
from leads.permissions import EXPORT_REFUSED, may_export_leads, teammates_of
from nurturing.models import Sequence as NurtureSequence
from scoring.snapshots import score_before
from workspace import bulk
from workspace import filters as lead_filters
from workspace.columns import (
    COLUMNS,
    COLUMNS_PARAM,
    chosen_columns,
    column_cells,
    rows_with_columns,
)
from workspace.exports import EXPORT_FILTERS_INVALID, list_export_columns, list_leads_for_export
from workspace.filters import LeadListFilter, leads_count, leads_count_upto
from workspace.formats import house_date
from workspace.forms import LOCAL_DATETIME_FORMATS, LocalDateTimeInput
from workspace.keyset import SORTS, cursor_decode, leads_page
from workspace.paths import pk_path
from workspace.saved_views import (
    VIEW_PARAM,
    may_delete_view,
    may_share_views,
    saved_views_for,
    view_url_query,
)
from workspace.score_trends import trend_badge

# Column heading, sort key and the direction a first click sorts in.
SORTABLE_COLUMNS = [
    ("name", "Name", "name"),
    ("company", "Company", "company"),
    ("stage_changed", "Stage changed", "-stage_changed"),
    ("last_activity", "Last activity", "-last_activity"),
    ("predictive", "Predictive", "-predictive"),
    ("score", "Score", "-score"),
]
SORTABLE = {key for key, _, _ in SORTABLE_COLUMNS}


# The columns a row shows, and those its sort orders and cursors read.
ROW_FIELDS = (
    "id",
    "first_name",
    "last_name",
    "email",
    "stage",
    "stage_changed_at",
    "last_activity_at",
    "rank__score",
    "band",
    "grade",
    "company_id",
    "company__name",
    "owner__username",
    "owner__first_name",
    "owner__last_name",
)
STAGE_LABELS = dict(Stage.choices)
BAND_LABELS = dict(Band.choices)

# Filters folded under "More filters" unless one of them is in use.
SECONDARY_FILTERS = ("source", "product", "grade", "quadrant", "score_min", "score_max", "activity")


SELECT_ALL_INVALID = "Correct the filters before acting on every lead they match."
SELECT_ALL_TOO_MANY = (
    f"Act on at most {bulk.SELECT_ALL_MAX:,} leads at a time: narrow the filters first."
)

# The bulk bar's fields and the actions that use each; with JavaScript the bar shows
# only the chosen action's fields (all of them without, the form checks per action).
FIELD_ACTIONS = {
    "owner": (bulk.BULK_ASSIGN,),
    "stage": (bulk.BULK_STAGE,),
    "points": (bulk.BULK_SCORE,),
    "reason": (bulk.BULK_STAGE, bulk.BULK_SCORE),
    "sequence": (bulk.BULK_NURTURE,),
    "task_title": (bulk.BULK_TASK,),
    "task_due": (bulk.BULK_TASK,),
}


class LeadBulkForm(forms.Form):
    """A bulk action on the selected leads, or on every lead the list's filters match
    (``select_all``); the actions offered depend on the role."""

    action = forms.ChoiceField(label="Action")
    owner = forms.TypedChoiceField(label="Assign to", required=False, coerce=int)
    stage = forms.ChoiceField(
        label="Stage",
        required=False,
        choices=[("", "Choose a stage"), *Stage.choices],
    )
    points = forms.IntegerField(
        label="Points",
        required=False,
        min_value=-1000,
        max_value=1000,
        help_text="Negative points lower the score.",
    )
    reason = forms.CharField(label="Reason", required=False, max_length=200)
    sequence = forms.ModelChoiceField(
        label="Sequence",
        queryset=NurtureSequence.objects.none(),
        required=False,
    )
    task_title = forms.CharField(label="Task", required=False, max_length=200)
    task_due = forms.DateTimeField(
        label="Due",
        required=False,
        input_formats=LOCAL_DATETIME_FORMATS,
        widget=LocalDateTimeInput(),
    )
    select_all = forms.BooleanField(label="Every lead matching these filters", required=False)
    # The count the person saw, compared with the count acted on.
    expected = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def __init__(
        self, *args: Any, user: User, people: Sequence[User] | None = None, **kwargs: Any
    ) -> None:
        # The filters above the list have an owner and a stage too: ids of their own.
        kwargs.setdefault("auto_id", "bulk_%s")
        super().__init__(*args, **kwargs)
        self.user = user
        actions = bulk.bulk_actions_for(user)
        action_field = self.fields["action"]
        assert isinstance(action_field, forms.ChoiceField)
        action_field.choices = [("", "Choose an action"), *actions]
        choices = [(user.pk, f"Me ({user})")]
        if any(action == bulk.BULK_ASSIGN for action, _ in actions):
            team = teammates_of(user) if people is None else people
            choices += [(person.pk, str(person)) for person in team]
        owner = self.fields["owner"]
        assert isinstance(owner, forms.ChoiceField)
        owner.choices = [("", "Choose a person"), *choices]
        if any(action == bulk.BULK_NURTURE for action, _ in actions):
            sequence = self.fields["sequence"]
            assert isinstance(sequence, forms.ModelChoiceField)
            sequence.queryset = NurtureSequence.objects.active().order_by("name").only("pk", "name")
            sequence.empty_label = "Choose a sequence"
        else:
            del self.fields["sequence"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        action = data.get("action")
        data["lead_ids"] = None if data.get("select_all") else self._lead_ids()
        if action == bulk.BULK_ASSIGN and not data.get("owner"):
            self.add_error("owner", "Choose who gets the leads.")
        if action == bulk.BULK_STAGE:
            if not data.get("stage"):
                self.add_error("stage", "Choose the stage to move the leads to.")
            elif data["stage"] == Stage.DISQUALIFIED and not data.get("reason", "").strip():
                self.add_error("reason", "Say why the leads are disqualified.")
        if action == bulk.BULK_TASK:
            if not data.get("task_title", "").strip():
                self.add_error("task_title", "Say what needs doing.")
            if not data.get("task_due") and "task_due" not in self.errors:
                self.add_error("task_due", "Say when the task is due.")
        if action == bulk.BULK_NURTURE and not data.get("sequence"):
            self.add_error("sequence", "Choose the sequence to enroll the leads in.")
        if action == bulk.BULK_SCORE:
            if not data.get("points"):
                self.add_error("points", "Give a non-zero number of points.")
            if not data.get("reason", "").strip():
                self.add_error("reason", "Say why the score is adjusted.")
        return data

    def _lead_ids(self) -> list[int]:
        raw = self.data.getlist("lead") if hasattr(self.data, "getlist") else []
        if not raw:
            raise forms.ValidationError("Select at least one lead.")
        if len(raw) > bulk.BULK_MAX:
            raise forms.ValidationError(f"Select at most {bulk.BULK_MAX} leads at a time.")
        if not all(value.isdigit() and len(value) < 19 for value in raw):
            raise forms.ValidationError("The selection is not valid; reload the list.")
        return [int(value) for value in raw]

    def action_fields(self) -> list[tuple[forms.BoundField, str]]:
        """The fields an action needs, each with the actions that use it (space-separated)."""
        return [
            (self[name], " ".join(FIELD_ACTIONS[name]))
            for name in FIELD_ACTIONS
            if name in self.fields
        ]


def _list_query(params: QueryDict) -> QueryDict:
    """The list's filters without the page cursor (which never survives a new filter)."""
    query = params.copy()
    query.pop("cursor", None)
    return query


def _url(query: QueryDict, **changes: str) -> str:
    query = query.copy()
    for name, value in changes.items():
        query[name] = value
    encoded = query.urlencode()
    return reverse("lead-list") + (f"?{encoded}" if encoded else "")


def _columns(query: QueryDict, sort: str) -> dict[str, dict[str, str]]:
    """Per sortable column: the URL its heading links to, and its ``aria-sort``."""
    columns = {}
    for key, label, first in SORTABLE_COLUMNS:
        active = sort.lstrip("-") == key
        following = (sort[1:] if sort.startswith("-") else f"-{sort}") if active else first
        direction = "descending" if sort.startswith("-") else "ascending"
        columns[key] = {
            "label": label,
            "url": _url(query, sort=following),
            "aria_sort": direction if active else "none",
        }
    return columns


def _shown_columns(keys: list[str], headings: dict[str, dict[str, str]]) -> list[dict]:
    """The chosen optional columns as the table heads them: label, and sort link if any."""
    return [
        {"key": key, "label": COLUMNS[key].label, **headings.get(key, {})}
        for key in keys
        if key in COLUMNS
    ]


def _column_choices(keys: list[str]) -> list[dict[str, Any]]:
    return [
        {"key": key, "label": column.label, "checked": key in keys}
        for key, column in COLUMNS.items()
    ]


def _saved_views(request: AuthenticatedHttpRequest) -> tuple[list[dict[str, Any]], dict | None]:
    """The views the person sees, for the menu, and the one the list shows (``view=``)."""
    user = request.user
    active_pk = request.GET.get(VIEW_PARAM, "")
    views, active = [], None
    for view in saved_views_for(user):
        entry = {
            "pk": view.pk,
            "name": view.name,
            "shared": view.shared,
            "mine": view.owner_id == user.pk,
            "owner": str(view.owner),
            "url": _url(view_url_query(view)),
            "may_delete": may_delete_view(view=view, user=user),
            "active": str(view.pk) == active_pk,
        }
        views.append(entry)
        if entry["active"]:
            active = entry
    return views, active


def list_context(
    request: AuthenticatedHttpRequest, *, bulk_form: LeadBulkForm | None = None
) -> dict:
    """What the list page and its partial show, for the filters in the query string."""
    user = request.user
    people = list(teammates_of(user))
    filters = LeadListFilter(request.GET, request=request, people=people)
    form = filters.form
    sort = filters.sort_key
    leads = filters.qs
    exact = request.GET.get("count") == "exact"
    # With only filters on the rank, counted from the ranks: no lead row read.
    counted = _counted(filters)
    count = leads_count(counted) if exact else leads_count_upto(counted)
    keys, chosen = chosen_columns(request.GET)
    cursor = cursor_decode(request.GET.get("cursor", ""), sort=sort)
    # The score seven days ago for the trend: one index probe a row, in the page's query.
    rows = rows_with_columns(leads, fields=ROW_FIELDS, keys=keys).annotate(
        score_before=score_before(timezone.now())
    )
    page = leads_page(rows, sort=sort, cursor=cursor)
    paths = RowPaths(lead=pk_path("lead-detail"), company=pk_path("company-detail"))
    query = _list_query(request.GET)
    actions = bulk.bulk_actions_for(user)
    secondary = [form[name] for name in SECONDARY_FILTERS]
    headings = _columns(query, sort)
    views, active_view = _saved_views(request)
    return {
        "form": form,
        "primary_fields": [field for field in form if field.name not in SECONDARY_FILTERS],
        "secondary_fields": secondary,
        "more_filters_open": any(field.value() or field.errors for field in secondary),
        "page": page,
        "rows": [lead_row(row, paths=paths) for row in page.rows],
        "count": count,
        "count_more_than": lead_filters.COUNT_INLINE_MAX,
        "count_url": reverse("lead-count") + (f"?{query.urlencode()}" if query else ""),
        "count_exact_url": _url(query, count="exact"),
        "sort": sort,
        "sort_label": SORTS[sort].label,
        "columns": headings,
        "shown_columns": _shown_columns(keys, headings),
        "column_choices": _column_choices(keys),
        "query": query.urlencode(),
        "next_url": _url(query, cursor=page.next_cursor) if page.next_cursor else "",
        "previous_url": _url(query, cursor=page.previous_cursor) if page.previous_cursor else "",
        "bulk_form": bulk_form
        or (
            LeadBulkForm(user=user, people=people, initial={"expected": count}) if actions else None
        ),
        "export_urls": _export_urls(query, keys if chosen else None)
        if may_export_leads(user)
        else {},
        "export_query": _export_query(query, keys if chosen else None),
        "saved_views": views,
        "active_view": active_view,
        "may_share_views": may_share_views(user),
        "view_query": _view_save_query(query),
    }


def _view_save_query(query: QueryDict) -> str:
    """What the "Save view" form posts with: the list's query string, without the view."""
    query = query.copy()
    query.pop(VIEW_PARAM, None)
    return query.urlencode()


def _export_query(query: QueryDict, keys: list[str] | None) -> str:
    """What an export job of the list is asked with: its filters, order and columns."""
    query = query.copy()
    query.pop(VIEW_PARAM, None)
    query.pop(COLUMNS_PARAM, None)
    if keys is not None:
        query.setlist(COLUMNS_PARAM, list(keys) or [""])
    return query.urlencode()


def _export_urls(query: QueryDict, keys: list[str] | None) -> dict[str, str]:
    """The export links: the list's query string; with chosen columns, exactly those
    (``cols`` as the list has it) and, as ``all``, the whole file of the same leads."""
    query = query.copy()
    query.pop(VIEW_PARAM, None)
    query.pop(COLUMNS_PARAM, None)
    whole = query.urlencode()
    if keys is not None:
        query.setlist(COLUMNS_PARAM, list(keys) or [""])
    encoded = query.urlencode()
    urls = {
        file_format: reverse("lead-export", args=[file_format]) + (f"?{encoded}" if encoded else "")
        for file_format in EXPORT_FORMATS
    }
    if keys is not None:
        urls["all"] = reverse("lead-export", args=[CSV]) + (f"?{whole}" if whole else "")
    return urls


class RowPaths(NamedTuple):
    """The URLs a row links to, by id (``workspace.paths``): reversed once a page."""

    lead: Callable[[int], str]
    company: Callable[[int], str]


def lead_row(row: dict[str, Any], *, paths: RowPaths) -> dict[str, Any]:
    """What one row of the list shows, as plain strings, from a ``ROW_FIELDS`` row (and
    the score seven days ago, ``score_before``, for the trend).

    Worked out here once rather than by template filters: with 25 rows a page the
    filters' per-value lookups (the model's display methods, the date and humanize
    filters, each resolved through several attribute tries) cost more than the rest of
    the table. The names follow ``Lead.__str__`` and ``User.__str__``.
    """
    changed = timezone.localtime(row["stage_changed_at"])
    last = row["last_activity_at"]
    name = f"{row['first_name']} {row['last_name']}".strip() or row["email"]
    company_id = row["company_id"]
    owner = row["owner__username"]
    if owner is not None:
        owner = f"{row['owner__first_name']} {row['owner__last_name']}".strip() or owner
    return {
        "pk": row["id"],
        "url": paths.lead(row["id"]),
        "name": name,
        "email": row["email"],
        "company": row["company__name"] or "—",
        "company_url": paths.company(company_id) if company_id else "",
        "owner": owner or "Unassigned",
        "stage": STAGE_LABELS.get(row["stage"], row["stage"]),
        "stage_changed": house_date(changed),
        "stage_changed_iso": changed.isoformat(),
        "last_activity": naturaltime(last) if last else "",
        "last_activity_iso": timezone.localtime(last).isoformat() if last else "",
        "score": row["rank__score"],
        "band": row["band"],
        "band_label": BAND_LABELS.get(row["band"], row["band"]),
        "grade": row["grade"],
        "trend": trend_badge(row["rank__score"], row.get("score_before")),
        **column_cells(row),
    }


def _wants_partial(request: AuthenticatedHttpRequest) -> bool:
    htmx = request.htmx
    return bool(htmx) and not htmx.history_restore_request and not htmx.boosted


def _render(request: AuthenticatedHttpRequest, context: dict, *, status: int = 200) -> HttpResponse:
    partial = _wants_partial(request)
    template = "workspace/_lead_rows.html" if partial else "workspace/lead_list.html"
    response = render(request, template, {**context, "partial": partial}, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_GET
def lead_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The leads the user can see, hottest first unless sorted otherwise."""
    context = list_context(request)
    return _render(request, context, status=400 if context["form"].errors else 200)


def _counted(filters: LeadListFilter) -> QuerySet[Any]:
    """What the list counts: the ranks of the leads it shows when every filter is on the
    rank (``LeadFilter.ranks``), else the leads."""
    ranks = filters.ranks()
    return ranks if ranks is not None else filters.qs


@login_required
@require_GET
def lead_count(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The exact number of leads the list shows for the same query string, as the pieces
    of the list page that show it (the page asks for it when there are too many to count
    with the page itself)."""
    people = list(teammates_of(request.user))
    filters = LeadListFilter(request.GET, request=request, people=people)
    if filters.form.errors:
        return HttpResponse(status=400)
    count = leads_count(_counted(filters))
    context = {"count": count, "bulk": bool(bulk.bulk_actions_for(request.user))}
    return render(request, "workspace/_lead_count.html", context)


@login_required
@require_GET
def lead_export(request: AuthenticatedHttpRequest, file_format: str) -> HttpResponseBase:
    """The leads the list shows for the same query string, every one of them, in its
    sort order, as a CSV or XLSX download; an XLSX too large to answer at once is
    offered as an export job instead (``workspace.views.export_jobs``).

    Only with valid filters: a file that silently left one out would hold leads the
    person did not ask for, so the list answers instead, with its errors.
    """
    user = request.user
    if not may_export_leads(user):
        raise PermissionDenied(EXPORT_REFUSED)
    if file_format not in EXPORT_FORMATS:
        return HttpResponseBadRequest(FORMAT_UNKNOWN, content_type="text/plain; charset=utf-8")
    try:
        leads = list_leads_for_export(user, request.GET)
    except ExportQueryError:
        messages.error(request, EXPORT_FILTERS_INVALID)
        return _render(request, list_context(request), status=400)
    if export_needs_job(leads=leads, file_format=file_format):
        context = {
            "file_format": file_format,
            "query": request.GET.urlencode(),
            "limit": settings.EXPORT_INLINE_MAX,
        }
        return render(request, "workspace/export_prepare.html", context)
    columns = list_export_columns(request.GET)
    return leads_export_response(leads=leads, columns=columns, file_format=file_format)


@login_required
@require_POST
def lead_bulk(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Run a bulk action on the selected leads, then show the list with its outcome.

    The list's filters ride along in the query string so the person lands back on the
    same view: redirected after a plain post, re-rendered in place for htmx.
    """
    people = list(teammates_of(request.user))
    form = LeadBulkForm(request.POST, user=request.user, people=people)
    if form.is_valid() and form.cleaned_data["select_all"]:
        _select_all(request, form, people=people)
    if not form.is_valid():
        return _render(request, list_context(request, bulk_form=form), status=400)
    try:
        level, text = _run_bulk(form.cleaned_data, user=request.user)
    except PermissionDenied as exc:
        level, text = messages.ERROR, str(exc)
    if form.cleaned_data["select_all"]:
        text = _select_all_summary(form.cleaned_data, text)
    messages.add_message(request, level, text)
    if _wants_partial(request):
        return _render(request, list_context(request))
    return redirect(_url(_list_query(request.GET)))


def _select_all(
    request: AuthenticatedHttpRequest, form: LeadBulkForm, *, people: list[User]
) -> None:
    """The ids of every lead the list's filters (the query string) match for the person,
    as the list finds them (within ``visible_to``); an error on the form when the
    filters are not valid or match more than ``bulk.SELECT_ALL_MAX``."""
    filters = LeadListFilter(request.GET, request=request, people=people)
    if not filters.is_valid():
        form.add_error("select_all", SELECT_ALL_INVALID)
        return
    ids = list(filters.qs.order_by().values_list("pk", flat=True)[: bulk.SELECT_ALL_MAX + 1])
    if len(ids) > bulk.SELECT_ALL_MAX:
        form.add_error("select_all", SELECT_ALL_TOO_MANY)
        return
    form.cleaned_data["lead_ids"] = ids


def _select_all_summary(data: dict[str, Any], text: str) -> str:
    """The outcome, prefixed with how many leads the filters matched (and, when that
    changed since the list was shown, the count the person saw)."""
    matched = len(data["lead_ids"])
    said = f"All {matched:,} lead{'s' if matched != 1 else ''} matching the filters"
    expected = data.get("expected")
    if expected is not None and expected != matched:
        said += f" (the list showed {expected:,}; leads changed meanwhile)"
    return f"{said}: {text}"


def _run_bulk(data: dict[str, Any], *, user: User) -> tuple[int, str]:
    ids = data["lead_ids"]
    action = data["action"]
    if action == bulk.BULK_ASSIGN:
        owner = User.objects.filter(pk=data["owner"], is_active=True).first()
        if owner is None:
            raise PermissionDenied("You cannot assign leads to this person.")
        outcome = bulk.leads_assign(lead_ids=ids, owner=owner, by=user)
        did = f"assigned to {owner}"
    elif action == bulk.BULK_TAKE:
        outcome = bulk.leads_assign(lead_ids=ids, owner=user, by=user)
        did = "assigned to you"
    elif action == bulk.BULK_STAGE:
        stage = Stage(data["stage"])
        outcome = bulk.leads_move_to_stage(
            lead_ids=ids, stage=stage, reason=data.get("reason", ""), by=user
        )
        did = f"moved to {stage.label}"
    elif action == bulk.BULK_TASK:
        title = data["task_title"].strip()
        outcome = bulk.leads_add_task(lead_ids=ids, title=title, due_at=data["task_due"], by=user)
        did = f"given the task “{title}”"
    elif action == bulk.BULK_NURTURE:
        sequence = data["sequence"]
        outcome = bulk.leads_enroll(lead_ids=ids, sequence=sequence, by=user)
        did = f"enrolled in “{sequence}”"
    else:
        points = data["points"]
        outcome = bulk.leads_adjust(lead_ids=ids, points=points, reason=data["reason"], by=user)
        did = f"adjusted by {points:+d} points"
    level = messages.SUCCESS if not outcome.refused else messages.WARNING
    return level, outcome.summary(did)

"""Saved views of the leads list: save the list as a view, open, rename and delete one.

Thin: the rules are in ``workspace.saved_views``. Each answers by going back to the
list (the view opened, or the list as it was) with a message; a bad name answers the
list with the error beside the name field.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from crm.http import AuthenticatedHttpRequest
from workspace.models import SavedView
from workspace.saved_views import (
    NAME_MISSING,
    saved_view_create,
    saved_view_delete,
    saved_view_rename,
    saved_views_for,
    view_columns,
    view_query,
    view_url_query,
)

from .lists import _render, list_context


class SavedViewForm(forms.Form):
    name = forms.CharField(
        label="View name", max_length=80, error_messages={"required": NAME_MISSING}
    )
    shared = forms.BooleanField(label="Share with my team", required=False)


def _list_url(query: QueryDict) -> str:
    encoded = query.urlencode()
    return reverse("lead-list") + (f"?{encoded}" if encoded else "")


def _view_for(request: AuthenticatedHttpRequest, pk: int) -> SavedView:
    """A view the person sees; any other is not found."""
    return get_object_or_404(saved_views_for(request.user), pk=pk)


def _refused(request: AuthenticatedHttpRequest, form: SavedViewForm, *, kind: str) -> HttpResponse:
    """The list as the query string gives it, with the errors beside the form's fields
    (``kind``: the "save" or the "rename" form)."""
    context = list_context(request)
    context.update(view_form=form, view_form_kind=kind)
    return _render(request, context, status=400)


def _apply(form: SavedViewForm, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


@login_required
@require_POST
def saved_view_create_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Save the list (its query string: filters, sort, columns) under a name."""
    form = SavedViewForm(request.POST)
    if form.is_valid():
        try:
            view = saved_view_create(
                owner=request.user,
                name=form.cleaned_data["name"],
                shared=form.cleaned_data["shared"],
                query=view_query(request.GET),
                columns=view_columns(request.GET),
            )
        except ValidationError as exc:
            _apply(form, exc)
    if not form.is_valid():
        return _refused(request, form, kind="save")
    messages.success(request, f"Saved the view “{view.name}”.")
    return redirect(_list_url(view_url_query(view)))


@login_required
@require_GET
def saved_view_open(request: AuthenticatedHttpRequest, pk: int) -> HttpResponseRedirect:
    """The list with the view's filters and columns, for the person opening it."""
    return redirect(_list_url(view_url_query(_view_for(request, pk))))


@login_required
@require_POST
def saved_view_rename_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    view = _view_for(request, pk)
    form = SavedViewForm(request.POST)
    if form.is_valid():
        try:
            saved_view_rename(view=view, name=form.cleaned_data["name"], by=request.user)
        except ValidationError as exc:
            _apply(form, exc)
    if not form.is_valid():
        return _refused(request, form, kind="rename")
    messages.success(request, f"Renamed the view to “{view.name}”.")
    return redirect(_list_url(view_url_query(view)))


@login_required
@require_POST
def saved_view_delete_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponseRedirect:
    view = _view_for(request, pk)
    name = view.name
    saved_view_delete(view=view, by=request.user)
    messages.success(request, f"Deleted the view “{name}”.")
    return redirect("lead-list")

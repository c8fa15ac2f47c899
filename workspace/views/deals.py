"""Deals where reps work: the lead page's Deals card (new deal, change one, won, lost)
and the deal board (``/deals/``), a column per pipeline stage with counts, totals and
weighted totals, rotting deals flagged, cards moved by drag and drop or their "Move
to…" form (keyboard, no JavaScript), and won and lost buttons.

Every URL reaches deals through ``deals_visible_to`` (a deal outside it is a 404,
whatever its id) and changes one only where the person may act on its lead
(``lead_access``: 403 otherwise), as the API and the admin do. Every change goes
through ``leads.deals``.

Answers: an htmx post from the lead page gets the Deals card back, with the lead's
header and stage card swapped in out of band when winning moved the lead; an htmx
post from the board (``from=board``) gets the board; a plain post redirects with a
message. A form error or a refusal answers 400 with the form and the reason, nothing
stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.forms import BaseForm
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.template.backends.utils import csrf_input
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.html import format_html_join
from django.views.decorators.http import require_GET, require_POST

from crm.http import AuthenticatedHttpRequest
from crm.models import User
from leads.deal_board import DealCard, deal_board
from leads.deals import deal_create, deal_lose, deal_move, deal_update, deal_win
from leads.models import Deal, DealStage, Lead
from leads.permissions import deal_visibility, deals_visible_to, lead_access, owner_access
from workspace.deal_card import deal_card
from workspace.deal_forms import (
    DealBoardFilterForm,
    DealForm,
    DealMoveForm,
    DealOptions,
    LoseDealForm,
    lost_reason_names,
)
from workspace.formats import house_date, whole_number
from workspace.forms import StageForm
from workspace.paths import pk_path

from .lead import acting_lead, render_lead, visible_lead

BOARD_FILTERS = ("owner", "product")


# --- Reaching a deal ------------------------------------------------------------------


def _visible_deal(request: AuthenticatedHttpRequest, deal_id: int) -> Deal:
    """The deal, if the person sees its lead; 404 otherwise (whether or not it exists)."""
    deals = deals_visible_to(request.user).select_related(
        "stage", "owner", "product_line", "lead__owner__team", "lead__company"
    )
    return get_object_or_404(deals, pk=deal_id)


def _acting_deal(request: AuthenticatedHttpRequest, deal_id: int) -> Deal:
    """The deal, if the person may act on its lead: 404 unseen, 403 seen but not theirs."""
    deal = _visible_deal(request, deal_id)
    refusal = lead_access(lead=deal.lead, user=request.user).refusal
    if refusal:
        raise PermissionDenied(refusal)
    return deal


# --- Answering ------------------------------------------------------------------------


def _from_board(request: AuthenticatedHttpRequest) -> bool:
    return request.POST.get("from") == "board"


def _act(
    request: AuthenticatedHttpRequest,
    lead: Lead,
    form: BaseForm,
    key: str,
    perform: Callable[[dict[str, Any]], str],
) -> HttpResponse:
    """Validate ``form``, run ``perform`` with its data and answer with the message it
    returns; a form error or a refusal (``ValidationError``) answers 400 with the form."""
    if form.is_valid():
        try:
            message = perform(form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            return _done(request, lead, message)
    return _failed(request, lead, {key: form})


def _add_errors(form: BaseForm, error: ValidationError) -> None:
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        form.add_error(field if field in form.fields else NON_FIELD_ERRORS, errors)


def _done(request: AuthenticatedHttpRequest, lead: Lead, message: str) -> HttpResponse:
    if _from_board(request):
        messages.success(request, message)
        return _render_board(request) if request.htmx else redirect(_board_url(request))
    if request.htmx:
        return _card(request, lead, notice=message)
    messages.success(request, message)
    return redirect(lead.get_absolute_url() + "#deals")


def _failed(
    request: AuthenticatedHttpRequest, lead: Lead, bound: dict[str, BaseForm]
) -> HttpResponse:
    if _from_board(request):
        for form in bound.values():
            errors = [str(e) for field_errors in form.errors.values() for e in field_errors]
            messages.error(request, f"{lead}: {' '.join(errors)}")
        return _render_board(request, status=400)
    if request.htmx:
        return _card(request, lead, bound=bound, status=400)
    return render_lead(request, lead, forms=bound, status=400)


def _refused(request: AuthenticatedHttpRequest, lead: Lead, message: str) -> HttpResponse:
    """A refusal that belongs to no form field (a deal that cannot be won): 400 with the
    reason, on the board, the card or the lead page."""
    if request.htmx and not _from_board(request):
        return _card(request, lead, notice=message, failed=True, status=400)
    messages.error(request, message)
    if _from_board(request):
        return _render_board(request, status=400)
    return render_lead(request, lead, status=400)


def _card(
    request: AuthenticatedHttpRequest,
    lead: Lead,
    *,
    notice: str = "",
    failed: bool = False,
    bound: dict[str, BaseForm] | None = None,
    status: int = 200,
) -> HttpResponse:
    """The Deals card, read again; and when the lead's stage moved meanwhile (a deal
    won), its header and stage card too, swapped out of band."""
    before = lead.stage
    lead = visible_lead(request, lead.pk)
    user = request.user
    access = lead_access(lead=lead, user=user)
    context: dict[str, Any] = {
        "lead": lead,
        "access": access,
        "deal_card": deal_card(
            lead=lead,
            user=user,
            access=access,
            now=timezone.now(),
            bound=bound or {},
            notice=notice,
        ),
        "notice_failed": failed,
        "stage_moved": lead.stage != before,
    }
    if context["stage_moved"]:
        context["stage_changes"] = list(lead.stage_changes.select_related("by")[:20])
        if access.may_act:
            context["forms"] = {"stage": StageForm(prefix="stage", lead=lead)}
    response = render(request, "workspace/_lead_deals_answer.html", context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


# --- The lead page's Deals card -----------------------------------------------------------


@login_required
@require_POST
def lead_add_deal(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    lead = acting_lead(request, pk)
    options = DealOptions.load(request.user)
    form = DealForm(request.POST, prefix="deal", lead=lead, user=request.user, options=options)

    def perform(data: dict[str, Any]) -> str:
        deal = deal_create(lead=lead, by=request.user, **data)
        return f"Deal “{deal.name}” created."

    return _act(request, lead, form, "deal", perform)


@login_required
@require_POST
def deal_change(request: AuthenticatedHttpRequest, deal_id: int) -> HttpResponse:
    deal = _acting_deal(request, deal_id)
    prefix = f"deal-{deal.pk}"
    options = DealOptions.load(request.user)
    form = DealForm(
        request.POST, prefix=prefix, lead=deal.lead, user=request.user, options=options, deal=deal
    )

    def perform(data: dict[str, Any]) -> str:
        deal_update(deal=deal, by=request.user, changes=form.changes())
        return f"Deal “{deal.name}” saved."

    return _act(request, deal.lead, form, prefix, perform)


@login_required
@require_POST
def deal_win_view(request: AuthenticatedHttpRequest, deal_id: int) -> HttpResponse:
    """Win the deal: its lead becomes a customer (``deal_win``)."""
    deal = _acting_deal(request, deal_id)
    lead = deal.lead
    try:
        deal_win(deal=deal, by=request.user)
    except ValidationError as error:
        return _refused(request, lead, f"“{deal.name}” is not won: {' '.join(error.messages)}")
    return _done(request, lead, f"Deal “{deal.name}” won: {lead} is a customer.")


@login_required
@require_POST
def deal_lose_view(request: AuthenticatedHttpRequest, deal_id: int) -> HttpResponse:
    deal = _acting_deal(request, deal_id)
    prefix = f"lost-{deal.pk}"
    form = LoseDealForm(request.POST, prefix=prefix, names=lost_reason_names())

    def perform(data: dict[str, Any]) -> str:
        deal_lose(deal=deal, by=request.user, reason=data["reason"])
        return f"Deal “{deal.name}” lost: {deal.lost_reason}."

    return _act(request, deal.lead, form, prefix, perform)


# --- The deal board ---------------------------------------------------------------------------


def _board_card(
    card: DealCard,
    *,
    user: User,
    now: dt.datetime,
    paths: tuple[Callable[[int], str], ...],
    suffix: str,
) -> dict[str, Any]:
    """What one card of the board shows, as plain values, from its ``DealCard``.

    Worked out here once rather than by template filters and lookups: with 20 cards a
    column, the filters' per-value lookups (``floatformat``, ``date``, the lead's and
    the owner's names through their models) cost more than the rest of the board.
    """
    lead, won, lost = paths
    close = card.expected_close
    access = owner_access(owner_id=card.lead_owner_id, owner=card.lead_owner, user=user)
    return {
        "pk": card.pk,
        "name": card.name,
        "amount": whole_number(card.amount),
        "currency": card.currency,
        "lead": card.lead_name,
        "company": card.company_name or "",
        "closes": house_date(close) if close else "",
        "closes_iso": close.isoformat() if close else "",
        "probability": card.win_probability,
        "owner": str(card.owner) if card.owner is not None else "No owner",
        "rotting": card.rotting_days(now),
        "may_act": access.may_act,
        "lead_url": f"{lead(card.lead_id)}#deals",
        "won_url": won(card.pk) + suffix,
        "lost_url": lost(card.pk) + suffix,
    }


def _board_query(request: AuthenticatedHttpRequest) -> QueryDict:
    query = QueryDict(mutable=True)
    for name in BOARD_FILTERS:
        if request.GET.get(name):
            query[name] = request.GET[name]
    return query


def _board_url(request: AuthenticatedHttpRequest) -> str:
    query = _board_query(request).urlencode()
    return reverse("deals") + (f"?{query}" if query else "")


def _render_board(request: AuthenticatedHttpRequest, *, status: int = 200) -> HttpResponse:
    user = request.user
    query = _board_query(request)
    filters = DealBoardFilterForm(query, user=user)
    # Said in the totals, the rotting count and each column's cards.
    where = deal_visibility(user, resolved=True) & filters.condition()
    if query and not filters.is_valid():
        status = 400
    now = timezone.now()
    columns = deal_board(where=where, now=now)
    suffix = f"?{query.urlencode()}" if query else ""
    paths = (pk_path("lead-detail"), pk_path("deal-win"), pk_path("deal-lose"))
    stages = [column.stage for column in columns if column.stage is not None]
    boards = []
    for column in columns:
        cards = [
            _board_card(card, user=user, now=now, paths=paths, suffix=suffix)
            for card in column.cards
        ]
        boards.append((column, cards, _stage_options(stages, current=column.stage)))
    partial = bool(request.htmx) and not request.htmx.history_restore_request
    context = {
        "filters": filters,
        "columns": boards,
        # The lost form of every card offers these: written once for the board, where a
        # form object, or a template loop, per card cost more than the rest of the board.
        "reason_options": format_html_join(
            "", "<option>{}</option>", ((name,) for name in lost_reason_names())
        ),
        "query": query.urlencode(),
        "move_url": reverse("deals-move") + suffix,
        "csrf_field": csrf_input(request),
        "partial": partial,
    }
    template = "workspace/deal_board_columns.html" if partial else "workspace/deal_board.html"
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _stage_options(stages: list[DealStage], *, current: DealStage | None) -> str:
    """The options of a column's "Move to…" menus, its own stage chosen: every card of
    a column is in its stage, so the column's cards share them."""
    return format_html_join(
        "",
        '<option value="{}"{}>{}</option>',
        ((stage.pk, " selected" if stage == current else "", stage.name) for stage in stages),
    )


@login_required
@require_GET
def deal_board_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The open deals the person sees, by pipeline stage."""
    return _render_board(request)


@login_required
@require_POST
def deal_board_move(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Move one card to another stage; a deal outside the person's view is a 404."""
    form = DealMoveForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a deal and a stage to move it to.")
        return _render_board(request, status=400)
    deal = _acting_deal(request, form.cleaned_data["deal"])
    stage = form.cleaned_data["stage"]
    try:
        deal_move(deal=deal, by=request.user, stage=stage)
    except ValidationError as error:
        messages.error(request, f"“{deal.name}” stays where it is: {' '.join(error.messages)}")
        return _render_board(request, status=400)
    messages.success(request, f"“{deal.name}” moved to {stage}.")
    return _render_board(request) if request.htmx else redirect(_board_url(request))

"""The pipeline: a column per stage with its count, open-deal total and hottest cards.

A card moves by drag and drop or by its "Move to…" form (keyboard, no JavaScript);
both post to ``pipeline_move``, which goes through ``lead_move_to_stage`` like every
other stage change. A refused move says why and leaves the card where it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, F, QuerySet, Sum
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from crm.http import AuthenticatedHttpRequest
from crm.models import User
from leads.models import (
    ALLOWED_TRANSITIONS,
    FUNNEL,
    Deal,
    DealStatus,
    Lead,
    LeadRank,
    Stage,
    StageTransitionError,
)
from leads.permissions import teammates_of
from leads.stages import lead_move_to_stage
from workspace.bulk import why_not_act
from workspace.filters import LeadListFilter

CARDS_PER_COLUMN = 8
# Leads that left the funnel: shown after it, folded.
FOLDED = [Stage.DISQUALIFIED, Stage.RECYCLED]
# The list filters the board honours; stage and sort belong to the board itself.
BOARD_FILTERS = ("owner", "band", "source", "product", "grade", "quadrant", "q")


@dataclass
class Card:
    lead: Lead
    targets: list[Stage]
    may_move: bool


@dataclass
class Column:
    stage: Stage
    count: int = 0
    open_total: Decimal = Decimal(0)
    cards: list[Card] = field(default_factory=list)
    more_url: str = ""

    @property
    def folded(self) -> bool:
        return self.stage in FOLDED


class MoveForm(forms.Form):
    lead = forms.IntegerField(min_value=1, max_value=2**63 - 1)
    stage = forms.ChoiceField(choices=Stage.choices)
    reason = forms.CharField(required=False, max_length=200)


def _board_leads(
    request: AuthenticatedHttpRequest,
) -> tuple[forms.Form, QuerySet[Lead], QuerySet[LeadRank] | None, str]:
    query = request.GET.copy()
    for name in list(query):
        if name not in BOARD_FILTERS:
            query.pop(name)
    filters = LeadListFilter(query, request=request, people=list(teammates_of(request.user)))
    return filters.form, filters.qs, filters.ranks(), query.urlencode()


def pipeline_columns(
    *, leads: QuerySet[Lead], user: User, query: str, ranks: QuerySet[LeadRank] | None = None
) -> list[Column]:
    """The board's columns: counts in one grouped query, open-deal totals in another
    (driven by the open deals, which are few), then each column's hottest cards from the
    rank's ``(stage, score)`` index (the filter on the rank's stage joins it inner); a
    fixed number of queries whatever the number of leads.

    ``ranks``, the same leads' ranks when the filters are all on the rank
    (``LeadFilter.ranks``), are counted instead of the leads, and pick the deals: a
    person sees hundreds of thousands of leads, and the rank's narrow rows (its owner
    index alone, for the counts of a person's own) are read in a fraction of the time of
    the lead rows. The deals are grouped by the rank's copy of their lead's stage."""
    columns = {stage: Column(stage=stage) for stage in [*FUNNEL, *FOLDED]}
    counted = (ranks if ranks is not None else leads).order_by().values("stage")
    for row in counted.annotate(n=Count("pk")):
        columns[Stage(row["stage"])].count = row["n"]
    shown = (
        ranks.values_list("lead_id", flat=True)
        if ranks is not None
        else leads.order_by().values_list("pk", flat=True)
    )
    totals = (
        Deal.objects.filter(status=DealStatus.OPEN, lead_id__in=shown)
        .order_by()
        .values(lead_stage=F("lead__rank__stage"))
    )
    for deal_row in totals.annotate(total=Sum("amount")):
        columns[Stage(deal_row["lead_stage"])].open_total = deal_row["total"] or Decimal(0)
    hottest = leads.select_related("company", "owner__team").order_by("-rank__score", "-id")
    for column in columns.values():
        rows = hottest.filter(rank__stage=column.stage)[:CARDS_PER_COLUMN] if column.count else []
        column.cards = [_card(lead, user) for lead in rows]
        if column.count > len(column.cards):
            extra = f"&{query}" if query else ""
            column.more_url = f"{reverse('lead-list')}?stage={column.stage.value}{extra}"
    return list(columns.values())


def _card(lead: Lead, user: User) -> Card:
    targets = [stage for stage in Stage if stage in ALLOWED_TRANSITIONS[lead.stage]]
    return Card(lead=lead, targets=targets, may_move=not why_not_act(lead=lead, user=user))


def _render(request: AuthenticatedHttpRequest, *, status: int = 200) -> HttpResponse:
    form, leads, ranks, query = _board_leads(request)
    partial = bool(request.htmx) and not request.htmx.history_restore_request
    context = {
        "form": form,
        "board_fields": [form[name] for name in ("owner", "band", "source")],
        "columns": pipeline_columns(leads=leads, user=request.user, query=query, ranks=ranks),
        "query": query,
        "partial": partial,
    }
    template = "workspace/pipeline_board.html" if partial else "workspace/pipeline.html"
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_GET
def pipeline(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The leads the user can see, by stage."""
    return _render(request)


@login_required
@require_POST
def pipeline_move(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Move one card to another stage; a refused move answers 400 with the reason.

    A lead outside the user's view is a 404, whatever its id.
    """
    form = MoveForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a lead and a stage to move it to.")
        return _render(request, status=400)
    lead = get_object_or_404(
        Lead.objects.visible_to(request.user).select_related("owner__team"),
        pk=form.cleaned_data["lead"],
    )
    stage = Stage(form.cleaned_data["stage"])
    refusal = why_not_act(lead=lead, user=request.user)
    try:
        if refusal:
            raise StageTransitionError(f"The lead is {refusal}.")
        lead_move_to_stage(
            lead_id=lead.pk, stage=stage, by=request.user, reason=form.cleaned_data["reason"]
        )
    except StageTransitionError as exc:
        why = " ".join(exc.messages)
        messages.error(request, f"{lead} stays in {lead.get_stage_display()}: {why}")
        return _render(request, status=400)
    messages.success(request, f"{lead} moved to {stage.label}.")
    if request.htmx:
        return _render(request)
    query = request.GET.urlencode()
    return redirect(reverse("pipeline") + (f"?{query}" if query else ""))

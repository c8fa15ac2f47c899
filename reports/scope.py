"""A report's scope: the leads its reader may report on (``reports.permissions``),
narrowed by the filters every report shares (date range, owner, team, source, …).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypedDict

from django import forms
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from crm.models import Team, User
from leads.models import Deal, DealStatus, Lead, ProductLine, Source
from leads.permissions import teammates_of
from scoring.models import ScoringModel

from .permissions import picks_people, report_leads, report_people, teams_for

DEFAULT_RANGE_DAYS = 180
MAX_RANGE_DAYS = 5 * 366

BASIS_CREATED = "created"
BASIS_CLOSED = "closed"
BASIS_CHOICES = [
    (BASIS_CREATED, "Leads created in the range"),
    (BASIS_CLOSED, "Leads with a deal closed in the range"),
]


class ReportFilterForm(forms.Form):
    """The date range and filters every report shares, read from the query string."""

    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    basis = forms.ChoiceField(label="Count", required=False, choices=BASIS_CHOICES)
    model = forms.ModelChoiceField(
        label="Scoring model",
        required=False,
        queryset=ScoringModel.objects.all(),
        empty_label="Primary score",
    )
    source = forms.ChoiceField(
        label="Source", required=False, choices=[("", "Any"), *Source.choices]
    )
    campaign = forms.CharField(label="Campaign", required=False, max_length=200)
    product = forms.ModelChoiceField(
        label="Product interest",
        required=False,
        queryset=ProductLine.objects.all(),
        to_field_name="slug",
        empty_label="Any",
    )
    owner = forms.TypedChoiceField(label="Owner", required=False, coerce=int, empty_value=None)
    team = forms.ModelChoiceField(
        label="Team", required=False, queryset=Team.objects.none(), empty_label="Any"
    )

    def __init__(self, data: Any = None, *args: Any, user: User, **kwargs: Any) -> None:
        if data is not None:
            # The default range, written into the data so that the page shows it.
            data = data.copy()
            today = timezone.localdate()
            if not data.get("date_to"):
                data["date_to"] = today.isoformat()
            if not data.get("date_from"):
                data["date_from"] = (today - dt.timedelta(days=DEFAULT_RANGE_DAYS)).isoformat()
        super().__init__(data, *args, **kwargs)
        self.user = user
        people = [user, *teammates_of(user)] if picks_people(user) else [user]
        owner = self.fields["owner"]
        assert isinstance(owner, forms.ChoiceField)
        owner.choices = [("", "Anyone")] + [(str(p.pk), str(p)) for p in people]
        team = self.fields["team"]
        assert isinstance(team, forms.ModelChoiceField)
        team.queryset = teams_for(user)
        if not picks_people(user):
            del self.fields["team"]
            del self.fields["owner"]

    def clean_campaign(self) -> str:
        return " ".join(self.cleaned_data["campaign"].split())

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "Make this on or after the start of the range.")
        elif start and end and (end - start).days > MAX_RANGE_DAYS:
            self.add_error("date_from", "Choose a range of five years at most.")
        data["basis"] = data.get("basis") or BASIS_CREATED
        return data


class LeadPk(TypedDict):
    """A row of ``values("pk")`` over leads: what a subquery of lead ids yields."""

    pk: int


@dataclass(frozen=True)
class ReportScope:
    """The leads one report counts, with the range and the score it reads.

    ``score`` and ``band`` name the lead's primary score, or its score in the chosen
    model; ``leads`` already carries the join that makes them readable.
    """

    user: User
    leads: QuerySet[Lead]
    start: dt.datetime
    end: dt.datetime
    basis: str
    model: ScoringModel | None
    # The filters on the leads' own fields (source, campaign, product interest) that
    # narrow ``leads``; the others (role, owner, team) all go through the owner.
    lead_filters: tuple[str, ...] = ()
    # The hand-offs counted are those to these people (None: to anyone) of the leads of
    # ``handed`` (the range and the lead filters, whoever owns the lead now).
    handoff_people: QuerySet[User] | None = None
    handed: QuerySet[Lead] | None = None

    @property
    def by_owner_and_day(self) -> bool:
        """Whether the leads are exactly those created in the range whose owner is in
        view: what counts kept per owner and day of creation can answer."""
        return self.basis == BASIS_CREATED and not self.lead_filters

    @property
    def first_day(self) -> dt.date:
        return timezone.localdate(self.start)

    # The primary score is read from the lead's rank (``leads.models.lead_rank``): the
    # reports' covering index on the lead holds no score, so that scoring's writes of
    # the lead row stay heap-only, and the rank's narrow rows join cheaper than a visit
    # to each wide lead row.
    @property
    def score(self) -> str:
        return "scores__score" if self.model else "rank__score"

    @property
    def band(self) -> str:
        return "scores__band" if self.model else "rank__band"

    @property
    def last_day(self) -> dt.date:
        return timezone.localdate(self.end - dt.timedelta(days=1))

    @property
    def lead_ids(self) -> QuerySet[Lead, LeadPk]:
        return self.leads.order_by().values("pk")

    @property
    def effective_model(self) -> ScoringModel | None:
        """The chosen model, else the default one, whose thresholds the primary score uses."""
        if self.model is not None:
            return self.model
        return (
            ScoringModel.objects.filter(is_default=True).first()
            or ScoringModel.objects.active().first()
        )


def day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def scope_from(form: ReportFilterForm) -> ReportScope:
    """The scope of a valid filter form (call ``is_valid()`` first)."""
    data = form.cleaned_data
    user = form.user
    start = day_start(data["date_from"])
    end = day_start(data["date_to"] + dt.timedelta(days=1))
    model = data.get("model")
    # The leads the person answers for, in the range and the filters; and the same
    # range and lead filters over every lead, for the hand-offs of the person's people
    # whose lead has left them since (a rejected hand-off loses its owner).
    leads = _narrow_owners(
        _narrow_fields(_ranged(report_leads(user), data, start, end), data), data
    )
    ranged = _narrow_fields(_ranged(Lead.objects.all(), data, start, end), data)
    if model is not None:
        leads = leads.filter(scores__model=model)
        ranged = ranged.filter(scores__model=model)
    people = report_people(user)
    if data.get("owner"):
        people = (people if people is not None else User.objects.all()).filter(pk=data["owner"])
    if data.get("team"):
        people = (people if people is not None else User.objects.all()).filter(team=data["team"])
    return ReportScope(
        user=user,
        leads=leads,
        start=start,
        end=end,
        basis=data["basis"],
        model=model,
        lead_filters=tuple(name for name in LEAD_FILTERS if data.get(name)),
        handoff_people=people,
        handed=ranged,
    )


LEAD_FILTERS = ("source", "campaign", "product")


def _ranged(
    leads: QuerySet[Lead], data: dict[str, Any], start: dt.datetime, end: dt.datetime
) -> QuerySet[Lead]:
    if data["basis"] == BASIS_CLOSED:
        closed = Deal.objects.filter(
            lead=OuterRef("pk"),
            status__in=[DealStatus.WON, DealStatus.LOST],
            closed_at__gte=start,
            closed_at__lt=end,
        )
        return leads.filter(Exists(closed))
    return leads.filter(created_at__gte=start, created_at__lt=end)


def _narrow_fields(leads: QuerySet[Lead], data: dict[str, Any]) -> QuerySet[Lead]:
    if data.get("source"):
        leads = leads.filter(source=data["source"])
    if data.get("campaign"):
        leads = leads.filter(campaign__iexact=data["campaign"])
    if data.get("product"):
        leads = leads.filter(product_interests=data["product"])
    return leads


def _narrow_owners(leads: QuerySet[Lead], data: dict[str, Any]) -> QuerySet[Lead]:
    if data.get("owner"):
        leads = leads.filter(owner_id=data["owner"])
    if data.get("team"):
        leads = leads.filter(owner__team=data["team"])
    return leads


def scope_for(user: User, *, date_from: dt.date, date_to: dt.date) -> ReportScope:
    """The unfiltered scope of ``user`` over a range of days (both included)."""
    form = ReportFilterForm(
        {"date_from": date_from.isoformat(), "date_to": date_to.isoformat()}, user=user
    )
    if not form.is_valid():
        raise ValueError(form.errors.as_text())
    return scope_from(form)

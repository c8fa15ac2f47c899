"""The leads' filters: one FilterSet that the leads list, the pipeline and the REST API
narrow leads with, and the search it runs.

Every list starts from the leads the user may see (``Lead.objects.visible_in_rank``,
``visible_to`` said of the rank the filters read); the filters only narrow them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any, cast

import django_filters
import django_filters.fields
from django import forms
from django.db.models import QuerySet
from django.http import HttpRequest, QueryDict
from django.utils import timezone
from drf_spectacular.drainage import set_override

from crm.filters import IntegerFilter, IsoDateTimeFilter
from crm.models import User
from leads.models import (
    Band,
    Grade,
    Lead,
    LeadRank,
    Quadrant,
    Source,
    Stage,
    owner_visibility,
)
from leads.permissions import teammates_of
from leads.search import leads_search

SEARCH_MAX_LENGTH = 100

OWNER_ME = "me"
OWNER_UNASSIGNED = "unassigned"
# A user id of at most 18 digits fits the id column; a longer one would fail in the query.
OWNER_PATTERN = r"^(me|unassigned|[0-9]{1,18})$"
OWNER_INVALID = "Use me, unassigned or a user id."
OWNER_DESCRIPTION = "me, unassigned or a user id."

ACTIVITY_NONE = "none"
ACTIVITY_CHOICES = [
    ("1", "Within a day"),
    ("7", "Within 7 days"),
    ("30", "Within 30 days"),
    ("90", "Within 90 days"),
    (ACTIVITY_NONE, "No activity yet"),
]
SCORE_BOUND = 10**6
SCORE_ORDER = "Make this at least the lower score."


def owner_choices_for(user: User, *, people: Sequence[User] | None = None) -> list[tuple[str, str]]:
    """Whose leads the user may filter by: their own, the pool, and the people whose
    leads they see (``teammates_of``, unless the caller loaded them already)."""
    if people is None:
        people = list(teammates_of(user))
    choices = [(OWNER_ME, "Mine"), (OWNER_UNASSIGNED, "Unassigned")]
    return choices + [(str(person.pk), str(person)) for person in people]


class OwnerField(django_filters.fields.ChoiceField):
    """``me``, ``unassigned`` or a user id. Drawn as a select of the people offered;
    without ``only_offered`` any well-formed user id is taken too (the leads stay within
    what the user sees, so a stranger's id finds nothing)."""

    def __init__(self, *args: Any, only_offered: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.only_offered = only_offered

    def valid_value(self, value: Any) -> bool:
        if self.only_offered:
            return super().valid_value(value)
        return re.fullmatch(OWNER_PATTERN, str(value)) is not None

    def validate(self, value: Any) -> None:
        if value and not self.only_offered and not self.valid_value(value):
            raise forms.ValidationError(OWNER_INVALID, code="invalid_choice")
        super().validate(value)


class OwnerFilter(django_filters.ChoiceFilter):
    field_class = OwnerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The schema states the pattern, so that a client knows what is refused.
        schema = {"type": "string", "pattern": OWNER_PATTERN, "description": OWNER_DESCRIPTION}
        set_override(self, "field", schema)


class LeadFilterForm(forms.Form):
    """Checks what no single field can: a score range in order."""

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        low, high = data.get("score_min"), data.get("score_max")
        if low is not None and high is not None and low > high:
            self.add_error("score_max", SCORE_ORDER)
        return data


class LeadFilter(django_filters.FilterSet):
    """The filters of every list of leads: the leads list and the pipeline
    (``workspace.filters``), the REST API's ``/leads/`` (``api.leads``); an export of
    the list (CSV) takes the same FilterSet with the same query string.

    Invalid values are reported on their field (``form.errors``) and left out of
    ``qs``, which the valid ones still narrow; the API answers 400 instead. Built with
    ``people`` (the leads list's owner select), the owner must be one of them.

    Given no queryset it starts from the leads the request's user sees, or, for "mine"
    and "unassigned", from all leads (see ``filter_queryset``); given one (the API's,
    with its related rows), it narrows that.
    """

    q = django_filters.CharFilter(
        label="Search",
        method="filter_search",
        max_length=SEARCH_MAX_LENGTH,
        help_text="Name, email, phone or company",
    )
    # The columns the lead's rank holds are filtered there, where the lists' indexes are
    # (``Lead.ranked``); they equal the lead's own.
    band = django_filters.ChoiceFilter(
        label="Band", field_name="rank__band", choices=Band.choices, empty_label="Any"
    )
    stage = django_filters.ChoiceFilter(
        label="Stage", field_name="rank__stage", choices=Stage.choices, empty_label="Any"
    )
    owner = OwnerFilter(
        label="Owner",
        method="filter_owner",
        empty_label="Anyone I can see",
    )
    source = django_filters.ChoiceFilter(label="Source", choices=Source.choices, empty_label="Any")
    product_interest = django_filters.CharFilter(
        label="Product interest",
        field_name="product_interests__slug",
        help_text="A product line's slug.",
    )
    grade = django_filters.ChoiceFilter(
        label="Grade", field_name="rank__grade", choices=Grade.choices, empty_label="Any"
    )
    quadrant = django_filters.ChoiceFilter(
        label="Quadrant", field_name="rank__quadrant", choices=Quadrant.choices, empty_label="Any"
    )
    score_min = IntegerFilter(
        label="Score from",
        field_name="rank__score",
        lookup_expr="gte",
        min_value=-SCORE_BOUND,
        max_value=SCORE_BOUND,
    )
    score_max = IntegerFilter(
        label="Score to",
        field_name="rank__score",
        lookup_expr="lte",
        min_value=-SCORE_BOUND,
        max_value=SCORE_BOUND,
    )
    activity = django_filters.ChoiceFilter(
        label="Last activity",
        choices=ACTIVITY_CHOICES,
        empty_label="Any time",
        method="filter_activity",
        help_text="Days since the last activity (1, 7, 30 or 90), or `none` for never.",
    )
    updated_since = IsoDateTimeFilter(
        label="Updated since",
        field_name="updated_at",
        lookup_expr="gte",
        help_text="ISO 8601 date and time.",
    )

    class Meta:
        model = Lead
        fields: list[str] = []
        form = LeadFilterForm

    def __init__(
        self,
        data: QueryDict | dict[str, Any] | None = None,
        queryset: QuerySet[Lead] | None = None,
        *,
        request: HttpRequest,
        prefix: str | None = None,
        people: Sequence[User] | None = None,
    ) -> None:
        # Behind login: an anonymous user never reaches a list (``visible_to`` would
        # give them nothing anyway).
        self.user = cast(User, request.user)
        self.starts_from_visible = queryset is None
        if queryset is None:
            queryset = Lead.objects.visible_in_rank(self.user)
        super().__init__(data, queryset, request=request, prefix=prefix)
        owner = self.form.fields["owner"]
        owner.only_offered = people is not None
        owner.choices = owner_choices_for(self.user, people=people or [])

    def filter_queryset(self, queryset: QuerySet[Lead]) -> QuerySet[Lead]:
        """Start from all leads when the owner filter is "mine" or "unassigned", which
        lie within what everyone who sees any lead sees; the owner filter then narrows
        them by owner alone.

        ``(owner = me OR owner IS NULL) AND owner = me`` means ``owner = me``, but
        PostgreSQL does not simplify it: it took the first branch for a small share of
        the rep's leads and combined bitmaps of 40,000 rows (21 ms) for a rep's warm
        MQLs, which the owner's hottest-first index answers in under a millisecond.
        """
        owner = self.form.cleaned_data.get("owner")
        if (
            self.starts_from_visible
            and owner in (OWNER_ME, OWNER_UNASSIGNED)
            and not queryset.query.is_empty()
        ):
            queryset = Lead.objects.all()
        return super().filter_queryset(queryset)

    # The filters on a column of the rank (``rank__…``), besides the owner's.
    RANK_FILTERS = ("band", "stage", "grade", "quadrant", "score_min", "score_max")
    # Fields that order what matches without choosing it (a subclass's sort).
    ORDERING_FIELDS: tuple[str, ...] = ()

    def ranks(self) -> QuerySet[LeadRank] | None:
        """The ranks of the leads ``qs`` gives, read from the rank alone, when every filter
        in use is on the rank (owner, band, stage, grade, quadrant, score) and the set
        starts from what the user sees: what a count by a rank column needs, without the
        lead rows (wide, and PostgreSQL cannot drop a join to them). None when a filter
        reads the lead (search, source, product interest, activity, updated)."""
        self.form.is_valid()  # an invalid value is left out, as ``qs`` leaves it out
        data = self.form.cleaned_data
        used = {name for name, value in data.items() if value not in (None, "")}
        if not self.starts_from_visible or used - {
            *self.RANK_FILTERS,
            "owner",
            *self.ORDERING_FIELDS,
        }:
            return None
        if self.queryset.query.is_empty():  # the user sees no lead (``filter_queryset``)
            return LeadRank.objects.none()
        owner = data.get("owner")
        if owner == OWNER_ME:
            ranks = LeadRank.objects.filter(owner=self.user)
        elif owner == OWNER_UNASSIGNED:
            ranks = LeadRank.objects.filter(owner__isnull=True)
        else:
            ranks = LeadRank.objects.filter(owner_visibility(self.user))
            if owner:
                ranks = ranks.filter(owner_id=int(owner))
        for name in self.RANK_FILTERS:
            if name in used:
                spec = self.filters[name]
                column = spec.field_name.removeprefix("rank__")
                ranks = ranks.filter(**{f"{column}__{spec.lookup_expr}": data[name]})
        return ranks

    def filter_owner(self, queryset: QuerySet[Lead], name: str, value: str) -> QuerySet[Lead]:
        if value == OWNER_ME:
            return queryset.filter(rank__owner=self.user)
        if value == OWNER_UNASSIGNED:
            return queryset.filter(rank__owner__isnull=True)
        return queryset.filter(rank__owner_id=int(value))

    def filter_activity(self, queryset: QuerySet[Lead], name: str, value: str) -> QuerySet[Lead]:
        if value == ACTIVITY_NONE:
            return queryset.filter(last_activity_at__isnull=True)
        since = timezone.now() - dt.timedelta(days=int(value))
        return queryset.filter(last_activity_at__gte=since)

    def filter_search(self, queryset: QuerySet[Lead], name: str, value: str) -> QuerySet[Lead]:
        return leads_search(queryset, value)

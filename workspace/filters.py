"""The leads list's filters: the form read from the query string and the queries it
narrows.

Every list starts from the leads the user may see (``leads_visible``); the filter form
only narrows them. The pipeline filters its cards with the same form. Sort orders and
pages are in ``workspace.keyset``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django import forms
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from crm.forms import Select
from crm.models import User
from leads.models import Band, Company, Grade, Lead, ProductLine, Quadrant, Source, Stage
from leads.permissions import teammates_of

from .keyset import DEFAULT_SORT, SORTS

# Beyond this many matches the list says "more than" instead of counting them all.
COUNT_CAP = 1000
# Companies whose names match a search, looked up first; their ids then join the
# search on leads, so every part of it can use an index.
SEARCH_COMPANIES_MAX = 500

OWNER_ME = "me"
OWNER_UNASSIGNED = "unassigned"

ACTIVITY_CHOICES = [
    ("", "Any time"),
    ("1", "Within a day"),
    ("7", "Within 7 days"),
    ("30", "Within 30 days"),
    ("90", "Within 90 days"),
    ("none", "No activity yet"),
]


def owner_choices_for(user: User, *, people: Sequence[User] | None = None) -> list[tuple[str, str]]:
    """Whose leads the user may filter by: their own, the pool, and the people whose
    leads they see (``teammates_of``, unless the caller loaded them already)."""
    if people is None:
        people = list(teammates_of(user))
    choices = [("", "Anyone I can see"), (OWNER_ME, "Mine"), (OWNER_UNASSIGNED, "Unassigned")]
    return choices + [(str(person.pk), str(person)) for person in people]


class LeadListForm(forms.Form):
    """The list's filters and sort, read from the query string.

    Invalid values are reported on their field and left out of the filter; the valid
    ones still apply.
    """

    q = forms.CharField(
        label="Search", required=False, max_length=100, help_text="Name, email or company"
    )
    band = forms.ChoiceField(
        label="Band", required=False, choices=[("", "Any"), *Band.choices], widget=Select
    )
    stage = forms.ChoiceField(
        label="Stage", required=False, choices=[("", "Any"), *Stage.choices], widget=Select
    )
    owner = forms.ChoiceField(label="Owner", required=False, widget=Select)
    source = forms.ChoiceField(
        label="Source",
        required=False,
        choices=[("", "Any"), *Source.choices],
        widget=Select,
    )
    product = forms.ModelChoiceField(
        label="Product interest",
        required=False,
        queryset=ProductLine.objects.all(),
        to_field_name="slug",
        empty_label="Any",
        widget=Select,
    )
    grade = forms.ChoiceField(
        label="Grade", required=False, choices=[("", "Any"), *Grade.choices], widget=Select
    )
    quadrant = forms.ChoiceField(
        label="Quadrant",
        required=False,
        choices=[("", "Any"), *Quadrant.choices],
        widget=Select,
    )
    score_min = forms.IntegerField(
        label="Score from", required=False, min_value=-(10**6), max_value=10**6
    )
    score_max = forms.IntegerField(
        label="Score to", required=False, min_value=-(10**6), max_value=10**6
    )
    activity = forms.ChoiceField(
        label="Last activity", required=False, choices=ACTIVITY_CHOICES, widget=Select
    )
    sort = forms.ChoiceField(
        label="Sort by",
        required=False,
        choices=[(key, order.label) for key, order in SORTS.items()],
        widget=Select,
    )

    def __init__(
        self, *args: Any, user: User, people: Sequence[User] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["owner"].choices = owner_choices_for(user, people=people)

    def clean_q(self) -> str:
        return " ".join(self.cleaned_data["q"].split())

    def clean_sort(self) -> str:
        return self.cleaned_data["sort"] or DEFAULT_SORT

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        low, high = data.get("score_min"), data.get("score_max")
        if low is not None and high is not None and low > high:
            self.add_error("score_max", "Make this at least the lower score.")
        return data

    def values(self) -> dict[str, Any]:
        """The valid filters (all of them once ``is_valid()`` ran, errors left out)."""
        if not hasattr(self, "cleaned_data"):
            self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if value}

    @property
    def sort_key(self) -> str:
        return self.values().get("sort", DEFAULT_SORT)


def leads_visible(user: User, values: dict[str, Any]) -> QuerySet[Lead]:
    """The leads a list starts from for these filter values: ``visible_to(user)``, or
    all leads when the owner filter is "mine" or "unassigned", which lie within what
    everyone who sees any lead sees; ``leads_filter`` then narrows them by owner alone.

    ``(owner = me OR owner IS NULL) AND owner = me`` means ``owner = me``, but
    PostgreSQL does not simplify it: it took the first branch for a small share of the
    rep's leads and combined bitmaps of 40,000 rows (21 ms) for a rep's warm MQLs,
    which the owner's hottest-first index answers in under a millisecond.
    """
    visible = Lead.objects.visible_to(user)
    if values.get("owner") in (OWNER_ME, OWNER_UNASSIGNED) and not visible.query.is_empty():
        return Lead.objects.all()
    return visible


def leads_filter(queryset: QuerySet[Lead], *, user: User, values: dict[str, Any]) -> QuerySet[Lead]:
    """Narrow visible leads by the list's filter values (``LeadListForm.values()``)."""
    for name in ("band", "stage", "source", "grade", "quadrant"):
        if values.get(name):
            queryset = queryset.filter(**{name: values[name]})
    owner = values.get("owner")
    if owner == OWNER_ME:
        queryset = queryset.filter(owner=user)
    elif owner == OWNER_UNASSIGNED:
        queryset = queryset.filter(owner__isnull=True)
    elif owner:
        queryset = queryset.filter(owner_id=int(owner))
    if values.get("product"):
        queryset = queryset.filter(product_interests=values["product"])
    if values.get("score_min") is not None:
        queryset = queryset.filter(score__gte=values["score_min"])
    if values.get("score_max") is not None:
        queryset = queryset.filter(score__lte=values["score_max"])
    queryset = _filter_activity(queryset, values.get("activity", ""))
    if values.get("q"):
        queryset = leads_search(queryset, values["q"])
    return queryset


def _filter_activity(queryset: QuerySet[Lead], activity: str) -> QuerySet[Lead]:
    if activity == "none":
        return queryset.filter(last_activity_at__isnull=True)
    if activity.isdigit():
        since = timezone.now() - dt.timedelta(days=int(activity))
        return queryset.filter(last_activity_at__gte=since)
    return queryset


def leads_search(queryset: QuerySet[Lead], text: str) -> QuerySet[Lead]:
    """Leads whose first or last name, email or company name contains ``text``, any case.

    Written as ``LOWER(column) LIKE '%text%'`` so that PostgreSQL answers from the
    trigram indexes on those expressions (migration ``lead_list_indexes``); SQLite runs
    the same query without them.
    """
    term = text.lower()
    companies = list(
        Company.objects.alias(name_lower=Lower("name"))
        .filter(name_lower__contains=term)
        .order_by()
        .values_list("pk", flat=True)[:SEARCH_COMPANIES_MAX]
    )
    matches = Q(first_name_lower__contains=term) | Q(last_name_lower__contains=term)
    if not any(char.isspace() for char in term):
        # An email address holds no blanks; skipping it spares a trigram scan whose
        # common trigrams (every address has "com") cost hundreds of ms on a big table.
        matches |= Q(email_lower__contains=term)
    if companies:
        matches |= Q(company_id__in=companies)
    return queryset.alias(
        first_name_lower=Lower("first_name"),
        last_name_lower=Lower("last_name"),
        email_lower=Lower("email"),
    ).filter(matches)


def leads_count_capped(queryset: QuerySet[Lead], cap: int | None = None) -> tuple[int, bool]:
    """How many leads match, counting at most ``cap`` (``COUNT_CAP``) + 1; and whether
    there are more."""
    cap = COUNT_CAP if cap is None else cap
    counted = queryset.order_by().values("pk")[: cap + 1].count()
    return min(counted, cap), counted > cap

"""The leads list's filters: ``leads.filters.LeadFilter`` under the list's names, with
its sort, and the count of what matches.

The pipeline filters its cards with the same FilterSet. Sort orders and pages are in
``workspace.keyset``.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet

from leads.filters import LeadFilter, LeadFilterForm
from leads.models import Lead, ProductLine

from .keyset import DEFAULT_SORT, SORTS


class LeadListForm(LeadFilterForm):
    field_order = [
        "q",
        "band",
        "stage",
        "owner",
        "source",
        "product",
        "grade",
        "quadrant",
        "score_min",
        "score_max",
        "activity",
        "sort",
    ]


class LeadListFilter(LeadFilter):
    """The shared filters as the list's query string names them (``product`` for the
    API's ``product_interest``, a select of the product lines), with the sort order,
    which ``workspace.keyset`` applies to the page. The list has no ``updated_since``."""

    # django-filter drops an inherited filter that a subclass sets to None.
    product_interest = None
    updated_since = None  # type: ignore[assignment]  # the idiom above; not a filter any more
    product = django_filters.ModelChoiceFilter(
        label="Product interest",
        field_name="product_interests",
        queryset=ProductLine.objects.all(),
        to_field_name="slug",
        empty_label="Any",
    )
    ORDERING_FIELDS = ("sort",)
    sort = django_filters.ChoiceFilter(
        label="Sort by",
        choices=[(key, order.label) for key, order in SORTS.items()],
        empty_label=None,
        method="keep_order",
    )

    class Meta(LeadFilter.Meta):
        form = LeadListForm

    @property
    def sort_key(self) -> str:
        """The valid sort order asked for, else the default."""
        self.is_valid()
        return self.form.cleaned_data.get("sort") or DEFAULT_SORT

    def keep_order(self, queryset: QuerySet[Lead], name: str, value: Any) -> QuerySet[Lead]:
        return queryset


# Up to this many matching leads the list counts them with its page; past it the page
# says "more than" and the exact count arrives in a request of its own (``lead-count``):
# counting the hundreds of thousands of leads a person may see takes longer than the
# rest of the page.
COUNT_INLINE_MAX = 1_000


def leads_count_upto(queryset: QuerySet[Any], limit: int | None = None) -> int | None:
    """How many leads match when at most ``limit`` (``COUNT_INLINE_MAX``) do, reading no
    more than one past it; None when more do. ``queryset`` gives leads, or their ranks
    (``LeadFilter.ranks``)."""
    limit = COUNT_INLINE_MAX if limit is None else limit
    found = queryset.order_by().values("pk")[: limit + 1].count()
    return found if found <= limit else None


def leads_count(queryset: QuerySet[Any]) -> int:
    """How many leads match, exactly: one ``COUNT`` without the sort. The filters on the
    rank (band, stage, owner, grade, quadrant, score) are answered from its indexes;
    given the ranks alone (``LeadFilter.ranks``), no lead row is read."""
    return queryset.order_by().count()

"""The API's filter plumbing: stable ordering and a filter backend that refuses
boolean filters it cannot read. The filters themselves are in ``crm.filters``."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import F, OrderBy
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request

# What django-filter's boolean filters read as true or false; "" is no filter.
BOOLEAN_VALUES = {"", "true", "false", "True", "False", "1", "0"}


class StableOrderingFilter(OrderingFilter):
    """``?ordering=score`` sorts by score, then by id in the same direction.

    A view's ``ordering_columns`` maps an ordering's public name to what the query
    sorts by, where the two differ (the lead's score is sorted through its rank), and
    its ``ordering_nulls_last`` names the columns whose empty values come last in
    either direction, as the pages have them (``api.pagination``): an export, which is
    not paged, lists the leads in the same order as the pages.
    """

    def filter_queryset(self, request: Request, queryset: Any, view: Any) -> Any:
        ordering = self.get_ordering(request, queryset, view)
        if not ordering:
            return queryset
        nulls_last = getattr(view, "ordering_nulls_last", ())
        return queryset.order_by(*(_ordered(field, nulls_last) for field in ordering))

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> list[str]:
        ordering = list(super().get_ordering(request, queryset, view) or ["-id"])
        columns = getattr(view, "ordering_columns", {})
        ordering = [
            field[: len(field) - len(name)] + columns.get(name, name)
            for field, name in ((field, field.lstrip("-")) for field in ordering)
        ]
        if not any(field.lstrip("-") in ("id", "pk") for field in ordering):
            ordering.append("-id" if ordering[0].startswith("-") else "id")
        return ordering


def _ordered(field: str, nulls_last: Any) -> str | OrderBy:
    name = field.lstrip("-")
    if name not in nulls_last:
        return field
    return F(name).desc(nulls_last=True) if field.startswith("-") else F(name).asc(nulls_last=True)


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter's backend, refusing a boolean filter that is neither true nor false:
    django-filter reads ``?open=maybe`` as no filter at all, and the caller would get
    every row without being told."""

    def filter_queryset(self, request: Request, queryset: Any, view: Any) -> Any:
        filterset = self.get_filterset(request, queryset, view)
        if filterset is not None:
            errors = {
                name: ["Give true or false."]
                for name, field in filterset.filters.items()
                if isinstance(field, django_filters.BooleanFilter)
                and request.query_params.get(name, "") not in BOOLEAN_VALUES
            }
            if errors:
                raise ValidationError(errors)
        return super().filter_queryset(request, queryset, view)

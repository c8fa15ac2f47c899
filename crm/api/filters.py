"""Filters shared by the API's lists."""

from __future__ import annotations

from typing import Any

import django_filters
import django_filters.fields
from django import forms
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request

from crm.timestamps import OFFSET_OUT_OF_RANGE, offset_out_of_range


class StableOrderingFilter(OrderingFilter):
    """``?ordering=score`` sorts by score, then by id in the same direction."""

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> list[str]:
        ordering = list(super().get_ordering(request, queryset, view) or ["-id"])
        if not any(field.lstrip("-") in ("id", "pk") for field in ordering):
            ordering.append("-id" if ordering[0].startswith("-") else "id")
        return ordering


class IntegerFilter(django_filters.NumberFilter):
    """A whole number within what the database stores (ids by default: 1 to 2**63 - 1).

    ``NumberFilter`` takes any decimal, and an id of 6.4e45 would reach the database
    and fail there; this answers 400 naming the filter instead.
    """

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class StorableIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 time whose UTC offset the database can store (see ``crm.timestamps``)."""

    def to_python(self, value: Any) -> Any:
        at = super().to_python(value)
        if at is not None and offset_out_of_range(at):
            raise forms.ValidationError(OFFSET_OUT_OF_RANGE, code="invalid")
        return at


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """``django_filters.IsoDateTimeFilter`` answering 400 for an offset beyond ±15:59,
    which would otherwise reach PostgreSQL and fail there."""

    field_class = StorableIsoDateTimeField

"""Filters shared by the API's lists."""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters
import django_filters.fields
from django import forms
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.drainage import set_override
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request

# What django-filter's boolean filters read as true or false; "" is no filter.
BOOLEAN_VALUES = {"", "true", "false", "True", "False", "1", "0"}


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
        # The schema states the bounds, so that a client knows 0 is refused.
        schema = {"type": "integer", "minimum": kwargs["min_value"], "maximum": kwargs["max_value"]}
        set_override(self, "field", schema)


class UtcDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 date and time, compared in UTC: ISO 8601 allows offsets up to ±23:59,
    PostgreSQL takes them only up to ±15:59, so the time is converted before the query."""

    def to_python(self, value: Any) -> dt.datetime | None:
        parsed = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        try:
            return parsed.astimezone(dt.UTC)
        except OverflowError:
            raise forms.ValidationError("This date and time is out of range.") from None


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


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

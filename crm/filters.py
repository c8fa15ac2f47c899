"""Filters for django-filter FilterSets, whatever layer their lists are in: whole numbers
within bounds, and ISO 8601 times compared in UTC. Each states its bounds in the API
schema, so that a client knows what is refused."""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters
import django_filters.fields
from django import forms
from drf_spectacular.drainage import set_override


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

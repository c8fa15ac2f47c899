"""Cursor pagination: stable pages over lists that change while they are read."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import F, Q
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request

from leads.models.merge import ExactJSONEncoder


class ApiCursorPagination(CursorPagination):
    """Pages of 50 (``page_size`` up to 500), ordered by the view's ``ordering``.

    A cursor that cannot be read is a bad parameter (400 on ``cursor``), not a
    missing resource: the list exists, the request is wrong. So is a ``page_size``
    that is not a whole number from 1 (DRF would quietly use the default); a larger
    one than 500 gives pages of 500.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-id"

    def decode_cursor(self, request: Request) -> Any:
        try:
            cursor = super().decode_cursor(request)
            if cursor is not None and cursor.position is not None:
                values = json.loads(str(cursor.position))
                if not isinstance(values, list) or len(values) != len(self.ordering):
                    raise ValueError
            return cursor
        except (NotFound, ValueError):
            raise ValidationError(
                {self.cursor_query_param: ["This cursor is not valid; start from the first page."]}
            ) from None

    # DRF keeps the position of the first ordering field only and steps over rows that
    # share it with an offset, which it caps (``offset_cutoff``, 1,000): past a thousand
    # leads of one score the same ``next`` link came back forever. The position here is
    # every ordering field's value, the last of them the id (``StableOrderingFilter``),
    # so it names one row and the next page starts right after it, however many share
    # its score.

    def _get_position_from_instance(self, instance: Any, ordering: Any) -> str:
        names = [field.lstrip("-") for field in ordering]
        if isinstance(instance, dict):
            values = [instance[name] for name in names]
        else:
            values = [getattr(instance, name) for name in names]
        return json.dumps(values, cls=ExactJSONEncoder)

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        """A page after (or, going back, before) the cursor's row: DRF's own steps, with
        the keyset condition of every ordering field in place of its first field's."""
        self.request = request
        self.page_size = self.get_page_size(request)
        self.base_url = request.build_absolute_uri()
        fields: list[str] = list(self.get_ordering(request, queryset, view))
        self.ordering = fields  # type: ignore[assignment]  # DRF keeps a list here
        self.cursor = self.decode_cursor(request)
        offset = self.cursor.offset if self.cursor else 0
        reverse = bool(self.cursor.reverse) if self.cursor else False
        position = str(self.cursor.position) if self.cursor and self.cursor.position else None
        nulls_last = getattr(view, "ordering_nulls_last", ())
        high = _nulls_high(fields, nulls_last)
        ordering = _reversed(fields) if reverse else fields
        values = json.loads(position) if position is not None else None
        if _filled_first(fields, nulls_last, values, reverse=reverse, offset=offset):
            results = _filled_then_empty(queryset, fields, values, high, self.page_size + 1)
        else:
            queryset = queryset.order_by(*_nulls_low(ordering, high))
            if values is not None:
                queryset = queryset.filter(_after(ordering, values, high))
            results = list(queryset[offset : offset + self.page_size + 1])
        self.page = results[: self.page_size]
        following = None
        if len(results) > len(self.page):
            following = self._get_position_from_instance(results[-1], self.ordering)
        if reverse:
            self.page.reverse()
            self.has_next = position is not None or offset > 0
            self.has_previous = following is not None
            self.next_position, self.previous_position = position, following
        else:
            self.has_next = following is not None
            self.has_previous = position is not None or offset > 0
            self.next_position, self.previous_position = following, position
        self.display_page_controls = (self.has_previous or self.has_next) and bool(self.template)
        return self.page

    def get_page_size(self, request: Request) -> int:
        value = request.query_params.get(self.page_size_query_param, "")
        if value == "":
            return self.page_size
        if not (value.isascii() and value.isdigit()) or int(value) < 1:
            message = f"Give a whole number from 1 (at most {self.max_page_size} are used)."
            raise ValidationError({self.page_size_query_param: [message]})
        return min(int(value), self.max_page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
                parameter["description"] = (
                    f"Rows per page (default {self.page_size}; more than "
                    f"{self.max_page_size} give {self.max_page_size})."
                )
            else:
                parameter["description"] = (
                    "The `next` or `previous` link's cursor, for the same filters and ordering."
                )
        return parameters


def _filled_first(
    fields: list[str], nulls_last: Any, values: list[Any] | None, *, reverse: bool, offset: int
) -> bool:
    """Whether the page runs forward from the top, or from a row with its first field
    set, of an order whose first field's nulls come last (``ordering_nulls_last``): then
    its rows are those with the field set, then those without (``_filled_then_empty``)."""
    first = fields[0].lstrip("-")
    return (
        first in nulls_last
        and not reverse
        and offset == 0
        and (values is None or values[0] is not None)
    )


def _filled_then_empty(
    queryset: Any, fields: list[str], values: list[Any] | None, high: frozenset[str], limit: int
) -> list[Any]:
    """Up to ``limit`` rows after ``values`` (from the top without): those whose first
    field is set, in one query the field's index can serve (``IS NOT NULL``, no null
    in its bounds), then from the top of those without it.

    One query of ``ORDER BY field NULLS LAST`` reads every row to sort them: the rows
    that have the field set come from a join (the lead's predictive score from its
    score row), which an outer join's nulls keep the index from ordering."""
    first = fields[0].lstrip("-")
    # Within the rows that have the field, nulls are nowhere: put them at the end away
    # from the page's direction, so that the bound has no ``OR field IS NULL``.
    descending = fields[0].startswith("-")
    away = high - {first} | ({first} if descending else set())
    # And no NULLS FIRST/LAST on it or the id, which the index's order would not match.
    filled = queryset.filter(**{f"{first}__isnull": False}).order_by(
        *(
            _plain(field) if field in (fields[0], "id", "-id") else _nulls_low([field], high)[0]
            for field in fields
        )
    )
    if values is not None:
        filled = filled.filter(_after(fields, values, frozenset(away)))
    rows = list(filled[:limit])
    if len(rows) < limit:
        empty = queryset.filter(**{f"{first}__isnull": True})
        rows += list(empty.order_by(*_nulls_low(fields, high))[: limit - len(rows)])
    return rows


def _plain(field: str) -> Any:
    name = field.lstrip("-")
    return F(name).desc() if field.startswith("-") else F(name).asc()


def _reversed(ordering: list[str]) -> list[str]:
    return [field[1:] if field.startswith("-") else f"-{field}" for field in ordering]


def _nulls_high(fields: list[str], nulls_last: Any) -> frozenset[str]:
    """The fields whose nulls count as the largest values: those a view lists in
    ``ordering_nulls_last`` asked in ascending order (descending, the smallest values
    already come last). Worked out from the asked order, before a page back reverses it."""
    return frozenset(field for field in fields if field in nulls_last)


def _nulls_low(ordering: list[str], high: frozenset[str] = frozenset()) -> list[Any]:
    """The order by, nulls as the smallest values (the largest for ``high`` fields)."""
    order = []
    for field in ordering:
        name = field.lstrip("-")
        low = name not in high or None
        top = name in high or None
        if field.startswith("-"):
            order.append(F(name).desc(nulls_last=low, nulls_first=top))
        else:
            order.append(F(name).asc(nulls_first=low, nulls_last=top))
    return order


def _after(ordering: list[str], values: list[Any], high: frozenset[str] = frozenset()) -> Q:
    """The rows that ``ordering`` puts after the row with these values: ``(a, b, id) >
    (x, y, z)`` spelled out field by field, so that each field keeps its own direction,
    with nulls as the smallest values (the largest for ``high`` fields)."""
    condition = Q(pk__in=[])
    equal = Q()
    for field, value in zip(ordering, values, strict=True):
        name = field.lstrip("-")
        greater = not field.startswith("-")
        condition |= equal & _beyond(name, value, greater=greater, nulls_high=name in high)
        equal &= Q(**{f"{name}__isnull": True}) if value is None else Q(**{name: value})
    return condition


def _beyond(name: str, value: Any, *, greater: bool, nulls_high: bool = False) -> Q:
    """The rows past ``value`` going up (``greater``) or down, the nulls at the low end
    (at the high end with ``nulls_high``)."""
    if value is None:
        return Q(**{f"{name}__isnull": False}) if greater != nulls_high else Q(pk__in=[])
    past = Q(**{f"{name}__{'gt' if greater else 'lt'}": value})
    if greater == nulls_high:  # towards the end where the nulls are
        past |= Q(**{f"{name}__isnull": True})
    return past

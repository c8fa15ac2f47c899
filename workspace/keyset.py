"""Keyset pages of the leads list: sort orders, signed cursors and pages.

Pages are cut by keyset (the sort key and the id of the row a page starts or ends
at), never by offset: a deep page costs what the first one costs. The cursor that
carries the key travels in the URL signed, so a changed or stale one is refused and
gives the first page instead of an error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core import signing
from django.db.models import F, Q, QuerySet
from django.db.models.expressions import BaseExpression
from django.utils.dateparse import parse_datetime

from leads.models import Lead, NameSortKey
from scoring.selectors import predictive_score_joined, predictive_score_subquery

if TYPE_CHECKING:
    from django.db.models import OrderBy

PAGE_SIZE = 25
# Kept from when the list lived in leads, so that cursors in bookmarked URLs still work.
CURSOR_SALT = "leads.list.cursor"


@dataclass(frozen=True)
class SortOrder:
    """One way to order the list: columns compared in turn, then the id, all one way.

    ``nullable`` says the first column may be empty; such rows always come last, in
    id order, as a segment of their own so that each part of a page uses an index.
    """

    label: str
    fields: tuple[str, ...]
    descending: bool
    nullable: bool = False

    def order_by(self, *, reverse: bool = False) -> list[OrderBy]:
        descending = self.descending != reverse
        return [
            _page_key(name).desc() if descending else _page_key(name).asc()
            for name in (*self.fields, "id")
        ]


# Sort keys that are expressions rather than columns, annotated under these names.
NAME_KEY = "name_key"
# The predictive score of the lead's primary scoring model (empty while none is live).
PREDICTIVE_KEY = "predictive_score"
COMPUTED_KEYS: dict[str, Callable[[], BaseExpression]] = {
    NAME_KEY: NameSortKey,
    PREDICTIVE_KEY: predictive_score_subquery,
}
# Keys a page reads through a join instead (``_segments``): the predictive score from
# the primary score row, whose index (``leadscore_predictive_idx``) gives the order, so
# a page reads its rows from the index instead of every lead's score sorted.
JOINED_KEYS: dict[str, Callable[[], dict[str, Any]]] = {
    PREDICTIVE_KEY: predictive_score_joined,
}


def sort_key(name: str) -> F | BaseExpression:
    """The expression a sort column names: a column, or a computed key such as the
    displayed name (which a query need not annotate to order by it)."""
    computed = COMPUTED_KEYS.get(name)
    return computed() if computed is not None else F(name)


def _page_key(name: str) -> F | BaseExpression:
    """What a page's query orders by: the annotation of a joined key (``_segments``)."""
    return F(name) if name in JOINED_KEYS else sort_key(name)


SORTS: dict[str, SortOrder] = {
    # The score is read from the lead's rank, whose indexes hold it (``Lead.ranked``).
    "-score": SortOrder("Score, hottest first", ("rank__score",), descending=True),
    "score": SortOrder("Score, coldest first", ("rank__score",), descending=False),
    # The name as shown ("first last", else the email), accents and case aside
    # (``NameSortKey``, served by ``lead_display_name_idx``).
    "name": SortOrder("Name, A to Z", (NAME_KEY,), descending=False),
    "-name": SortOrder("Name, Z to A", (NAME_KEY,), descending=True),
    "company": SortOrder("Company, A to Z", ("company__name",), False, nullable=True),
    "-company": SortOrder("Company, Z to A", ("company__name",), True, nullable=True),
    "-last_activity": SortOrder(
        "Last activity, latest first", ("last_activity_at",), True, nullable=True
    ),
    "last_activity": SortOrder(
        "Last activity, longest ago first", ("last_activity_at",), False, nullable=True
    ),
    "-stage_changed": SortOrder(
        "Stage changed, latest first", ("stage_changed_at",), descending=True
    ),
    "stage_changed": SortOrder(
        "Stage changed, longest ago first", ("stage_changed_at",), descending=False
    ),
    # Leads without a predictive score (none live in their model) come last either way.
    "-predictive": SortOrder(
        "Predictive score, highest first", (PREDICTIVE_KEY,), True, nullable=True
    ),
    "predictive": SortOrder(
        "Predictive score, lowest first", (PREDICTIVE_KEY,), False, nullable=True
    ),
}
DEFAULT_SORT = "-score"


def whole_list_order(sort: str) -> list[OrderBy]:
    """The ``sort`` order of the whole list in one query, as its pages show it: rows
    with the first column empty last, in id order the sort's way (as ``_segments``
    pages them). What an export of the list reads through one cursor."""
    order = SORTS[sort]
    return [
        sort_key(name).desc(nulls_last=True)
        if order.descending
        else sort_key(name).asc(nulls_last=True)
        for name in (*order.fields, "id")
    ]


DATETIME_FIELDS = frozenset({"last_activity_at", "stage_changed_at"})


@dataclass(frozen=True)
class Cursor:
    """Where a page starts (``forward``: after this row) or ends (before this row)."""

    sort: str
    values: tuple[Any, ...]
    pk: int
    forward: bool

    @property
    def in_empty_segment(self) -> bool:
        """The row's first sort column is empty: it sits among the rows listed last."""
        return self.values[0] is None


# A row of the list: a ``values()`` dictionary holding at least the id and the sort
# columns (``company__name`` for the company orders).
Row = dict[str, Any]
# A ``values()`` query of leads, as the list pages read them.
Rows = QuerySet[Lead, Row]


@dataclass
class Page:
    rows: list[Row]
    next_cursor: str | None
    previous_cursor: str | None


def cursor_encode(cursor: Cursor) -> str:
    values = [v.isoformat() if isinstance(v, dt.datetime) else v for v in cursor.values]
    payload = {"s": cursor.sort, "v": values, "i": cursor.pk, "f": cursor.forward}
    return signing.dumps(payload, salt=CURSOR_SALT, compress=True)


def cursor_decode(token: str, *, sort: str) -> Cursor | None:
    """The cursor in ``token``, or None when it is missing, forged, or made for another
    sort order: the caller then shows the first page."""
    if not token:
        return None
    try:
        payload = signing.loads(token, salt=CURSOR_SALT)
        order = SORTS[payload["s"]]
        values = tuple(payload["v"])
        pk = payload["i"]
        forward = payload["f"]
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    valid = (
        payload["s"] == sort
        and len(values) == len(order.fields)
        and isinstance(pk, int)
        and not isinstance(pk, bool)
        and isinstance(forward, bool)
    )
    if not valid:
        return None
    try:
        values = tuple(_value_load(name, v) for name, v in zip(order.fields, values, strict=True))
    except ValueError:
        return None
    return Cursor(sort=sort, values=values, pk=pk, forward=forward)


def _value_load(field: str, value: Any) -> Any:
    if value is None:
        return None
    if field in DATETIME_FIELDS:
        parsed = parse_datetime(value) if isinstance(value, str) else None
        if parsed is None:
            raise ValueError(field)
        return parsed
    if field in ("rank__score", PREDICTIVE_KEY):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(field)
        return value
    if not isinstance(value, str):
        raise ValueError(field)
    return value


def _row_key(row: Row, order: SortOrder) -> tuple[Any, ...]:
    return tuple(row[name] for name in order.fields)


def _beyond(order: SortOrder, values: Sequence[Any], pk: int, *, descending: bool) -> Q:
    """Rows strictly past (``values``, ``pk``) in an order all one way, as a filter.

    The first column is also bounded on its own (``<=`` or ``>=``) so that the database
    can start its index scan at the cursor instead of filtering from the top.
    """
    op = "lt" if descending else "gt"
    first = order.fields[0]
    bound = Q(**{f"{first}__{op}e": values[0]})
    past = Q()
    equal = Q()
    for name, value in zip(order.fields, values, strict=True):
        past |= equal & Q(**{f"{name}__{op}": value})
        equal &= Q(**{name: value})
    past |= equal & Q(**{f"pk__{op}": pk})
    return bound & past


def _segments(queryset: Rows, order: SortOrder) -> tuple[Rows, Rows | None]:
    """The rows with the first column set, then (for a nullable column) those without."""
    for name in order.fields:
        if name in JOINED_KEYS:
            # In place of the list's column, if it reads the key as a subquery.
            queryset = queryset.annotate(**JOINED_KEYS[name]())
        elif name in COMPUTED_KEYS and name not in queryset.query.annotations:
            # Named, so that cursors compare with it and rows carry it.
            queryset = queryset.annotate(**{name: COMPUTED_KEYS[name]()})
    if order.fields[0].startswith("rank__"):
        # Joined inner, so that the rank's index gives the order (``Lead.ranked``).
        queryset = queryset.filter(rank__isnull=False)
    if not order.nullable:
        return queryset, None
    if order.fields[0] == "company__name":
        # Every company has a name, so the test joins the company table inner: the
        # planner can then walk companies by name (``company_name_idx``) and fetch each
        # one's leads, instead of sorting every visible lead. Without a company, the key
        # alone says it (no join).
        return (
            queryset.filter(company__name__isnull=False),
            queryset.filter(company__isnull=True),
        )
    first = order.fields[0]
    return (
        queryset.filter(**{f"{first}__isnull": False}),
        queryset.filter(**{f"{first}__isnull": True}),
    )


def _rows_after(queryset: Rows, order: SortOrder, cursor: Cursor | None, limit: int) -> list[Row]:
    """Up to ``limit`` rows following the cursor in the sort order (from the top without)."""
    filled, empty = _segments(queryset, order)
    parts: list[Rows] = []
    if cursor is None:
        parts = [filled.order_by(*order.order_by())]
        if empty is not None:
            parts.append(empty.order_by(*_id_order(order.descending)))
    elif cursor.in_empty_segment:
        assert empty is not None, "a cursor in the empty segment of a column without one"
        op = "lt" if order.descending else "gt"
        parts = [empty.filter(**{f"pk__{op}": cursor.pk}).order_by(*_id_order(order.descending))]
    else:
        beyond = _beyond(order, cursor.values, cursor.pk, descending=order.descending)
        parts = [filled.filter(beyond).order_by(*order.order_by())]
        if empty is not None:
            parts.append(empty.order_by(*_id_order(order.descending)))
    return _take(parts, limit)


def _rows_before(queryset: Rows, order: SortOrder, cursor: Cursor, limit: int) -> list[Row]:
    """Up to ``limit`` rows preceding the cursor, nearest first."""
    filled, empty = _segments(queryset, order)
    reverse = not order.descending
    parts: list[Rows] = []
    if cursor.in_empty_segment:
        assert empty is not None, "a cursor in the empty segment of a column without one"
        op = "lt" if reverse else "gt"
        parts = [empty.filter(**{f"pk__{op}": cursor.pk}).order_by(*_id_order(reverse))]
    else:
        beyond = _beyond(order, cursor.values, cursor.pk, descending=reverse)
        filled = filled.filter(beyond)
    parts.append(filled.order_by(*order.order_by(reverse=True)))
    return _take(parts, limit)


def _id_order(descending: bool) -> list[OrderBy]:
    return [F("id").desc() if descending else F("id").asc()]


def _take(parts: list[Rows], limit: int) -> list[Row]:
    rows: list[Row] = []
    for part in parts:
        if len(rows) >= limit:
            break
        rows.extend(part[: limit - len(rows)])
    return rows


def leads_page(queryset: Rows, *, sort: str, cursor: Cursor | None, size: int = PAGE_SIZE) -> Page:
    """One page of ``queryset`` in the ``sort`` order, starting at the cursor.

    ``queryset`` is a ``values()`` query whose rows hold ``id`` and the sort's columns:
    plain dictionaries, not model instances, as a list page needs a few columns of 26
    rows and building three model instances for each cost more than running the query.

    Asks for one row more than it shows, to know whether another page follows. Going
    back past the start (rows were deleted or moved meanwhile) shows the first page.
    """
    order = SORTS[sort]
    if cursor is not None and not cursor.forward:
        rows = _rows_before(queryset, order, cursor, size + 1)
        if len(rows) < size:
            return leads_page(queryset, sort=sort, cursor=None, size=size)
        has_previous = len(rows) > size
        rows = list(reversed(rows[:size]))
        has_next = True
    else:
        rows = _rows_after(queryset, order, cursor, size + 1)
        has_next = len(rows) > size
        rows = rows[:size]
        has_previous = cursor is not None
    return Page(
        rows=rows,
        next_cursor=_edge(rows[-1], order, sort, forward=True) if has_next and rows else None,
        previous_cursor=_edge(rows[0], order, sort, forward=False)
        if has_previous and rows
        else None,
    )


def _edge(row: Row, order: SortOrder, sort: str, *, forward: bool) -> str:
    return cursor_encode(
        Cursor(sort=sort, values=_row_key(row, order), pk=row["id"], forward=forward)
    )

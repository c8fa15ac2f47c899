"""A route's URL for any id at the cost of one ``reverse``: the pages that link every
row (the leads list, the deal board's cards) reverse each route once, not once a row."""

from __future__ import annotations

from collections.abc import Callable

from django.urls import reverse

# An id no row has, to find where the id goes in the route's URL.
MARKER = str(2**63 - 1)


def pk_path(name: str) -> Callable[[int], str]:
    """``lambda pk: reverse(name, args=[pk])`` for a route whose one argument is an id."""
    head, _, tail = reverse(name, args=[MARKER]).partition(MARKER)
    return lambda pk: f"{head}{pk}{tail}"

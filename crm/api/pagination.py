"""Cursor pagination: stable pages over lists that change while they are read."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request


class ApiCursorPagination(CursorPagination):
    """Pages of 50 (``page_size`` up to 500), ordered by the view's ``ordering``.

    A cursor that cannot be read is a bad parameter (400 on ``cursor``), not a
    missing resource: the list exists, the request is wrong.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-id"

    def decode_cursor(self, request: Request) -> Any:
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError(
                {self.cursor_query_param: ["This cursor is not valid; start from the first page."]}
            ) from None

"""Cursor pagination: stable pages over lists that change while they are read."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class ApiCursorPagination(CursorPagination):
    """Pages of 50 (``page_size`` up to 500), ordered by the view's ``ordering``."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-id"

"""Cursor pagination: stable pages over lists that change while they are read."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request


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
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError(
                {self.cursor_query_param: ["This cursor is not valid; start from the first page."]}
            ) from None

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

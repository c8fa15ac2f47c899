"""Content negotiation for the API's file downloads."""

from __future__ import annotations

from collections.abc import Iterable

from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class ExportNegotiation(BaseContentNegotiation):
    """The export's ``format`` names the file, not a renderer (DRF would answer 404 for a
    format no renderer has): its errors always answer JSON."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type

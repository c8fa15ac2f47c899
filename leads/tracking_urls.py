"""The Segment-compatible tracking endpoint, mounted at ``/v1/`` (no login, no CSRF; see
``tracking_views``)."""

from django.urls import path

from .tracking_views import tracking_call

CALLS = ("identify", "track", "page", "screen", "group", "alias", "batch", "import")

urlpatterns = [path(call, tracking_call, {"call": call}, name=f"tracking-{call}") for call in CALLS]

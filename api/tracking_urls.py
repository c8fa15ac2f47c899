"""The Segment-compatible tracking endpoint, mounted at ``/v1/`` (no login, no CSRF; see
``tracking``)."""

from django.urls import path

from .tracking import tracking_call

CALLS = ("identify", "track", "page", "screen", "group", "alias", "batch", "import")

# analytics.js posts to one-letter paths (/v1/t, /v1/p, … and /v1/b when it batches),
# as Segment's own API accepts.
SHORT_PATHS = {call[0]: call for call in CALLS if call != "import"}

urlpatterns = [path(call, tracking_call, {"call": call}, name=f"tracking-{call}") for call in CALLS]
urlpatterns += [path(short, tracking_call, {"call": call}) for short, call in SHORT_PATHS.items()]

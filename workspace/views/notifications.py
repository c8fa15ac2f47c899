"""The notification list behind the bell: newest first, mark one or all read."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from crm.http import AuthenticatedHttpRequest
from leads.handoff_models import Notification
from leads.notifications import notifications_mark_read

NOTIFICATIONS_SHOWN = 50


def _render(request: AuthenticatedHttpRequest) -> HttpResponse:
    partial = bool(request.htmx) and not request.htmx.history_restore_request
    rows = list(
        Notification.objects.filter(user=request.user)
        .select_related("lead")
        .order_by("-created_at", "-id")[:NOTIFICATIONS_SHOWN]
    )
    context = {"notifications": rows, "partial": partial}
    template = "workspace/notifications_list.html" if partial else "workspace/notifications.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_GET
def notification_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _render(request)


@login_required
@require_POST
def notification_read(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Mark one of the user's notifications read; then follow it when asked to."""
    notification = get_object_or_404(Notification.objects.filter(user=request.user), pk=pk)
    notifications_mark_read(user=request.user, ids=[notification.pk])
    follow = request.POST.get("follow") and notification.url
    if follow and url_has_allowed_host_and_scheme(
        notification.url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(notification.url)
    if getattr(request, "htmx", None):
        return _render(request)
    return redirect("notifications")


@login_required
@require_POST
def notifications_read_all(request: AuthenticatedHttpRequest) -> HttpResponse:
    notifications_mark_read(user=request.user)
    if getattr(request, "htmx", None):
        return _render(request)
    return redirect("notifications")

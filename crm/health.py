"""``/healthz``: the state of the database, the broker and the workers, as JSON."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .celery import app as celery_app
from .models import WorkerHeartbeat


def database_state() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"ok": False, "vendor": connection.vendor, "error": type(exc).__name__}
    return {"ok": True, "vendor": connection.vendor}


def broker_state() -> dict[str, Any]:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            transport = conn.transport_cls
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "transport": transport}


def worker_state() -> dict[str, Any]:
    try:
        last = WorkerHeartbeat.objects.aggregate(last=Max("beat_at"))["last"]
    except Exception:
        return {"ok": False, "last_heartbeat": None, "age_seconds": None}
    if last is None:
        return {"ok": False, "last_heartbeat": None, "age_seconds": None}
    age = (timezone.now() - last).total_seconds()
    return {
        "ok": age <= settings.HOTLIST_HEARTBEAT_STALE_SECONDS,
        "last_heartbeat": last.isoformat(),
        "age_seconds": round(age, 1),
    }


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the database answers (the app can serve), 503 when it does not."""
    database = database_state()
    body: dict[str, Any] = {
        "database": database,
        "broker": broker_state(),
        "worker": worker_state() if database["ok"] else {"ok": False},
    }
    body["status"] = "ok" if all(part["ok"] for part in body.values()) else "degraded"
    if not database["ok"]:
        body["status"] = "down"
    return JsonResponse(body, status=200 if database["ok"] else 503)

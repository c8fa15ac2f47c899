"""Services queue their Celery tasks by name (``crm.resilience.task_enqueue``): every name
they use is a task registered in a process that only set Django up, as a web process."""

from __future__ import annotations

import re
from pathlib import Path

from crm.celery import app

ROOT = Path(__file__).resolve().parent.parent
APPS = [
    "crm",
    "leads",
    "scoring",
    "nurturing",
    "reports",
    "imports",
    "api",
    "workspace",
    "studio",
    "demo",
]
NAMED = re.compile(r"""(?:task_enqueue\(\s*|current_app\.tasks\[)"([a-z_.]+)\"""")


def test_every_task_a_service_names_is_registered():
    names = {
        name
        for package in APPS
        for path in (ROOT / package).rglob("*.py")
        for name in NAMED.findall(path.read_text(encoding="utf-8"))
    }

    assert len(names) >= 8  # webhooks, hand-offs, notifications, scoring, rescores, nurture
    assert sorted(name for name in names if name not in app.tasks) == []

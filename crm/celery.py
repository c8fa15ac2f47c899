"""The Celery application: configuration comes from Django settings (``CELERY_*``)."""

import os

from celery import Celery
from celery.signals import task_postrun
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")

app = Celery("crm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("realtime", "bulk", "email", "default")]
app.autodiscover_tasks()


@task_postrun.connect
def close_broken_connections(task=None, **kwargs) -> None:
    """Connections are reused between tasks; drop one that broke or grew old.

    Not for tasks run eagerly: they share the caller's connection and transaction.
    """
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()

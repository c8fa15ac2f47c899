"""Celery tasks of imports, on the bulk queue: thin wrappers over ``imports.services``."""

import logging

from celery import shared_task

from .drafts import import_drafts_sweep
from .models import ImportJob
from .services import import_job_resume, import_job_run, import_jobs_resume
from .undo import UndoError, import_job_undo

log = logging.getLogger(__name__)


@shared_task(ignore_result=True, acks_late=True)
def import_run(job_id: int) -> None:
    """Run a queued import (a job already claimed is a no-op)."""
    import_job_run(job_id=job_id)


@shared_task(ignore_result=True, acks_late=True)
def import_resume(job_id: int) -> None:
    """Go on with an import whose run stopped, after its last committed chunk."""
    import_job_resume(job_id=job_id)


@shared_task(ignore_result=True, acks_late=True)
def import_undo(job_id: int, by_id: int | None = None) -> None:
    """Undo an import (resuming an undo that stopped); a job that is gone, or was undone
    meanwhile by another run of this task, is a no-op."""
    from crm.models import User

    by = User.objects.filter(pk=by_id).first() if by_id else None
    try:
        import_job_undo(job_id=job_id, by=by)
    except (ImportJob.DoesNotExist, UndoError) as exc:
        log.info("Undo of import %s not run: %s", job_id, exc)


@shared_task(ignore_result=True)
def import_sweep() -> int:
    """Beat: queue again imports (and undos) whose message was lost or whose run
    stalled, and delete drafts nobody started."""
    _purged, requeued = import_drafts_sweep()
    return import_jobs_resume() + requeued

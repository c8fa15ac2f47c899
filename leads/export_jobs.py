"""Exports too large to answer at once: written by a worker to a file, then downloaded.

An XLSX workbook is a zip archive finished only at its end, so a large one cannot be
streamed as it is written: at a million rows it takes minutes before its first byte,
longer than proxies wait. Past ``EXPORT_INLINE_MAX`` leads (and whenever the caller
asks) the surfaces make an ``ExportJob`` instead; a task on the bulk queue writes the
file with the writers of ``leads.exports`` (bounded memory, one snapshot), counting its
rows on the job as it goes, and tells the person when it is ready.

What a job exports is the list's query string, not the leads' ids: a snapshot of a
million ids would cost the request the very time it must not take, and the query is a
few hundred bytes. The surface that made it (``source``: the leads list, the REST API,
the lead admin, whose large selections of more than ``EXPORT_INLINE_MAX`` leads are
jobs in CSV too, since an admin action answers while the person waits)
runs it again at run time through the function it registered here
(``export_source_register``), starting from ``Lead.objects.visible_to`` of the person
who asked, as they are then: someone who lost the right to export, or to see some of
the leads, gets no file holding them. The file shows the list as it is when written.

The job row is the outbox: a request made while the broker is down is kept queued and
sent again by beat's sweeper (``export_jobs_sweep``), which also starts over a run
whose worker died and deletes files past their keeping time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, QuerySet
from django.db.models.functions import Coalesce
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from crm.models import User
from crm.resilience import task_enqueue

from .export_responses import CSV, EXPORT_FORMATS, FORMAT_UNKNOWN, XLSX
from .exports import (
    ExportColumn,
    UnknownColumn,
    csv_chunks,
    export_columns,
    leads_export_rows,
    xlsx_write,
)
from .handoff_models import NotificationKind
from .models import EXPORT_ATTEMPTS_MAX, ExportJob, ExportStatus, Lead
from .notifications import notify
from .permissions import EXPORT_REFUSED, may_export_leads

log = logging.getLogger(__name__)

# A queued job whose message may have been lost is sent again after this long.
QUEUED_LOST_AFTER = timedelta(minutes=5)
# A running job that counted no rows for this long lost its worker: it starts over.
STALLED_AFTER = timedelta(minutes=15)
# How often a run writes its row count on the job (rows, seconds: whichever first).
PROGRESS_ROWS = 10_000
PROGRESS_SECONDS = 2.0
SWEEP_BATCH = 50

SOURCE_UNKNOWN = "This export cannot be written here: its list is unknown."

ExportSource = Callable[[User, QueryDict], QuerySet[Lead]]
_SOURCES: dict[str, ExportSource] = {}


class ExportQueryError(ValueError):
    """The list's query string no longer selects leads (filters no longer valid)."""


def export_source_register(name: str, leads: ExportSource) -> None:
    """Let jobs of the list called ``name`` be run: ``leads(user, query)`` gives the
    leads that list shows ``user`` for ``query``, in its order, within
    ``Lead.objects.visible_to(user)``, or raises ``ExportQueryError``. Call from the
    surface's ``AppConfig.ready``."""
    _SOURCES[name] = leads


def export_needs_job(*, leads: QuerySet[Lead], file_format: str) -> bool:
    """Whether the export of ``leads`` is too large to answer at once: an XLSX of more
    than ``EXPORT_INLINE_MAX`` leads. CSV streams as it is written, whatever its size."""
    return file_format == XLSX and export_exceeds_inline(leads=leads)


def export_exceeds_inline(*, leads: QuerySet[Lead]) -> bool:
    """Whether ``leads`` holds more than ``EXPORT_INLINE_MAX`` leads (reading at most
    one past the limit)."""
    limit = settings.EXPORT_INLINE_MAX
    return leads.order_by().values("pk")[limit : limit + 1].exists()


def export_job_create(
    *, by: User, source: str, query: str, columns: Iterable[str], file_format: str
) -> ExportJob:
    """Record the export of the list ``source`` shows for ``query`` and queue it after
    commit. The same export asked for again while the first is queued or running is
    that first job (a double click, a client's retry).

    Raises ``PermissionDenied`` for someone who may not export, ``ValueError`` for a
    format or list that is not one, ``UnknownColumn`` for a column that is not one.
    """
    if not may_export_leads(by):
        raise PermissionDenied(EXPORT_REFUSED)
    if file_format not in EXPORT_FORMATS:
        raise ValueError(FORMAT_UNKNOWN)
    if source not in _SOURCES:
        raise ValueError(SOURCE_UNKNOWN)
    names = [column.name for column in export_columns(list(columns))]
    asked = {"requested_by": by, "source": source, "query": query, "file_format": file_format}
    with transaction.atomic():
        waiting = ExportJob.objects.filter(
            **asked, status__in=[ExportStatus.QUEUED, ExportStatus.RUNNING]
        )
        for job in waiting.order_by("-pk")[:5]:
            if job.columns == names:
                return job
        job = ExportJob.objects.create(**asked, columns=names, queued_at=timezone.now())
        transaction.on_commit(partial(export_job_request, job_id=job.pk))
    return job


def export_job_request(*, job_id: int) -> bool:
    """Queue the job's run; call after commit. A lost message is sent again by the
    sweeper, and a message for a job already run is a no-op."""
    return task_enqueue("leads.tasks.export_run", job_id, what=f"Export {job_id}")


def export_job_run(*, job_id: int) -> ExportJob | None:
    """Claim a queued job and write its file; None when it was not queued (another run
    has it, or it ran). Call outside a transaction. A failure is recorded on the job,
    and told to the person, rather than raised."""
    started = timezone.now()
    claimed = ExportJob.objects.filter(pk=job_id, status=ExportStatus.QUEUED).update(
        status=ExportStatus.RUNNING,
        started_at=started,
        progress_at=started,
        rows_written=0,
        total_rows=None,
        error="",
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return None
    job = ExportJob.objects.select_related("requested_by").get(pk=job_id)
    _run(job)
    job.refresh_from_db()
    return job


def _run(job: ExportJob) -> None:
    folder = Path(settings.EXPORT_DIR)
    name = f"export-{job.pk}.{job.file_format}"
    part = folder / f"{name}.part"
    try:
        leads, columns = _what_to_write(job)
        total = leads.count()
        ExportJob.objects.filter(pk=job.pk).update(total_rows=total)
        folder.mkdir(parents=True, exist_ok=True)
        with open(part, "wb") as file, _Progress(job, using=leads.db) as progress:
            _write(job.file_format, leads=leads, columns=columns, file=file, counted=progress)
            written = progress.rows
        os.replace(part, folder / name)
    except (ExportQueryError, UnknownColumn, PermissionDenied, ValueError) as exc:
        _fail(job, str(exc) or EXPORT_REFUSED)
    except Exception as exc:
        log.exception("Export %s stopped", job.pk)
        _fail(job, f"The export stopped ({type(exc).__name__}). Ask for it again.")
    else:
        _finish(job, name=name, rows=written)
    finally:
        part.unlink(missing_ok=True)


def _what_to_write(job: ExportJob) -> tuple[QuerySet[Lead], list[ExportColumn]]:
    """The leads and columns of the job, for its requester as they are now."""
    person = job.requested_by
    if not may_export_leads(person):
        raise PermissionDenied(EXPORT_REFUSED)
    source = _SOURCES.get(job.source)
    if source is None:
        raise ExportQueryError(SOURCE_UNKNOWN)
    return source(person, QueryDict(job.query)), export_columns(list(job.columns))


def _write(
    file_format: str,
    *,
    leads: QuerySet[Lead],
    columns: list[ExportColumn],
    file: IO[bytes],
    counted: _Progress,
) -> None:
    header = [column.name for column in columns]
    rows = counted.count(leads_export_rows(leads=leads, columns=columns))
    if file_format == CSV:
        for piece in csv_chunks(header=header, rows=rows):
            file.write(piece)
    elif file_format == XLSX:
        xlsx_write(header=header, rows=rows, file=file)
    else:
        raise ValueError(FORMAT_UNKNOWN)


class _Progress:
    """Counts the rows going into the file and writes the count on the job now and then.

    On PostgreSQL the rows are read in a transaction of their own (one snapshot), and a
    count written in it would show only at its end: the count goes through a connection
    of its own instead, committed at once.
    """

    def __init__(self, job: ExportJob, *, using: str) -> None:
        self.job_id, self.using = job.pk, using
        self.rows = 0
        self._side: BaseDatabaseWrapper | None = None

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._side is not None:
            self._side.close()

    def count(self, rows: Iterator[list]) -> Iterator[list]:
        written_at, written = time.monotonic(), 0
        for row in rows:
            yield row
            self.rows += 1
            if self.rows - written >= PROGRESS_ROWS or (
                self.rows % 500 == 0 and time.monotonic() - written_at >= PROGRESS_SECONDS
            ):
                self._record()
                written_at, written = time.monotonic(), self.rows

    def _record(self) -> None:
        main = connections[self.using]
        now = timezone.now()
        if not (main.vendor == "postgresql" and main.in_atomic_block):
            ExportJob.objects.using(self.using).filter(pk=self.job_id).update(
                rows_written=self.rows, progress_at=now
            )
            return
        if self._side is None:
            self._side = type(main)(main.settings_dict.copy(), self.using)
        table = ExportJob._meta.db_table
        with self._side.cursor() as cursor:
            cursor.execute(
                f'UPDATE "{table}" SET "rows_written" = %s, "progress_at" = %s WHERE "id" = %s',
                [self.rows, now, self.job_id],
            )


def _finish(job: ExportJob, *, name: str, rows: int) -> None:
    now = timezone.now()
    path = Path(settings.EXPORT_DIR) / name
    expires = now + timedelta(hours=settings.EXPORT_KEEP_HOURS)
    with transaction.atomic():
        # Only the run that claimed the job: one the sweeper gave up on stays as it is.
        finished = ExportJob.objects.filter(
            pk=job.pk, status=ExportStatus.RUNNING, started_at=job.started_at
        ).update(
            status=ExportStatus.DONE,
            file_name=name,
            file_size=path.stat().st_size,
            rows_written=rows,
            total_rows=rows,
            progress_at=now,
            finished_at=now,
            expires_at=expires,
        )
        if finished:
            _tell(
                job,
                title="Your export is ready",
                body=f"{rows:,} lead{'s' if rows != 1 else ''} as {job.file_format.upper()}. "
                f"The file is kept until {timezone.localtime(expires):%d %b %Y %H:%M}.",
            )


def _fail(job: ExportJob, message: str) -> None:
    log.warning("Export %s failed: %s", job.pk, message)
    with transaction.atomic():
        failed = ExportJob.objects.filter(
            pk=job.pk, status=ExportStatus.RUNNING, started_at=job.started_at
        ).update(status=ExportStatus.FAILED, error=message[:2000], finished_at=timezone.now())
        if failed:
            _tell(job, title="Your export failed", body=message)


def _tell(job: ExportJob, *, title: str, body: str) -> None:
    person = job.requested_by
    if not person.is_active:
        return
    # The job's page in the app, whichever surface asked: it shows any job of theirs.
    url = reverse("lead-export-job", args=[job.pk])
    notify(user=person, kind=NotificationKind.EXPORT, title=title, body=body, url=url)


def export_jobs_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Beat: send again jobs still queued (their message lost, or never sent while the
    broker was down); start over runs whose worker died (no rows counted for a while),
    giving up after ``EXPORT_ATTEMPTS_MAX`` runs; delete the files of jobs past their
    keeping time. How many of each."""
    now = now or timezone.now()
    return {
        "requeued": _requeue_lost(now),
        "restarted": _restart_stalled(now),
        "expired": export_jobs_expire(now=now),
    }


def _requeue_lost(now: datetime) -> int:
    lost = ExportJob.objects.alias(queued=Coalesce("queued_at", "created_at")).filter(
        status=ExportStatus.QUEUED, queued__lt=now - QUEUED_LOST_AFTER
    )
    count = 0
    for pk in list(lost.values_list("pk", flat=True)[:SWEEP_BATCH]):
        ExportJob.objects.filter(pk=pk, status=ExportStatus.QUEUED).update(queued_at=now)
        count += export_job_request(job_id=pk)
    return count


def _restart_stalled(now: datetime) -> int:
    stalled = ExportJob.objects.filter(
        status=ExportStatus.RUNNING, progress_at__lt=now - STALLED_AFTER
    ).select_related("requested_by")
    count = 0
    for job in stalled[:SWEEP_BATCH]:
        if job.attempts >= EXPORT_ATTEMPTS_MAX:
            _fail(job, f"The export stopped {job.attempts} times. Ask for it again.")
            continue
        restarted = ExportJob.objects.filter(
            pk=job.pk, status=ExportStatus.RUNNING, started_at=job.started_at
        ).update(status=ExportStatus.QUEUED, queued_at=now, rows_written=0)
        if restarted:
            export_job_request(job_id=job.pk)
            count += 1
    return count


def export_jobs_expire(*, now: datetime | None = None) -> int:
    """Delete the files of finished jobs past ``expires_at``; the jobs stay, expired, as
    the record of who exported what. How many."""
    now = now or timezone.now()
    due = ExportJob.objects.filter(status=ExportStatus.DONE, expires_at__lt=now)
    count = 0
    for job in due[:500]:
        path = job.path
        if path is not None:
            path.unlink(missing_ok=True)
        count += ExportJob.objects.filter(pk=job.pk, status=ExportStatus.DONE).update(
            status=ExportStatus.EXPIRED, file_name="", file_size=0
        )
    return count

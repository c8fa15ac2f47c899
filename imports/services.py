"""Imports: create a job from a file, run it in chunks on the bulk queue (resuming after
a crash), score its leads once at the end, and list its failed rows as a file.

A job is checked before it is stored: a file that cannot be read or a mapping that
does not fit answers ``ImportFileError`` or ``MappingError`` and leaves nothing behind
(no job, no file). Its run reads the file as a stream; each chunk of rows is one
transaction that writes the rows, their change records and failed rows, and moves the
job's ``last_row`` on, so a run that stops (a killed worker, a restart) is taken up by
``import_job_resume`` after the last chunk committed, and writes nothing twice. Writing
is quiet (``imports.lead_rows``, ``imports.history_rows``): no hand-off, notification,
webhook, nurture enrollment or real-time scoring follows from imported rows; the job
scores its leads once, set-based, when every row is in (``scoring.quiet_rescore``).
"""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from crm.resilience import task_enqueue
from leads.models import Lead
from nurturing.enrollment import auto_enroll_holds_add
from scoring.quiet_rescore import leads_rescore_quietly

from .chunks import CHANGE_COLUMNS, ChunkOutcome, Context, Prepared
from .company_rows import write_company_rows
from .history_rows import activity_spans_widen, write_activity_rows, write_deal_rows
from .lead_rows import write_lead_rows
from .mapping import ImportKind, MappingError, MatchKey, Options, RowCleaner, suggest_mapping
from .models import ChangeAction, ImportChange, ImportJob, ImportStatus, ObjectType
from .normalize import CellError, is_placeholder, text_of
from .permissions import import_permission_check
from .reading import ImportFileError, ReadOptions, Row, Table, count_rows, open_table

if TYPE_CHECKING:
    from crm.models import User

log = logging.getLogger(__name__)

WRITERS = {
    ImportKind.LEADS: write_lead_rows,
    ImportKind.COMPANIES: write_company_rows,
    ImportKind.ACTIVITIES: write_activity_rows,
    ImportKind.DEALS: write_deal_rows,
}
STALLED_AFTER = timedelta(minutes=10)
QUEUED_LOST_AFTER = timedelta(minutes=5)


def import_job_create(
    *,
    file: IO[bytes] | File,
    file_name: str,
    kind: str,
    by: User | None,
    mapping: dict[str, str] | None = None,
    constants: dict[str, Any] | None = None,
    value_maps: dict[str, dict[str, Any]] | None = None,
    match_key: str = MatchKey.EMAIL,
    dry_run: bool = False,
    enqueue: bool = True,
    draft: bool = False,
    **options: Any,
) -> ImportJob:
    """Store the file, check that it reads and that the mapping fits it, and queue the
    job after commit (``enqueue``) on the bulk queue; a ``draft`` waits for its mapping
    and is started by ``imports.drafts.import_job_start``.

    Without a mapping the one suggested from the headers is used. ``options`` are the
    job's read and value options (``encoding``, ``delimiter``, ``sheet``, ``time_zone``,
    ``day_first``, ``decimal_comma``, ``phone_region``, ``create_new``,
    ``update_existing``, ``nurture``). Raises ``PermissionDenied``, ``ImportFileError`` or
    ``MappingError``; then nothing is stored.
    """
    import_permission_check(by)
    job = ImportJob(
        kind=kind,
        file_name=Path(file_name).name[:255] or "import",
        constants=constants or {},
        value_maps=value_maps or {},
        match_key=match_key,
        dry_run=dry_run,
        created_by=by,
        **options,
    )
    job.file.save(job.file_name, file if isinstance(file, File) else File(file), save=False)
    try:
        job.file_size = job.file.size
        with _open(job) as table:
            job.headers, job.file_format = table.headers, table.format
            job.encoding, job.delimiter = table.encoding or job.encoding, table.delimiter
        job.mapping = mapping if mapping is not None else suggest_mapping(kind, job.headers)
        cleaner_for(job)
        job.full_clean(exclude=["file", "mapping", "constants", "value_maps", "headers"])
    except BaseException:
        job.file.delete(save=False)
        raise
    if draft:
        job.status = ImportStatus.DRAFT
    else:
        job.queued_at = timezone.now()
    with transaction.atomic():
        job.save()
        if enqueue and not draft:
            transaction.on_commit(partial(import_job_request, job_id=job.pk))
    return job


def import_preview(
    *, job: ImportJob, rows: int = 20
) -> list[tuple[int, dict[str, Any], dict[str, str]]]:
    """The first rows as they will be stored: each row's number, values by field and
    errors by column. Reads only those rows."""
    cleaner = cleaner_for(job)
    preview = []
    with _open(job) as table:
        for row in table.rows():
            values, errors = cleaner.clean(row.as_dict(table.headers))
            preview.append((row.number, values, errors))
            if len(preview) >= rows:
                break
    return preview


@dataclass
class UnfitValues:
    """The words of one pick-list column that fit none of its values, each with how many
    of the rows read hold it: to map each onto a value (or to empty) before the import."""

    target: str
    label: str
    column: str
    choices: tuple[tuple[str, str], ...]
    values: list[tuple[str, int]] = field(default_factory=list)


def import_unfit_values(
    *, job: ImportJob, rows: int = 10_000, per_column: int = 25
) -> list[UnfitValues]:
    """For each mapped pick-list column (stage, source, industry, a custom choice
    field…), its distinct words in the first ``rows`` rows that neither a value, a
    label nor the job's value maps turn into one of its values; the commonest first."""
    cleaner = cleaner_for(job)
    columns = {
        header: cleaner.targets[target]
        for header, target in job.mapping.items()
        if target and cleaner.targets[target].choices
    }
    if not columns:
        return []
    counts: dict[str, Counter[str]] = {header: Counter() for header in columns}
    for header, raw in _filled_cells(job, list(columns), rows):
        try:
            cleaner.clean_cell(columns[header].name, raw)
        except CellError:
            counts[header][text_of(raw)] += 1
    return [
        UnfitValues(
            target=target.name,
            label=target.label,
            column=header,
            choices=target.choices,
            values=counts[header].most_common(per_column),
        )
        for header, target in columns.items()
        if counts[header]
    ]


def import_column_samples(
    *, job: ImportJob, headers: list[str], rows: int = 1000
) -> dict[str, list[Any]]:
    """The non-empty cells of ``headers`` in the file's first ``rows`` rows."""
    samples: dict[str, list[Any]] = {header: [] for header in headers}
    for header, value in _filled_cells(job, headers, rows):
        samples[header].append(value)
    return samples


def _filled_cells(job: ImportJob, headers: list[str], rows: int) -> Iterator[tuple[str, Any]]:
    """(header, cell) for each cell of ``headers`` in the first ``rows`` rows that holds
    something (not empty, not a placeholder such as "N/A")."""
    with _open(job) as table:
        for number, row in enumerate(table.rows()):
            if number >= rows:
                break
            cells = row.as_dict(table.headers)
            for header in headers:
                value = cells.get(header)
                if value is not None and not is_placeholder(value):
                    yield header, value


def import_job_request(*, job_id: int) -> bool:
    """Queue the job's run; call after commit. The job row is the outbox: a lost message
    is queued again by ``import_jobs_resume``."""
    return task_enqueue("imports.tasks.import_run", job_id, what=f"Import {job_id}")


def import_job_run(*, job_id: int, chunk_size: int | None = None) -> ImportJob | None:
    """Claim a queued job and run it to the end; None when it was not queued (another
    run has it, or it ran). Call outside a transaction."""
    now = timezone.now()
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportStatus.QUEUED).update(
        status=ImportStatus.RUNNING, started_at=now, progress_at=now
    )
    if not claimed:
        return None
    return _run(ImportJob.objects.get(pk=job_id), chunk_size)


def import_job_resume(*, job_id: int, chunk_size: int | None = None) -> ImportJob | None:
    """Go on with a job whose run stopped (a killed worker, a restart, a failure that
    has passed) after its last committed chunk; None when it is not running or failed."""
    claimed = ImportJob.objects.filter(
        pk=job_id, status__in=[ImportStatus.RUNNING, ImportStatus.FAILED]
    ).update(status=ImportStatus.RUNNING, error="", progress_at=timezone.now())
    if not claimed:
        return None
    return _run(ImportJob.objects.get(pk=job_id), chunk_size)


def import_jobs_resume(*, now: datetime | None = None) -> int:
    """Beat: queue again jobs whose message was lost (still queued) or whose run stalled
    (running, no chunk committed for a while); how many."""
    now = now or timezone.now()
    lost = ImportJob.objects.alias(queued=Coalesce("queued_at", "created_at")).filter(
        status=ImportStatus.QUEUED, queued__lt=now - QUEUED_LOST_AFTER
    )
    stalled = ImportJob.objects.filter(
        status=ImportStatus.RUNNING, progress_at__lt=now - STALLED_AFTER
    )
    count = sum(import_job_request(job_id=pk) for pk in lost.values_list("pk", flat=True)[:20])
    for pk in stalled.values_list("pk", flat=True)[:20]:
        count += task_enqueue("imports.tasks.import_resume", pk, what=f"Import {pk} resume")
    return count


def cleaner_for(job: ImportJob) -> RowCleaner:
    options = Options(
        time_zone=job.time_zone,
        day_first=job.day_first,
        decimal_comma=job.decimal_comma,
        phone_region=job.phone_region,
    )
    return RowCleaner(
        kind=job.kind,
        headers=list(job.headers),
        mapping=dict(job.mapping),
        constants=dict(job.constants),
        value_maps=dict(job.value_maps),
        options=options,
        match_key=job.match_key,
    )


def _open(job: ImportJob) -> Table:
    options = ReadOptions(encoding=job.encoding, delimiter=job.delimiter, sheet=job.sheet)
    return open_table(job.file.path, options=options)


def _run(job: ImportJob, chunk_size: int | None) -> ImportJob:
    size = chunk_size or settings.IMPORT_CHUNK_ROWS
    try:
        cleaner = cleaner_for(job)
        if job.total_rows is None:
            with _open(job) as table:
                job.total_rows = count_rows(table)
            ImportJob.objects.filter(pk=job.pk).update(total_rows=job.total_rows)
        with _open(job) as table:
            if table.headers != job.headers:
                raise ImportFileError("The file's columns are not the ones it was mapped with.")
            context = Context(user=job.created_by, match_key=job.match_key)
            for rows in _chunks(table.rows(), after=job.last_row, size=size):
                if not _commit_chunk(job, cleaner, context, rows):
                    return job
                job.last_row = rows[-1].number
        if not job.dry_run:
            lead_ids = _leads_to_score(job)
            if job.kind == ImportKind.ACTIVITIES:
                activity_spans_widen(lead_ids=lead_ids)
            leads_rescore_quietly(lead_ids=lead_ids)
        now = timezone.now()
        ImportJob.objects.filter(pk=job.pk, status=ImportStatus.RUNNING).update(
            status=ImportStatus.DONE, scored_at=now, finished_at=now, progress_at=now
        )
    except (ImportFileError, MappingError) as exc:
        _fail(job, str(exc))
    except Exception as exc:
        _fail(job, f"The import stopped: {exc!r}. Resume it once the cause is fixed.")
        raise
    job.refresh_from_db()
    return job


def _fail(job: ImportJob, message: str) -> None:
    log.warning("Import %s failed: %s", job.pk, message)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.FAILED, error=message[:2000], finished_at=timezone.now()
    )


def _chunks(rows: Iterator[Row], *, after: int, size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        if row.number <= after:
            continue
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _DryRun(Exception):
    """Rolls a dry run's writes back once they are counted."""


def _commit_chunk(job: ImportJob, cleaner: RowCleaner, context: Context, rows: list[Row]) -> bool:
    """Write one chunk and move the job past it, in one transaction; False when another
    run moved the job on meanwhile (this one then stops)."""
    outcome = ChunkOutcome(job_id=job.pk)
    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().get(pk=job.pk)
        if locked.status != ImportStatus.RUNNING or locked.last_row != job.last_row:
            return False
        prepared = _clean(rows, cleaner, outcome)
        writer = WRITERS[job.kind]
        if job.dry_run:
            try:
                with transaction.atomic():
                    writer(job=job, context=context, rows=prepared, outcome=outcome)
                    raise _DryRun
            except _DryRun:
                outcome.changes = []
        else:
            writer(job=job, context=context, rows=prepared, outcome=outcome)
        outcome.write()
        if not job.nurture:
            _hold_from_nurture(outcome.changes)
        counts = {name: F(name) + value for name, value in outcome.counts().items()}
        ImportJob.objects.filter(pk=job.pk).update(
            last_row=rows[-1].number,
            rows_done=F("rows_done") + len(rows),
            progress_at=timezone.now(),
            **counts,
        )
    return True


def _hold_from_nurture(changes: list[tuple[Any, ...]]) -> None:
    """Keep the leads this chunk created out of the hourly nurture sweep: historical
    records matching a sequence's criteria are no reason to email them now. ``changes``
    are the chunk's change records, as ``imports.chunks.CHANGE_COLUMNS``."""
    record = {name: index for index, name in enumerate(CHANGE_COLUMNS)}
    lead_ids = [
        change[record["object_id"]]
        for change in changes
        if change[record["object_type"]] == ObjectType.LEAD
        and change[record["action"]] == ChangeAction.CREATED
    ]
    auto_enroll_holds_add(lead_ids=lead_ids, reason="Imported history")


def _clean(rows: list[Row], cleaner: RowCleaner, outcome: ChunkOutcome) -> list[Prepared]:
    prepared = []
    for row in rows:
        if row.overflow:
            outcome.fail(
                row.number, row.values, "The row has more values than the file has columns."
            )
            continue
        values, errors = cleaner.clean(row.as_dict(cleaner.headers))
        if errors:
            reason = "; ".join(f"{column}: {message}" for column, message in errors.items())
            outcome.fail(row.number, row.values, reason)
            continue
        prepared.append(Prepared(row.number, row.values, values))
    return prepared


def _leads_to_score(job: ImportJob) -> list[int]:
    """The leads the job created or changed, or gave history to; for a companies import,
    the leads of the companies it created or changed (their fit may have moved)."""
    changes = ImportChange.objects.filter(job=job)
    ids = {i for i in changes.values_list("lead_id", flat=True).distinct() if i is not None}
    companies = changes.filter(object_type=ObjectType.COMPANY).values("object_id")
    if job.kind == ImportKind.COMPANIES:
        ids |= set(Lead.objects.filter(company_id__in=companies).values_list("pk", flat=True))
    return sorted(ids)


def import_error_rows(*, job: ImportJob) -> Iterator[str]:
    """The failed rows as CSV text, streamed: the file's columns as read, then the row's
    number and the reason. Fixed, the file can be imported again."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow([*job.headers, "Row", "Error"])
    yield flush()
    errors = job.row_errors.order_by("row").values_list("row", "values", "reason")
    for row, values, reason in errors.iterator(chunk_size=1000):
        writer.writerow([*_cells(values, len(job.headers)), row, reason])
        yield flush()


def _cells(values: Iterable[Any], width: int) -> list[Any]:
    cells = ["" if value is None else value for value in values]
    return (cells + [""] * width)[:width]

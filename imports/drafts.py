"""An import set up step by step, as the app's import page does it: a file uploaded as
a draft, its mapping chosen (or taken from one saved for the same source) and checked,
its first rows previewed, then started, as a dry run or for real. Also undo on request
and the sweep of drafts nobody finished.

A draft runs nothing and is not swept as a lost job; starting it is what queues it.
Mappings are saved per source (``ImportMapping``) and offered again for the next file
of that kind whose columns include the saved ones.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from crm.resilience import task_enqueue
from leads.models import CustomFieldDefinition, FieldType

from .mapping import CUSTOM_PREFIX, ImportKind, MappingError
from .models import ImportJob, ImportMapping, ImportStatus
from .normalize import CellError, clean_bool, clean_datetime, clean_decimal, clean_integer
from .permissions import import_permission_check
from .services import cleaner_for, import_column_samples, import_job_request
from .undo import import_undo_enqueue

if TYPE_CHECKING:
    from crm.models import User

# The options a mapping carries besides its columns, constants and value maps.
MAPPING_OPTIONS = (
    "time_zone",
    "day_first",
    "decimal_comma",
    "phone_region",
    "create_new",
    "update_existing",
    "nurture",
)
DRAFTS_KEPT = timedelta(days=7)
UNDO_LOST_AFTER = timedelta(minutes=5)


class DraftError(ValueError):
    """A job that is no longer a draft (started already) cannot be mapped or started."""


def _draft(job: ImportJob) -> ImportJob:
    locked = ImportJob.objects.select_for_update().get(pk=job.pk)
    if locked.status != ImportStatus.DRAFT:
        raise DraftError(f"Import {job.pk} was started already: it is {locked.status}.")
    return locked


def import_job_map(
    *,
    job: ImportJob,
    by: User | None,
    mapping: dict[str, str],
    constants: dict[str, Any] | None = None,
    value_maps: dict[str, dict[str, Any]] | None = None,
    match_key: str | None = None,
    **options: Any,
) -> ImportJob:
    """Give a draft its mapping, constants, value maps and options, checked against its
    columns. Raises ``MappingError`` (nothing changes) or ``DraftError``."""
    import_permission_check(by)
    unknown = sorted(set(options) - set(MAPPING_OPTIONS))
    if unknown:
        raise MappingError([f"Unknown option “{name}”." for name in unknown])
    with transaction.atomic():
        locked = _draft(job)
        locked.mapping = {header: target for header, target in mapping.items() if target}
        locked.constants = constants or {}
        locked.value_maps = value_maps or {}
        if match_key:
            locked.match_key = match_key
        for name, value in options.items():
            setattr(locked, name, value)
        cleaner_for(locked)
        locked.full_clean(exclude=["file", "mapping", "constants", "value_maps", "headers"])
        locked.save()
    return locked


def import_job_start(
    *, job: ImportJob, by: User | None, dry_run: bool = False, enqueue: bool = True
) -> ImportJob:
    """Queue a mapped draft on the bulk queue (or, without ``enqueue``, leave it queued
    for the caller to run), as a dry run (counts and errors, nothing stored) or for
    real. Raises ``MappingError`` when its mapping no longer fits (a custom field
    deleted meanwhile) or ``DraftError``."""
    import_permission_check(by)
    with transaction.atomic():
        locked = _draft(job)
        cleaner_for(locked)
        locked.dry_run = dry_run
        locked.status = ImportStatus.QUEUED
        locked.queued_at = timezone.now()
        locked.save(update_fields=["dry_run", "status", "queued_at"])
        if enqueue:
            transaction.on_commit(partial(import_job_request, job_id=locked.pk))
    return locked


def import_job_again(*, job: ImportJob, by: User | None) -> ImportJob:
    """A new draft of the same file with the same mapping and options: after a dry run,
    to import for real, or after a failure, to fix the mapping and run again. The file
    stored once serves both."""
    import_permission_check(by)
    copy = ImportJob(
        kind=job.kind,
        file=job.file.name,
        file_name=job.file_name,
        file_size=job.file_size,
        encoding=job.encoding,
        delimiter=job.delimiter,
        sheet=job.sheet,
        file_format=job.file_format,
        headers=job.headers,
        mapping=job.mapping,
        constants=job.constants,
        value_maps=job.value_maps,
        match_key=job.match_key,
        status=ImportStatus.DRAFT,
        created_by=by,
        **{name: getattr(job, name) for name in MAPPING_OPTIONS},
    )
    copy.save()
    return copy


def import_job_resume_request(*, job: ImportJob, by: User | None) -> bool:
    """Queue a failed import to go on after its last committed chunk, once the cause of
    the failure (a database down, a full disk) has passed."""
    import_permission_check(by)
    if job.status != ImportStatus.FAILED:
        raise DraftError(f"Only a failed import can be resumed; this one is {job.status}.")
    return task_enqueue("imports.tasks.import_resume", job.pk, what=f"Import {job.pk} resume")


def import_drafts_sweep(*, now: datetime | None = None) -> tuple[int, int]:
    """Beat: delete drafts nobody started within ``DRAFTS_KEPT`` (with their file when no
    other job shares it) and queue again undos whose message was lost; how many of each."""
    now = now or timezone.now()
    stale = ImportJob.objects.filter(status=ImportStatus.DRAFT, created_at__lt=now - DRAFTS_KEPT)
    purged = 0
    for job in stale[:100]:
        shared = ImportJob.objects.filter(file=job.file.name).exclude(pk=job.pk).exists()
        if not shared:
            job.file.delete(save=False)
        job.delete()
        purged += 1
    # An undo still going moves ``progress_at`` with each chunk.
    undos = ImportJob.objects.alias(
        last=Greatest("undo_requested_at", Coalesce("progress_at", "undo_requested_at"))
    ).filter(
        status__in=[ImportStatus.DONE, ImportStatus.FAILED],
        dry_run=False,
        undo_requested_at__isnull=False,
        last__lt=now - UNDO_LOST_AFTER,
    )
    requeued = 0
    for job_id, by_id in undos.values_list("pk", "undone_by_id")[:20]:
        requeued += import_undo_enqueue(job_id=job_id, by_id=by_id)
    return purged, requeued


def import_mappings_for(*, kind: str, headers: list[str]) -> list[ImportMapping]:
    """The saved mappings of ``kind`` whose mapped columns are all in ``headers``, the
    closest first (the most of the file's columns mapped, then the newest)."""
    present = set(headers)
    fitting = [
        saved
        for saved in ImportMapping.objects.filter(kind=kind)
        if saved.mapping and set(saved.mapping) <= present
    ]
    return sorted(fitting, key=lambda saved: (-len(saved.mapping), -saved.updated_at.timestamp()))


def import_mapping_apply(*, job: ImportJob, saved: ImportMapping, by: User | None) -> ImportJob:
    """Map a draft the way ``saved`` says (its columns absent from this file dropped)."""
    if saved.kind != job.kind:
        raise MappingError([f"“{saved.name}” maps {saved.get_kind_display().lower()}."])
    present = set(job.headers)
    options = {name: value for name, value in saved.options.items() if name in MAPPING_OPTIONS}
    return import_job_map(
        job=job,
        by=by,
        mapping={header: target for header, target in saved.mapping.items() if header in present},
        constants=saved.constants,
        value_maps=saved.value_maps,
        match_key=saved.match_key,
        **options,
    )


def import_mapping_save(*, job: ImportJob, name: str, by: User | None) -> ImportMapping:
    """Save the job's mapping under ``name`` for its kind (replacing one of that name)."""
    import_permission_check(by)
    name = name.strip()
    if not name:
        raise MappingError(["Name the source this mapping is for."])
    saved, _ = ImportMapping.objects.update_or_create(
        kind=job.kind,
        name=name[:100],
        defaults={
            "headers": job.headers,
            "mapping": job.mapping,
            "constants": job.constants,
            "value_maps": job.value_maps,
            "match_key": job.match_key,
            "options": {option: getattr(job, option) for option in MAPPING_OPTIONS},
            "created_by": by,
        },
    )
    return saved


def unidecode_ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def may_add_custom_fields(user: User | None) -> bool:
    """Whether ``user`` may define custom fields (the admin's permission for them)."""
    return user is None or user.has_perm("leads.add_customfielddefinition")


def import_custom_fields_create(
    *, job: ImportJob, headers: list[str], by: User | None
) -> dict[str, str]:
    """A new custom field for each of a leads import's ``headers``, labelled as the
    column and typed by its first 1,000 cells (whole numbers, numbers, yes/no, dates,
    else text); the mapping of each header to its field. Call inside a transaction
    that also maps the job, so a mapping that fails leaves no field behind."""
    import_permission_check(by)
    if not may_add_custom_fields(by):
        raise PermissionDenied("Only those who manage custom fields may add one.")
    if job.kind != ImportKind.LEADS:
        raise MappingError(["Custom fields are added by a leads import."])
    samples = import_column_samples(job=job, headers=headers)
    mapped = {}
    for header in headers:
        definition = CustomFieldDefinition(
            key=_free_key(header),
            label=(header.strip() or "Imported field")[:100],
            field_type=_inferred_type(samples[header], job),
            help_text=f"Added by import {job.pk} from the column “{header}”."[:200],
        )
        definition.full_clean()
        definition.save()
        mapped[header] = f"{CUSTOM_PREFIX}{definition.key}"
    return mapped


def _free_key(header: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "_", unidecode_ascii(header).casefold()).strip("_")
    base = (words if words[:1].isalpha() else f"field_{words}")[:40].rstrip("_") or "field"
    key, n = base, 2
    while CustomFieldDefinition.objects.filter(key=key).exists():
        key, n = f"{base}_{n}", n + 1
    return key


def _inferred_type(values: list[Any], job: ImportJob) -> str:
    """The narrowest type every sampled cell reads as."""
    if not values:
        return FieldType.TEXT

    def date(value: Any) -> Any:
        # "31.12.2020" reads as a number with thousands separators too: a date first,
        # but never from digits alone ("2020" is a number).
        if isinstance(value, str) and value.strip().isdigit():
            raise CellError("digits only")
        return clean_datetime(value, time_zone=job.time_zone, day_first=job.day_first)

    tests = [
        (FieldType.DATE, date),
        (FieldType.INTEGER, lambda v: clean_integer(v, decimal_comma=job.decimal_comma)),
        (FieldType.NUMBER, lambda v: clean_decimal(v, decimal_comma=job.decimal_comma)),
        (FieldType.BOOLEAN, clean_bool),
    ]
    for field_type, read in tests:
        try:
            for value in values:
                read(value)
        except (CellError, ValueError, ArithmeticError):
            continue
        return field_type
    return FieldType.TEXT

"""An import of a file, what each of its rows did, and the rows that failed.

``ImportJob`` is the job and its outbox: its row says what to read and how, how far the
run got (``last_row``, committed with each chunk's writes) and what it counted, so a
worker that dies mid-way is followed by one that resumes after the last committed chunk.
``ImportChange`` records every row the import created or changed, with the fields'
values before and after, which is what undo needs. ``ImportRowError`` keeps each failed
row's cells and reason, from which the error file is written. ``ImportMapping`` is a
mapping saved under a source's name ("Old CRM export", "Trade show list") to be used
again for the next file from that source.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.urls import reverse
from django.utils import timezone

from .mapping import ImportKind, MatchKey


class ImportStorage(FileSystemStorage):
    """Uploaded files under ``IMPORT_DIR`` (a setting), never under static or media.

    The directory is read from the settings at each use, not once when the model is
    loaded, so a changed setting (a test's temporary directory) takes effect."""

    @property
    def base_location(self) -> str:
        return str(settings.IMPORT_DIR)

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)


def import_storage() -> FileSystemStorage:
    return ImportStorage()


def upload_to(job: ImportJob, filename: str) -> str:
    return f"{timezone.now():%Y/%m}/{Path(filename).name}"


class ImportStatus(models.TextChoices):
    # Uploaded in the app and waiting for its mapping: nothing runs until it is started.
    DRAFT = "draft", "Being mapped"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    UNDONE = "undone", "Undone"


class ImportJob(models.Model):
    kind = models.CharField(max_length=20, choices=ImportKind.CHOICES)
    file = models.FileField(storage=import_storage, upload_to=upload_to, max_length=300)
    file_name = models.CharField(max_length=255, help_text="The name the file was uploaded as.")
    file_size = models.BigIntegerField(default=0)
    # Read options: empty means detected (what was detected is stored once read).
    encoding = models.CharField(max_length=40, blank=True)
    delimiter = models.CharField(max_length=1, blank=True)
    sheet = models.CharField(max_length=100, blank=True)
    file_format = models.CharField(max_length=10, blank=True)
    headers = models.JSONField(default=list, blank=True)

    mapping = models.JSONField(default=dict, help_text="Column header → field.")
    constants = models.JSONField(default=dict, blank=True, help_text="Field → value for every row.")
    value_maps = models.JSONField(
        default=dict, blank=True, help_text="Field → {value in the file → stored value}."
    )
    match_key = models.CharField(max_length=20, choices=MatchKey.CHOICES, default=MatchKey.EMAIL)
    time_zone = models.CharField(max_length=64, default="UTC")
    day_first = models.BooleanField(default=True, help_text="03/04/2024 is 3 April.")
    decimal_comma = models.BooleanField(default=False, help_text="1.234,50 is a thousand.")
    phone_region = models.CharField(max_length=2, blank=True)
    create_new = models.BooleanField(default=True, help_text="Create rows that match nothing.")
    update_existing = models.BooleanField(default=True, help_text="Update rows that match.")
    dry_run = models.BooleanField(default=False, help_text="Count and check; store nothing.")
    nurture = models.BooleanField(
        default=False,
        help_text="Let automatic nurture sequences enroll the leads it creates (historical "
        "records are otherwise held out of the hourly sweep).",
    )

    status = models.CharField(
        max_length=10, choices=ImportStatus.choices, default=ImportStatus.QUEUED
    )
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    rows_done = models.PositiveIntegerField(default=0)
    # The file's row number of the last row committed: a resumed run starts after it.
    last_row = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, help_text="Why the job failed, for the person.")

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    undo_requested_at = models.DateTimeField(null=True, blank=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    undo_report = models.JSONField(
        default=dict,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text="What undo left alone because it changed after the import.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "progress_at"], name="importjob_status_idx")]

    def __str__(self) -> str:
        return f"Import {self.pk}: {self.file_name} ({self.get_kind_display()})"

    def get_absolute_url(self) -> str:
        return reverse("admin:imports_importjob_change", args=[self.pk])

    @property
    def percent(self) -> int:
        if not self.total_rows:
            return 100 if self.status == ImportStatus.DONE else 0
        return min(100, round(100 * self.rows_done / self.total_rows))

    @property
    def rows_per_second(self) -> float | None:
        if not self.started_at or not self.progress_at or not self.rows_done:
            return None
        seconds = (self.progress_at - self.started_at).total_seconds()
        return self.rows_done / seconds if seconds > 0 else None

    @property
    def time_left(self) -> dt.timedelta | None:
        rate = self.rows_per_second
        if rate is None or self.total_rows is None or self.status != ImportStatus.RUNNING:
            return None
        return dt.timedelta(seconds=round(max(self.total_rows - self.rows_done, 0) / rate))

    @property
    def undoable(self) -> bool:
        return self.status in (ImportStatus.DONE, ImportStatus.FAILED) and not self.dry_run

    @property
    def undoing(self) -> bool:
        return self.undoable and self.undo_requested_at is not None

    def counts(self) -> dict[str, int]:
        return {
            name: getattr(self, name)
            for name in ("created", "updated", "unchanged", "skipped", "failed")
        }

    def summary(self) -> str:
        counts = ", ".join(f"{value} {name}" for name, value in self.counts().items())
        dry = " (dry run: nothing stored)" if self.dry_run else ""
        return f"Import {self.pk} {self.get_status_display().lower()}: {counts}{dry}"


class ChangeAction(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"


class ObjectType(models.TextChoices):
    LEAD = "lead", "Lead"
    COMPANY = "company", "Company"
    ACTIVITY = "activity", "Activity"
    DEAL = "deal", "Deal"
    STAGE_CHANGE = "stage_change", "Stage change"


class ImportChange(models.Model):
    """A row an import created or changed: undo deletes what it created and restores
    the ``before`` values of what it changed, where they still hold the ``after`` ones."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="changes")
    row = models.PositiveIntegerField()
    object_type = models.CharField(max_length=20, choices=ObjectType.choices)
    object_id = models.BigIntegerField()
    # The lead it concerns (the lead itself, or the activity's, deal's or stage change's),
    # which the import scores at the end.
    lead_id = models.BigIntegerField(null=True, blank=True)
    action = models.CharField(max_length=10, choices=ChangeAction.choices)
    before = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # Set in the transaction that undid it: an undo that stopped half-way resumes.
    undone = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["job", "undone", "id"], name="importchange_job_idx"),
            models.Index(fields=["object_type", "object_id"], name="importchange_object_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.object_type} {self.object_id}"


class ImportRowError(models.Model):
    """A row that could not be imported: its cells as read and the reason."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    row = models.PositiveIntegerField()
    values = models.JSONField(default=list, encoder=DjangoJSONEncoder)
    reason = models.TextField()

    class Meta:
        ordering = ["row"]
        constraints = [
            models.UniqueConstraint(fields=["job", "row"], name="importrowerror_unique_row")
        ]

    def __str__(self) -> str:
        return f"Row {self.row}: {self.reason}"

    def cells(self) -> list[Any]:
        return list(self.values)


class ImportMapping(models.Model):
    """A mapping saved for a source of files: the columns' fields, the constants, the
    value maps, the match key and how the source writes its values.

    A new file of the same kind whose columns include the saved mapping's is offered
    it first (``imports.services.import_mappings_for``).
    """

    name = models.CharField(max_length=100, help_text="The source, e.g. “Old CRM export”.")
    kind = models.CharField(max_length=20, choices=ImportKind.CHOICES)
    headers = models.JSONField(default=list, help_text="The columns of the file it was made for.")
    mapping = models.JSONField(default=dict, help_text="Column header → field.")
    constants = models.JSONField(default=dict, blank=True)
    value_maps = models.JSONField(default=dict, blank=True)
    match_key = models.CharField(max_length=20, choices=MatchKey.CHOICES, default=MatchKey.EMAIL)
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="time_zone, day_first, decimal_comma, phone_region, create_new, update_existing.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "name"], name="importmapping_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

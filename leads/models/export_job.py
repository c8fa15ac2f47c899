"""An export of a list of leads written by a worker to a file, then downloaded.

The row is the job and its outbox: it says who asked, for which list (the surface's
name and its query string, run again at run time within what the person then sees), in
which format and columns, and how far the writing got. A message lost while the broker
was down is queued again by beat's sweeper (``leads.export_jobs.export_jobs_sweep``).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone

# A job whose run stops this many times (killed workers) is given up.
EXPORT_ATTEMPTS_MAX = 3


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Being written"
    DONE = "done", "Ready"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


FINISHED = (ExportStatus.DONE, ExportStatus.FAILED, ExportStatus.EXPIRED)


class ExportJob(models.Model):
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    # Which list the query string is of: the surface that runs it again at run time
    # (``leads.export_jobs.export_source_register``).
    source = models.CharField(max_length=20)
    query = models.TextField(blank=True, help_text="The list's query string: filters and order.")
    file_format = models.CharField(max_length=10)
    columns = models.JSONField(default=list, help_text="The file's column names, in order.")

    status = models.CharField(
        max_length=10, choices=ExportStatus.choices, default=ExportStatus.QUEUED
    )
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    rows_written = models.PositiveIntegerField(default=0)
    file_name = models.CharField(max_length=200, blank=True, help_text="Relative to EXPORT_DIR.")
    file_size = models.BigIntegerField(default=0)
    error = models.TextField(blank=True, help_text="Why the job failed, for the person.")
    attempts = models.PositiveSmallIntegerField(default=0)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "queued_at"], name="exportjob_status_idx"),
            models.Index(fields=["requested_by", "-created_at"], name="exportjob_requester_idx"),
        ]

    def __str__(self) -> str:
        return f"Export {self.pk} ({self.file_format.upper()}, {self.get_status_display()})"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def percent(self) -> int:
        if self.status == ExportStatus.DONE:
            return 100
        if not self.total_rows:
            return 0
        return min(99, 100 * self.rows_written // self.total_rows)

    @property
    def path(self) -> Path | None:
        """Where the written file is; None before it is done and once it expired."""
        if self.status != ExportStatus.DONE or not self.file_name:
            return None
        return Path(settings.EXPORT_DIR) / self.file_name

    def download_name(self) -> str:
        """``leads-2025-03-01-0930.xlsx``: when it was asked for, in the site's time zone."""
        return f"leads-{timezone.localtime(self.created_at):%Y-%m-%d-%H%M}.{self.file_format}"

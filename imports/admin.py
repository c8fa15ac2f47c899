"""Imports in the admin: the jobs with their progress and counts, read-only, each job's
error file to download and an action that undoes finished imports; the mappings saved
per source. Seen by those who may import (``imports.permissions``)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from .models import ImportJob, ImportMapping
from .permissions import jobs_visible_to, may_import
from .services import import_error_rows
from .undo import UndoError, import_job_undo_request


class ImportPermissions:
    """Shown to those who may import (``imports.permissions.may_import``); nothing is
    added here, as jobs and mappings are made on the import page."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_import(request.user)  # type: ignore[arg-type]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_import(request.user)  # type: ignore[arg-type]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ImportJob)
class ImportJobAdmin(ImportPermissions, admin.ModelAdmin):
    list_display = (
        "id",
        "file_name",
        "kind",
        "status",
        "progress",
        "created",
        "updated",
        "unchanged",
        "skipped",
        "failed",
        "error_file",
        "created_by",
        "created_at",
    )
    list_filter = ("status", "kind", "dry_run")
    search_fields = ("file_name",)
    list_select_related = ("created_by",)
    actions = ["undo_imports"]
    readonly_fields = [
        field.name for field in ImportJob._meta.fields if field.name not in ("id",)
    ] + ["progress", "error_file"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return jobs_visible_to(request.user).select_related("created_by")  # type: ignore[arg-type]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_undo_permission(self, request: HttpRequest) -> bool:
        return may_import(request.user)  # type: ignore[arg-type]

    @admin.action(description="Undo the selected imports", permissions=["undo"])
    def undo_imports(self, request: HttpRequest, queryset: QuerySet[ImportJob]) -> None:
        """Queue the undo of each selected import; one that cannot be undone is named and
        leaves the others to go ahead."""
        queued = []
        for job in queryset.order_by("pk"):
            try:
                import_job_undo_request(job=job, by=request.user)  # type: ignore[arg-type]
            except UndoError as exc:
                self.message_user(request, f"Import {job.pk}: {exc}", messages.WARNING)
            else:
                queued.append(str(job.pk))
        if queued:
            self.message_user(
                request,
                f"Undo queued for import {', '.join(queued)}: what they created is removed and "
                "what they changed restored, except where it changed since.",
                messages.SUCCESS,
            )

    @admin.display(description="progress")
    def progress(self, job: ImportJob) -> str:
        if job.undoing:
            return "Undoing…"
        total = "?" if job.total_rows is None else f"{job.total_rows:,}"
        text = f"{job.rows_done:,} / {total} rows ({job.percent}%)"
        rate = job.rows_per_second
        if rate:
            text += f", {rate:,.0f} rows/s"
        left = job.time_left
        if left is not None:
            text += f", {left} left"
        return text

    @admin.display(description="error file")
    def error_file(self, job: ImportJob) -> str:
        if not job.failed:
            return "—"
        url = reverse("admin:imports_importjob_errors", args=[job.pk])
        return format_html('<a href="{}">{} failed rows (CSV)</a>', url, job.failed)

    def get_urls(self) -> list[URLPattern]:
        errors = path(
            "<int:job_id>/errors.csv",
            self.admin_site.admin_view(self.errors_view),
            name="imports_importjob_errors",
        )
        return [errors, *super().get_urls()]

    def errors_view(self, request: HttpRequest, job_id: int) -> StreamingHttpResponse:
        job = jobs_visible_to(request.user).filter(pk=job_id).first()  # type: ignore[arg-type]
        if job is None:
            raise PermissionDenied
        response = StreamingHttpResponse(import_error_rows(job=job), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
        return response


@admin.register(ImportMapping)
class ImportMappingAdmin(ImportPermissions, admin.ModelAdmin):
    """Mappings saved per source: renamed, corrected or deleted here; made on the import
    page from a file's columns."""

    list_display = ("name", "kind", "columns", "match_key", "created_by", "updated_at")
    list_filter = ("kind",)
    search_fields = ("name",)
    readonly_fields = ("kind", "headers", "created_by", "created_at", "updated_at")
    fields = (
        "name",
        "kind",
        "mapping",
        "constants",
        "value_maps",
        "match_key",
        "options",
        "headers",
        "created_by",
        "created_at",
        "updated_at",
    )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_import(request.user)  # type: ignore[arg-type]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_import(request.user)  # type: ignore[arg-type]

    @admin.display(description="columns mapped")
    def columns(self, saved: ImportMapping) -> int:
        return len(saved.mapping)

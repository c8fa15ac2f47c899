"""The admin of export jobs: read-only, the record of who exported what and when.

A person sees the jobs ``export_jobs_visible_to`` gives them (their own; an admin all);
the file is downloaded from the leads list's job page, where the same rule applies."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from crm.http import signed_in

from ..models import ExportJob, ExportStatus
from ..permissions import export_jobs_visible_to, may_export_leads


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "requested_by",
        "file_format",
        "source",
        "status",
        "rows_written",
        "total_rows",
        "created_at",
        "finished_at",
        "expires_at",
    )
    list_filter = ("status", "file_format", "source")
    list_select_related = ("requested_by",)
    search_fields = ("requested_by__username", "requested_by__email")
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in ExportJob._meta.fields] + ["percent", "download"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ExportJob]:
        return export_jobs_visible_to(signed_in(request)).select_related("requested_by")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_export_leads(signed_in(request))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_export_leads(signed_in(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="progress")
    def percent(self, job: ExportJob) -> str:
        return f"{job.percent} %"

    @admin.display(description="file")
    def download(self, job: ExportJob) -> str:
        if job.status != ExportStatus.DONE:
            return "—"
        url = reverse("lead-export-job-download", args=[job.pk])
        return format_html('<a href="{}">{}</a>', url, job.download_name())

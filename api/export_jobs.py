"""The REST API for export jobs: a large export of leads followed to its end and its file
downloaded.

``GET /api/v1/leads/export/?format=xlsx`` answers an XLSX of more than
``HOTLIST_EXPORT_INLINE_MAX`` leads with 202 and the job (``Location``: the job's URL),
and ``POST`` to the same address always does, for any format. The job runs the same
filters, search and ordering again at run time (``api.leads.leads_for_export``), within what the
caller then sees. ``GET /api/v1/export-jobs/<id>/`` follows it; ``links.download`` is
the file once written. Only the person who asked, and admins, see a job
(``leads.permissions.export_jobs_visible_to``); anyone else gets 404, and people who
do not export (reps) 403.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from api.errors import Conflict, ErrorSerializer, Gone
from api.negotiation import ExportNegotiation
from crm.models import User
from leads.export_responses import CONTENT_TYPES, CSV, XLSX, export_job_file_response
from leads.models import ExportJob, ExportStatus
from leads.permissions import EXPORT_REFUSED, export_jobs_visible_to, may_export_leads


class ExportJobLinksSerializer(serializers.Serializer):
    self = serializers.URLField()
    download = serializers.URLField(allow_null=True, help_text="Null until the file is written.")


class ExportJobSerializer(serializers.ModelSerializer):
    format = serializers.CharField(source="file_format", read_only=True)
    columns = serializers.ListField(child=serializers.CharField(), read_only=True)
    percent = serializers.IntegerField(read_only=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "status",
            "format",
            "columns",
            "total_rows",
            "rows_written",
            "percent",
            "file_size",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "expires_at",
            "links",
        ]
        read_only_fields = fields

    @extend_schema_field(ExportJobLinksSerializer)
    def get_links(self, job: ExportJob) -> dict[str, str | None]:
        def url(name: str) -> str:
            path = reverse(name, kwargs={"pk": job.pk})
            request = self.context.get("request")
            return request.build_absolute_uri(path) if request is not None else path

        ready = job.status == ExportStatus.DONE
        return {
            "self": url("api-export-job-detail"),
            "download": url("api-export-job-download") if ready else None,
        }


class MayExport(permissions.BasePermission):
    """``leads.permissions.may_export_leads``, the rule of every surface."""

    message = EXPORT_REFUSED

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return isinstance(user, User) and user.is_authenticated and may_export_leads(user)


NOT_VISIBLE = OpenApiResponse(
    ErrorSerializer, description="No such job, or asked for by someone else (admins see all)."
)
REFUSED = OpenApiResponse(ErrorSerializer, description="The caller's role does not export leads.")


@extend_schema(responses={200: ExportJobSerializer, 403: REFUSED, 404: NOT_VISIBLE})
class ExportJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Export jobs in the caller's view (``export_jobs_visible_to``), newest first."""

    serializer_class = ExportJobSerializer
    permission_classes = [permissions.IsAuthenticated, MayExport]
    filter_backends: list[Any] = []
    ordering = ("-id",)

    def get_queryset(self) -> QuerySet[ExportJob]:
        user = self.request.user
        if not isinstance(user, User):  # the schema generator looks without a user
            return ExportJob.objects.none()
        return export_jobs_visible_to(user).order_by("-id")

    @extend_schema(
        summary="Download an export job's file",
        description="The CSV or XLSX file the job wrote, streamed from disk, while it is "
        "kept (`expires_at`).",
        responses={
            (200, CONTENT_TYPES[CSV].split(";")[0]): OpenApiResponse(
                OpenApiTypes.BINARY, description="The CSV file, as an attachment."
            ),
            (200, CONTENT_TYPES[XLSX]): OpenApiResponse(
                OpenApiTypes.BINARY, description="The XLSX workbook, as an attachment."
            ),
            403: REFUSED,
            404: NOT_VISIBLE,
            409: OpenApiResponse(ErrorSerializer, description="The file is not written yet."),
            410: OpenApiResponse(
                ErrorSerializer, description="The file was deleted after its keeping time."
            ),
        },
    )
    @action(
        detail=True,
        methods=["get"],
        pagination_class=None,
        renderer_classes=[JSONRenderer],
        content_negotiation_class=ExportNegotiation,
    )
    def download(self, request: Request, pk: str | None = None) -> FileResponse:
        job = self.get_object()
        path = job.path
        if job.status == ExportStatus.EXPIRED:
            raise Gone("The file was deleted after its keeping time: export the leads again.")
        if path is None:
            raise Conflict(f"The file is not written yet (the job is {job.status}).")
        try:
            return export_job_file_response(
                path=path, filename=job.download_name(), file_format=job.file_format
            )
        except FileNotFoundError:
            raise NotFound("The file is missing: export the leads again.") from None

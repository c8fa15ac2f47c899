"""The REST API for imports: a file uploaded as a job, the job followed to its end, its
first rows previewed, its failed rows downloaded, and the whole import undone.

``POST /api/v1/imports/`` takes a CSV or XLSX file as ``multipart/form-data`` with the
kind of rows it holds and, optionally, the mapping of its columns (suggested from the
headers when absent), constants, value maps and read options. The job is checked before
it is stored, by ``imports.services.import_job_create`` as on every surface: a file
that cannot be read answers 400 on ``file``, a mapping that does not fit 400 on the
column (``mapping.<column>``) or field at fault, and nothing is kept. It then runs on
the bulk queue; ``GET /api/v1/imports/<id>/`` follows it. Who may is
``imports.permissions``: managers, marketers and admins import (reps and people without
a role answer 403), a manager sees their own jobs, marketers and admins every one; a job
out of view answers 404.
"""

from __future__ import annotations

import codecs
import datetime as dt
import decimal
import json
import zoneinfo
from functools import cache
from typing import Any

import django_filters
import phonenumbers
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from api.errors import Conflict, ErrorSerializer, PayloadTooLarge
from api.fields import caller
from api.filters import StrictFilterBackend
from api.negotiation import ExportNegotiation
from api.strict import StrictFieldsMixin, check_json_document
from crm.models import User
from imports.mapping import (
    ImportKind,
    MappingError,
    MatchKey,
    required_targets,
    targets_for,
)
from imports.models import ImportJob, ImportStatus
from imports.permissions import REFUSED, jobs_visible_to, may_import
from imports.reading import ImportFileError
from imports.services import import_error_rows, import_job_create, import_preview
from imports.undo import UndoError, import_job_undo_request, undo_refusal

# The form fields beside the file (a mapping, constants, value maps, options) take at
# most this much of a body; a body declaring more than the file limit and this answers
# 413 before it is read.
FORM_ALLOWANCE = 1024 * 1024
JSON_MAX_LENGTH = 64 * 1024
PREVIEW_ROWS, PREVIEW_MAX_ROWS = 20, 100
ERRORS_CONTENT_TYPE = "text/csv; charset=utf-8"
SCALAR = (str, int, float, bool, type(None))
NOT_SCALAR = "Give text, a number, true, false or null."
NOT_JSON_OBJECT = 'Give a JSON object as text, such as {"E-mail": "email"}.'
# Characters that cannot separate CSV cells: they end rows or quote cells.
NOT_DELIMITERS = "\r\n\"'"


@cache
def time_zones() -> frozenset[str]:
    """The IANA names this server's time zone data knows (read once: it reads files)."""
    return frozenset(zoneinfo.available_timezones() | {"UTC"})


# --- Requests --------------------------------------------------------------------------


@extend_schema_field(
    {
        "type": "string",
        "maxLength": JSON_MAX_LENGTH,
        "description": "A JSON object, as the text of the form field.",
    }
)
class JSONObjectText(serializers.Field):
    """A JSON object sent as the text of a form field: a multipart body holds text and
    files, so objects travel as JSON text, checked as the API checks any JSON."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, str):
            raise serializers.ValidationError(NOT_JSON_OBJECT)
        if len(data) > JSON_MAX_LENGTH:
            raise serializers.ValidationError(
                f"Keep this under {JSON_MAX_LENGTH:,} characters of JSON."
            )
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            raise serializers.ValidationError(NOT_JSON_OBJECT) from None
        if not isinstance(value, dict):
            raise serializers.ValidationError(NOT_JSON_OBJECT)
        check_json_document(value, max_depth=3, max_bytes=4 * JSON_MAX_LENGTH)
        return value

    def to_representation(self, value: Any) -> str:
        return json.dumps(value)


class ImportUploadSerializer(StrictFieldsMixin, serializers.Serializer):
    """A file to import and how to read it (``multipart/form-data``)."""

    file = serializers.FileField(
        allow_empty_file=True,
        use_url=False,
        help_text="The CSV or XLSX file; its first non-empty row is the header.",
    )
    kind = serializers.ChoiceField(
        choices=ImportKind.CHOICES,
        help_text="What each row is: leads, companies, activities or deals.",
    )
    mapping = JSONObjectText(
        required=False,
        help_text="Column header → field (`GET /api/v1/imports/fields/?kind=…` lists them), e.g. "
        '{"E-mail": "email", "Notes": ""}; an empty field leaves the column out. Suggested '
        "from the headers when absent (the answer's `mapping` shows what was used).",
    )
    constants = JSONObjectText(
        required=False,
        help_text='Field → a value for every row, e.g. {"source": "event"}; a cell of a mapped '
        "column wins when it has a value.",
    )
    value_maps = JSONObjectText(
        required=False,
        help_text='Field → {value in the file → value stored}, e.g. {"stage": {"Hot": "sql"}} '
        "(any case).",
    )
    match_key = serializers.ChoiceField(
        choices=MatchKey.CHOICES,
        default=MatchKey.EMAIL,
        help_text="How a row finds its lead: by email or by external id.",
    )
    encoding = serializers.CharField(
        max_length=40,
        required=False,
        allow_blank=True,
        default="",
        help_text="The CSV's encoding, e.g. cp1252; detected when empty.",
    )
    delimiter = serializers.CharField(
        max_length=1,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        default="",
        help_text="The CSV's delimiter, one character (a tab too); detected when empty.",
    )
    sheet = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        help_text="The XLSX sheet to read; the first when empty.",
    )
    time_zone = serializers.CharField(
        max_length=64,
        default="UTC",
        help_text="The IANA time zone of times written without an offset, e.g. Europe/Berlin.",
    )
    day_first = serializers.BooleanField(default=True, help_text="03/04/2024 is 3 April.")
    decimal_comma = serializers.BooleanField(default=False, help_text="1.234,50 is a thousand.")
    phone_region = serializers.CharField(
        max_length=2,
        required=False,
        allow_blank=True,
        default="",
        help_text="The region (ISO code, e.g. DE) of phone numbers written without a country "
        "code, when the row has no country.",
    )
    create_new = serializers.BooleanField(default=True, help_text="Create rows that match nothing.")
    update_existing = serializers.BooleanField(default=True, help_text="Update rows that match.")
    nurture = serializers.BooleanField(
        default=False,
        help_text="Let automatic nurture sequences enroll the leads it creates; otherwise "
        "imported history is held out of the hourly enrollment.",
    )
    dry_run = serializers.BooleanField(
        default=False, help_text="Check and count every row; store nothing but the job."
    )

    def validate_mapping(self, value: dict[str, Any]) -> dict[str, str]:
        wrong = [str(header) for header, name in value.items() if not isinstance(name, str)]
        if wrong:
            raise serializers.ValidationError(
                f"Map each column to a field's name, as text (“{wrong[0]}” is not)."
            )
        return value

    def validate_constants(self, value: dict[str, Any]) -> dict[str, Any]:
        if any(not isinstance(item, SCALAR) for item in value.values()):
            raise serializers.ValidationError(NOT_SCALAR)
        return value

    def validate_value_maps(self, value: dict[str, Any]) -> dict[str, dict[str, Any]]:
        for words in value.values():
            if not isinstance(words, dict):
                raise serializers.ValidationError(
                    'Give each field an object of values, e.g. {"stage": {"Hot": "sql"}}.'
                )
            if any(not isinstance(item, SCALAR) for item in words.values()):
                raise serializers.ValidationError(NOT_SCALAR)
        return value

    def validate_encoding(self, value: str) -> str:
        if value:
            try:
                codecs.lookup(value)
            except LookupError:
                raise serializers.ValidationError(
                    f"“{value}” is not an encoding this server knows."
                ) from None
        return value

    def validate_delimiter(self, value: str) -> str:
        if value and value in NOT_DELIMITERS:
            raise serializers.ValidationError("A line break or a quote cannot be the delimiter.")
        return value

    def validate_time_zone(self, value: str) -> str:
        if value not in time_zones():
            raise serializers.ValidationError(
                f"“{value}” is not a time zone; name one such as Europe/Berlin or UTC."
            )
        return value

    def validate_phone_region(self, value: str) -> str:
        region = value.upper()
        if region and region not in phonenumbers.SUPPORTED_REGIONS:
            raise serializers.ValidationError(f"“{value}” is not a region code, such as DE.")
        return region


class PreviewQuerySerializer(serializers.Serializer):
    rows = serializers.IntegerField(min_value=1, max_value=PREVIEW_MAX_ROWS, default=PREVIEW_ROWS)


class FieldsQuerySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ImportKind.CHOICES)
    match_key = serializers.ChoiceField(choices=MatchKey.CHOICES, default=MatchKey.EMAIL)


# --- Answers ---------------------------------------------------------------------------


@extend_schema_field({"type": "object", "additionalProperties": {}})
class AnyValues(serializers.DictField):
    """An object whose values may be anything JSON holds."""


class ImportCountsSerializer(serializers.Serializer):
    created = serializers.IntegerField(help_text="Rows that created a record.")
    updated = serializers.IntegerField(help_text="Rows that changed a record.")
    unchanged = serializers.IntegerField(help_text="Rows equal to what is stored.")
    skipped = serializers.IntegerField(help_text="Rows left out by create_new or update_existing.")
    failed = serializers.IntegerField(help_text="Rows that could not be imported (errors.csv).")


class ImportLinksSerializer(serializers.Serializer):
    self = serializers.CharField(help_text="This job.")
    preview = serializers.CharField(help_text="The first rows as they will be stored.")
    # DRF's metaclass takes declared fields off the class: Serializer.errors stays whole.
    errors = serializers.CharField(  # type: ignore[assignment]  # see above
        help_text="The failed rows as a CSV file."
    )
    undo = serializers.CharField(
        allow_null=True, help_text="Where to post an undo; null while the job cannot be undone."
    )


class UndoKeptSerializer(serializers.Serializer):
    row = serializers.IntegerField()
    type = serializers.CharField()
    id = serializers.IntegerField()
    why = serializers.CharField()


class UndoReportSerializer(serializers.Serializer):
    """What undo did; empty until an undo runs."""

    deleted = serializers.IntegerField(required=False)
    restored = serializers.IntegerField(required=False)
    kept_count = serializers.IntegerField(
        required=False, help_text="Records left alone as they changed since the import."
    )
    kept = UndoKeptSerializer(many=True, required=False, help_text="Up to 1,000 of them.")


class ImportJobSerializer(serializers.ModelSerializer):
    headers = serializers.ListField(child=serializers.CharField(), read_only=True)
    mapping = serializers.DictField(child=serializers.CharField(), read_only=True)
    constants = AnyValues(read_only=True)
    value_maps = AnyValues(read_only=True)
    counts = ImportCountsSerializer(source="*", read_only=True)
    percent = serializers.IntegerField(read_only=True)
    rows_per_second = serializers.SerializerMethodField()
    time_left = serializers.SerializerMethodField()
    undo_report = UndoReportSerializer(read_only=True)
    created_by: serializers.PrimaryKeyRelatedField[User] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="Who imported it (null: the command)."
    )
    undone_by: serializers.PrimaryKeyRelatedField[User] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    links = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = [
            "id",
            "status",
            "kind",
            "file_name",
            "file_size",
            "file_format",
            "headers",
            "mapping",
            "constants",
            "value_maps",
            "match_key",
            "encoding",
            "delimiter",
            "sheet",
            "time_zone",
            "day_first",
            "decimal_comma",
            "phone_region",
            "create_new",
            "update_existing",
            "nurture",
            "dry_run",
            "counts",
            "total_rows",
            "rows_done",
            "percent",
            "rows_per_second",
            "time_left",
            "error",
            "undo_report",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "undo_requested_at",
            "undone_at",
            "undone_by",
            "links",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_rows_per_second(self, job: ImportJob) -> float | None:
        rate = job.rows_per_second
        return None if rate is None else round(rate, 1)

    @extend_schema_field(
        serializers.IntegerField(
            allow_null=True, help_text="Seconds left, estimated; null unless running."
        )
    )
    def get_time_left(self, job: ImportJob) -> int | None:
        left = job.time_left
        return None if left is None else int(left.total_seconds())

    @extend_schema_field(ImportLinksSerializer)
    def get_links(self, job: ImportJob) -> dict[str, str | None]:
        def url(name: str) -> str:
            path = reverse(name, kwargs={"pk": job.pk})
            request = self.context.get("request")
            return request.build_absolute_uri(path) if request is not None else path

        return {
            "self": url("api-import-detail"),
            "preview": url("api-import-preview"),
            "errors": url("api-import-errors"),
            "undo": None if undo_refusal(job) else url("api-import-undo"),
        }


class PreviewRowSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="The row's number in the file (the header is 1).")
    values = AnyValues(help_text="Field → the value as it will be stored.")
    errors = serializers.DictField(  # type: ignore[assignment]  # as in ImportLinksSerializer
        child=serializers.CharField(), help_text="Column → why its cell cannot be stored."
    )


class ImportPreviewSerializer(serializers.Serializer):
    job = serializers.IntegerField()
    headers = serializers.ListField(child=serializers.CharField())
    mapping = serializers.DictField(child=serializers.CharField())
    rows = PreviewRowSerializer(many=True)


class ImportFieldSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="What a mapping names (custom:<key> for custom fields).")
    # Declared fields leave the class (DRF's metaclass): Field.label and .required stay.
    label = serializers.CharField()  # type: ignore[assignment]
    required = serializers.BooleanField(  # type: ignore[assignment]
        help_text="A column or a constant must fill it."
    )
    synonyms = serializers.ListField(
        child=serializers.CharField(), help_text="Headers it is suggested for, besides its name."
    )


class ImportFieldsSerializer(serializers.Serializer):
    kind = serializers.CharField()
    match_key = serializers.CharField()
    fields = ImportFieldSerializer(many=True)  # type: ignore[assignment]  # see api.errors


# --- The views -------------------------------------------------------------------------


class MayImport(permissions.BasePermission):
    """``imports.permissions.may_import``, the rule of every surface."""

    message = REFUSED

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not isinstance(user, User) or not user.is_authenticated:
            return False
        if not hasattr(view, (request.method or "").lower()):
            return True  # the view answers 405: no need to hide that behind a 403
        return may_import(user)


class ImportJobFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ImportStatus.choices)
    kind = django_filters.ChoiceFilter(choices=ImportKind.CHOICES)

    class Meta:
        model = ImportJob
        fields = ["status", "kind"]


JOB_NOT_VISIBLE = OpenApiResponse(ErrorSerializer, description="No such import among yours.")
REFUSED_RESPONSE = OpenApiResponse(
    ErrorSerializer, description="Only managers, marketers and admins import (reps: 403)."
)
UPLOAD_EXAMPLE = (
    'curl https://hotlist.example/api/v1/imports/ -H "Authorization: Bearer $KEY" '
    '-F file=@leads.csv -F kind=leads -F \'mapping={"E-mail": "email"}\''
)


@extend_schema_view(
    list=extend_schema(
        summary="List your imports, latest first (every import for marketers and admins)",
        responses={200: ImportJobSerializer(many=True), 403: REFUSED_RESPONSE},
    ),
    retrieve=extend_schema(
        summary="Show an import: its status, progress and counts",
        responses={200: ImportJobSerializer, 403: REFUSED_RESPONSE, 404: JOB_NOT_VISIBLE},
    ),
)
class ImportJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Import jobs in the caller's view (``jobs_visible_to``)."""

    serializer_class = ImportJobSerializer
    permission_classes = [MayImport]
    parser_classes = [MultiPartParser]
    filter_backends = [StrictFilterBackend]
    filterset_class = ImportJobFilter
    ordering = ("-id",)

    def get_queryset(self) -> QuerySet[ImportJob]:
        user = self.request.user
        if not isinstance(user, User):  # the schema generator looks without a user
            return ImportJob.objects.none()
        return jobs_visible_to(user).order_by("-id")

    @extend_schema(
        summary="Import a CSV or XLSX file of leads, companies, activities or deals",
        description="The file and its options as `multipart/form-data`; the job is checked, "
        "stored and queued, and answered at once (`status` queued): follow it at "
        "`links.self`. A dry run counts and checks every row and stores none. A file that "
        "cannot be read answers 400 on `file`; a mapping, constant or value map that does "
        "not fit answers 400 on what is at fault (`mapping.<column>`, `mapping` for a "
        "field no column fills, `constants.<field>`, `value_maps.<field>`); then nothing "
        f"is stored.\n\n`{UPLOAD_EXAMPLE}`",
        request={"multipart/form-data": ImportUploadSerializer},
        responses={
            201: ImportJobSerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                description="A file that cannot be read, a mapping that does not fit it, or "
                "invalid options; `fields` names each.",
            ),
            403: REFUSED_RESPONSE,
            413: OpenApiResponse(
                ErrorSerializer, description="The file is larger than IMPORT_MAX_FILE_BYTES."
            ),
            415: OpenApiResponse(
                ErrorSerializer, description="The body is not multipart/form-data."
            ),
        },
    )
    def create(self, request: Request) -> Response:
        upload = ImportUploadSerializer(data=_form_data(request))
        upload.is_valid(raise_exception=True)
        options = dict(upload.validated_data)
        file = options.pop("file")
        _refuse_larger_than_allowed(file.size)
        try:
            job = import_job_create(file=file, file_name=file.name, by=caller(request), **options)
        except ImportFileError as exc:
            raise serializers.ValidationError({"file": [str(exc)]}) from None
        except MappingError as exc:
            raise serializers.ValidationError(exc.fields) from None
        body = self.get_serializer(job).data
        return Response(
            body, status=status.HTTP_201_CREATED, headers={"Location": body["links"]["self"]}
        )

    @extend_schema(
        summary="Preview an import: its first rows as they will be stored, with each bad cell",
        parameters=[
            OpenApiParameter(
                "rows",
                {"type": "integer", "minimum": 1, "maximum": PREVIEW_MAX_ROWS},
                description=f"How many rows (default {PREVIEW_ROWS}).",
            )
        ],
        responses={
            200: ImportPreviewSerializer,
            400: OpenApiResponse(ErrorSerializer, description="`rows` out of range."),
            403: REFUSED_RESPONSE,
            404: JOB_NOT_VISIBLE,
            409: OpenApiResponse(
                ErrorSerializer,
                description="The file is no longer readable, or the mapping no longer fits "
                "(a custom field deleted since).",
            ),
        },
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def preview(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        asked = PreviewQuerySerializer(data=request.query_params)
        asked.is_valid(raise_exception=True)
        try:
            rows = import_preview(job=job, rows=asked.validated_data["rows"])
        except (ImportFileError, MappingError) as exc:
            raise Conflict(f"This import cannot be previewed now: {exc}") from None
        return Response(
            {
                "job": job.pk,
                "headers": job.headers,
                "mapping": job.mapping,
                "rows": [
                    {"row": number, "values": _plain(values), "errors": errors}
                    for number, values, errors in rows
                ],
            }
        )

    @extend_schema(
        summary="Download an import's failed rows as a CSV file",
        description="The file's columns as read, then `Row` (its number in the file) and "
        "`Error` (why). Fixed, the file can be imported again as it is. Streamed.",
        responses={
            (200, ERRORS_CONTENT_TYPE.split(";")[0]): OpenApiResponse(
                OpenApiTypes.BINARY, description="The failed rows, as an attachment."
            ),
            403: REFUSED_RESPONSE,
            404: JOB_NOT_VISIBLE,
        },
    )
    def errors(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        job = self.get_object()
        response = StreamingHttpResponse(
            import_error_rows(job=job), content_type=ERRORS_CONTENT_TYPE
        )
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
        return response

    @extend_schema(
        summary="Undo an import: what it created removed, what it changed restored",
        description="Recorded on the job (`undo_requested_at`), queued on the bulk queue and "
        "answered at once (202) with the job; `status` becomes undone when it is through, "
        "and `undo_report` lists what was left as it was because it changed after the "
        "import. A request made while the queue cannot be reached is kept and queued again "
        "by the beat. Asking again while an undo is on its way changes nothing.",
        request=None,
        responses={
            202: ImportJobSerializer,
            403: REFUSED_RESPONSE,
            404: JOB_NOT_VISIBLE,
            409: OpenApiResponse(
                ErrorSerializer,
                description="A dry run, an import undone already, or one still queued or running.",
            ),
        },
    )
    @action(detail=True, methods=["post"], pagination_class=None, filter_backends=[])
    def undo(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        try:
            import_job_undo_request(job=job, by=caller(request))
        except UndoError as exc:
            raise Conflict(str(exc)) from None
        job.refresh_from_db()
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="The fields a column can be mapped to, for a kind of import",
        parameters=[
            OpenApiParameter("kind", str, enum=[k for k, _ in ImportKind.CHOICES], required=True),
            OpenApiParameter(
                "match_key",
                str,
                enum=[k for k, _ in MatchKey.CHOICES],
                description="How rows find their lead (default email); it decides which key "
                "is required.",
            ),
        ],
        responses={
            200: ImportFieldsSerializer,
            400: OpenApiResponse(ErrorSerializer, description="No `kind`, or an unknown one."),
            403: REFUSED_RESPONSE,
        },
    )
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def fields(self, request: Request) -> Response:
        asked = FieldsQuerySerializer(data=request.query_params)
        asked.is_valid(raise_exception=True)
        kind, match_key = asked.validated_data["kind"], asked.validated_data["match_key"]
        required = set(required_targets(kind, match_key))
        fields = [
            {
                "name": target.name,
                "label": target.label,
                "required": target.name in required,
                "synonyms": list(target.synonyms),
            }
            for target in targets_for(kind).values()
        ]
        return Response({"kind": kind, "match_key": match_key, "fields": fields})


def error_file_view() -> Any:
    """``GET /api/v1/imports/<id>/errors.csv``: the view's ``errors``, answering JSON for
    its errors whatever the client accepts (the file is no renderer's)."""
    return ImportJobViewSet.as_view(
        {"get": "errors"},
        renderer_classes=[JSONRenderer],
        content_negotiation_class=ExportNegotiation,
    )


def _form_data(request: Request) -> Any:
    """The parsed body; a body over the limits answers 413 before it is read."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    limit = settings.IMPORT_MAX_FILE_BYTES
    if declared > limit + FORM_ALLOWANCE:
        raise PayloadTooLarge(
            f"The upload is {_megabytes(declared)}; files up to {_megabytes(limit)} can be "
            "imported."
        )
    try:
        return request.data
    except RequestDataTooBig:
        raise PayloadTooLarge("The form fields beside the file are too large.") from None
    except SuspiciousOperation:
        raise ParseError("The form data cannot be read.") from None


def _refuse_larger_than_allowed(size: int) -> None:
    limit = settings.IMPORT_MAX_FILE_BYTES
    if size > limit:
        raise PayloadTooLarge(
            f"The file is {_megabytes(size)}; files up to {_megabytes(limit)} can be imported."
        )


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:,.1f} MB"


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Values as the API answers them: amounts as text, times in ISO 8601."""
    out = {}
    for name, value in values.items():
        if isinstance(value, decimal.Decimal):
            value = str(value)
        elif isinstance(value, dt.datetime | dt.date):
            value = value.isoformat()
        out[name] = value
    return out

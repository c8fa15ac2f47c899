"""The REST API for leads: their profiles, stage moves, score explanations, exports and
merges.

Every queryset starts from ``Lead.objects.visible_to(user)``: a lead outside the
caller's view, and everything hanging off it, answers 404 as if it did not exist.
Writes go through the services of ``leads`` (``leads.profiles``, ``leads.stages``,
``leads.merging``) so scoring is queued after commit.

The id of a lead merged into another answers with a permanent redirect to the same
path on the surviving lead (301 for reads, 308, which keeps the method and body, for
writes), when the caller can see the survivor. A lead created with likely duplicates
in the caller's view answers with them in ``possible_duplicates`` (and their ids in the
``Possible-Duplicates`` header): a warning, never a refusal.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.http import Http404, HttpRequest, QueryDict
from django.http.response import HttpResponseBase
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from api.errors import Conflict, ErrorSerializer
from api.export_jobs import ExportJobSerializer
from api.fields import request_user
from api.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from api.merges import (
    OTHERS_PATTERN,
    LeadMergeSerializer,
    MergePreviewSerializer,
    MergeRequestSerializer,
    check_may_merge,
    merge_error,
    others_of,
)
from api.negotiation import ExportNegotiation
from api.strict import StrictFieldsMixin, check_json_document
from api.viewsets import RecordViewSet
from crm.models import User
from leads.duplicates import LikelyDuplicate, lead_duplicates, reason_text
from leads.export_jobs import ExportQueryError, export_job_create, export_needs_job
from leads.export_responses import CONTENT_TYPES, CSV, EXPORT_FORMATS, XLSX, leads_export_response
from leads.exports import CUSTOM_PREFIX, UnknownColumn, export_columns, lead_column_names
from leads.filters import LeadFilter
from leads.merging import MergeError, lead_alias_target, leads_merge, merge_preview
from leads.models import (
    SCORE_COLUMNS,
    Company,
    CustomFieldDefinition,
    Lead,
    ProductLine,
    Stage,
    StageTransitionError,
    normalize_email,
)
from leads.permissions import (
    EMAIL_UNAVAILABLE,
    EXPORT_REFUSED,
    OWNER_REFUSED,
    default_owner,
    email_in_use,
    lead_access,
    may_export_leads,
    may_own,
)
from leads.profiles import email_error, lead_save_profile
from leads.stages import lead_move_to_stage
from scoring.explanation import lead_explanation
from scoring.selectors import lead_predictive_score, predictive_score_joined
from scoring.snapshots import score_before, scores_before
from scoring.trend import TREND_DAYS, Trend, score_trend

CUSTOM_FIELDS_MAX_BYTES = 16 * 1024
EMAIL_CONFLICT = "The email address belongs to a lead the caller cannot see (nothing more is told)"
EMAIL_CONFLICT_RESPONSE = OpenApiResponse(ErrorSerializer, description=f"{EMAIL_CONFLICT}.")
CREATE_CONFLICT_RESPONSE = OpenApiResponse(
    ErrorSerializer,
    description=f"{EMAIL_CONFLICT}, or the Idempotency-Key was used for another request "
    "or is in use.",
)


EMAIL_MAX_LENGTH = Lead._meta.get_field("email").max_length


@extend_schema_field({"type": "string", "format": "email", "maxLength": EMAIL_MAX_LENGTH})
class LeadEmailField(serializers.EmailField):
    """An address refused or taken as on every surface, in the same words
    (``email_error``: Django's ``validate_email`` and the column's length); the schema
    still says ``format: email`` and the length."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=EMAIL_MAX_LENGTH, **kwargs)
        self.validators = []

    def to_internal_value(self, data: Any) -> str:
        email = normalize_email(super().to_internal_value(data))
        problem = email_error(email)
        if problem:
            raise serializers.ValidationError(problem)
        return email


class LeadSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    email = LeadEmailField()
    company = serializers.PrimaryKeyRelatedField(
        queryset=Company.objects.all(), allow_null=True, required=False
    )
    # A method, not ``source="company.name"``: on a partial update DRF skips a dotted
    # source whose company is null, and the answer would lack the field.
    company_name = serializers.SerializerMethodField()
    owner = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True),
        allow_null=True,
        required=False,
        help_text="A user id, or null for the unassigned pool. Reps may assign only "
        "themselves, managers the members of their teams.",
    )
    product_interests = serializers.SlugRelatedField(
        slug_field="slug", many=True, queryset=ProductLine.objects.all(), required=False
    )
    full_name = serializers.CharField(read_only=True)
    score_trend = serializers.SerializerMethodField(
        help_text=f"The score over the last {TREND_DAYS} days: rising or falling when it "
        "moved by at least 5 points and 10 % of the score then, steady otherwise, new "
        f"when the lead had no score {TREND_DAYS} days ago."
    )

    predictive_score = serializers.SerializerMethodField(
        help_text="The live predictive model's chance, 0 to 100, that the lead converts, in "
        "its primary scoring model; null while no predictive model is live."
    )

    class Meta:
        model = Lead
        fields = [
            "id",
            "first_name",
            "last_name",
            "full_name",
            "email",
            "phone",
            "job_title",
            "seniority",
            "department",
            "company",
            "company_name",
            "country",
            "region",
            "city",
            "source",
            "campaign",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_term",
            "utm_content",
            "product_interests",
            "budget",
            "authority",
            "need",
            "timeline",
            "owner",
            "stage",
            "stage_changed_at",
            "disqualification_reason",
            "email_status",
            "custom_fields",
            *SCORE_COLUMNS,
            "score_trend",
            "predictive_score",
            "created_at",
            "updated_at",
            "first_activity_at",
            "last_activity_at",
        ]
        read_only_fields = [
            "stage",
            "stage_changed_at",
            "disqualification_reason",
            "email_status",
            *SCORE_COLUMNS,
            "created_at",
            "updated_at",
            "first_activity_at",
            "last_activity_at",
        ]

    @extend_schema_field(serializers.ChoiceField(choices=Trend.choices))
    def get_score_trend(self, lead: Lead) -> str:
        """From the lists' annotation (``LeadViewSet.get_queryset``); a lead just saved
        has none and is looked up."""
        if hasattr(lead, "score_before"):
            before = lead.score_before
        else:
            before = scores_before(lead_ids=[lead.pk], now=timezone.now()).get(lead.pk)
        return score_trend(lead.score, before).value

    @extend_schema_field(serializers.IntegerField(min_value=0, max_value=100, allow_null=True))
    def get_predictive_score(self, lead: Lead) -> int | None:
        """From the lists' annotation; a lead just saved has none and is looked up."""
        if hasattr(lead, "predictive"):
            return lead.predictive
        return lead_predictive_score(lead=lead)

    def get_company_name(self, lead: Lead) -> str | None:
        return lead.company.name if lead.company else None

    def validate_email(self, value: str) -> str:
        """An address held by a lead the caller cannot see answers the same bare
        conflict as a concurrent create's, which tells nothing about that lead."""
        email = normalize_email(value)
        why = email_in_use(user=request_user(self), email=email, lead=self.instance)
        if why == EMAIL_UNAVAILABLE:
            raise Conflict(why)
        if why:
            raise serializers.ValidationError(why)
        return email

    def validate_owner(self, value: User | None) -> User | None:
        current = self.instance.owner if self.instance is not None else None
        if not may_own(user=request_user(self), owner=value, current=current):
            raise serializers.ValidationError(OWNER_REFUSED)
        return value

    def validate_custom_fields(self, value: Any) -> dict[str, Any]:
        check_json_document(value, max_depth=3, max_bytes=CUSTOM_FIELDS_MAX_BYTES)
        try:
            return CustomFieldDefinition.clean_values(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None

    def validate_country(self, value: str) -> str:
        return value.upper()


class TransitionSerializer(StrictFieldsMixin, serializers.Serializer):
    stage = serializers.ChoiceField(choices=Stage.choices)
    reason = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        default="",
        help_text="Why; required when the lead is disqualified, and when a manager makes "
        "a lead a customer without a won deal (anyone else wins one of its deals).",
    )


class ScoreLineSerializer(serializers.Serializer):
    rule_id = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()
    kind = serializers.CharField(
        help_text="fit, engagement or manual (ledger entries); base, idle or cap (the "
        "model's formula: its base score, the idle-week penalty, a cap)"
    )
    times = serializers.IntegerField(help_text="How many ledger entries the line sums.")
    points = serializers.FloatField(help_text="Points as awarded.")
    value_now = serializers.FloatField(help_text="Points after decay, now.")


class ScoreModelRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    primary = serializers.BooleanField(help_text="This model gives the lead's score.")
    warm_from = serializers.IntegerField(help_text="Scores from here up are warm.")
    hot_from = serializers.IntegerField(help_text="Scores from here up are hot.")


class ScorePointSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    score = serializers.IntegerField()


class ModelExplanationSerializer(serializers.Serializer):
    model = ScoreModelRefSerializer()
    score = serializers.IntegerField(help_text="The lines, positive and negative, add up to it.")
    base_score = serializers.IntegerField(help_text="What every lead of the model starts from.")
    fit_cap = serializers.IntegerField(
        allow_null=True, help_text="Fit counts up to this; null: no cap."
    )
    engagement_cap = serializers.IntegerField(
        allow_null=True, help_text="Engagement counts up to this; null: no cap."
    )
    fit = serializers.FloatField(help_text="Fit as it counts in the score (up to its cap).")
    engagement = serializers.FloatField(
        help_text="Engagement as it counts in the score: decayed, net of the idle penalty, "
        "up to its cap."
    )
    band = serializers.CharField()
    grade = serializers.CharField()
    quadrant = serializers.CharField()
    decay_applied = serializers.FloatField(
        help_text="Engagement points lost to decay so far (the idle penalty is a line)."
    )
    positive = ScoreLineSerializer(many=True)
    negative = ScoreLineSerializer(many=True)
    history = ScorePointSerializer(many=True, help_text="The score over time, oldest first.")


class ScoreExplanationSerializer(serializers.Serializer):
    lead_id = serializers.IntegerField()
    score = serializers.IntegerField()
    band = serializers.CharField()
    grade = serializers.CharField()
    quadrant = serializers.CharField()
    trend = serializers.ChoiceField(
        choices=Trend.choices, help_text=f"The score over the last {TREND_DAYS} days."
    )
    trend_text = serializers.CharField(help_text='The trend in words: "Rising: 32 7 days ago".')
    score_before = serializers.IntegerField(
        allow_null=True, help_text=f"The score {TREND_DAYS} days ago; null when there was none."
    )
    models = ModelExplanationSerializer(many=True)


COLUMNS_MAX_LENGTH = 4000


class ExportQuerySerializer(serializers.Serializer):
    """What an export asks for besides the list's filters: the file's format and columns."""

    format = serializers.ChoiceField(choices=EXPORT_FORMATS, default=CSV)
    columns = serializers.CharField(
        required=False, allow_blank=True, max_length=COLUMNS_MAX_LENGTH, trim_whitespace=True
    )

    def validate_columns(self, value: str) -> list[str] | None:
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names:
            return None
        try:
            export_columns(names)
        except UnknownColumn as exc:
            raise serializers.ValidationError(str(exc)) from None
        return names


EXPORT_INVALID_RESPONSE = OpenApiResponse(
    ErrorSerializer, description="Invalid filters, format or columns; `fields` names each."
)
EXPORT_REFUSED_RESPONSE = OpenApiResponse(
    ErrorSerializer,
    description="The caller's role does not export leads (reps, people without a role).",
)
# The export jobs' name for this list (``leads.export_jobs``): ``leads_for_export``.
EXPORT_SOURCE = "api"
EXPORT_QUERY_INVALID = "The export's filters are no longer valid"

EXPORT_PARAMETERS = [
    OpenApiParameter(
        "format",
        OpenApiTypes.STR,
        enum=list(EXPORT_FORMATS),
        default=CSV,
        description="csv (UTF-8 with a byte order mark) or xlsx.",
    ),
    OpenApiParameter(
        "columns",
        {
            "type": "array",
            "items": {
                "type": "string",
                "anyOf": [
                    {"enum": list(lead_column_names())},
                    {"pattern": rf"^{re.escape(CUSTOM_PREFIX)}[a-z][a-z0-9_]*$"},
                ],
            },
        },
        style="form",
        explode=False,
        description="The columns to write, comma-separated, in this order; every column "
        "when absent. custom.<key> names a custom field that is defined (400 otherwise).",
    ),
]
DUPLICATES_HEADER = "Possible-Duplicates"
DUPLICATES_HEADER_PARAMETER = OpenApiParameter(
    DUPLICATES_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[201],
    description="Ids of likely duplicates of the new lead that the caller can see, "
    "separated by commas (absent when there are none). A warning: the lead is created.",
)


class DuplicateReasonSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["email", "phone", "name_company"],
        help_text="email: the same mailbox; phone: the same number in E.164; "
        "name_company: names alike at one company.",
    )
    score = serializers.FloatField(help_text="How sure this evidence is, 0 to 1.")


class PossibleDuplicateSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="lead.pk", help_text="The likely duplicate's id.")
    score = serializers.FloatField(help_text="How sure, 0 to 1: the surest reason's.")
    reasons = DuplicateReasonSerializer(many=True)
    evidence = serializers.SerializerMethodField(help_text='In words: "same phone".')

    def get_evidence(self, found: LikelyDuplicate) -> str:
        return "; ".join(reason_text(reason) for reason in found.reasons)


class LeadCreatedSerializer(LeadSerializer):
    """The answer to a create: the lead, and the likely duplicates the caller can see."""

    possible_duplicates = PossibleDuplicateSerializer(
        many=True,
        read_only=True,
        help_text="Leads in your view that look like the new one, surest first (at most "
        "5; empty when none): a warning, the lead is created. The pairs wait in the "
        "review queue.",
    )

    class Meta(LeadSerializer.Meta):
        fields = [*LeadSerializer.Meta.fields, "possible_duplicates"]


class LeadMoved(Exception):
    """The requested id is a lead merged into ``survivor_id``."""

    def __init__(self, survivor_id: int) -> None:
        super().__init__(survivor_id)
        self.survivor_id = survivor_id


@extend_schema_view(
    list=extend_schema(summary="List the leads you can see, hottest first"),
    retrieve=extend_schema(summary="Show a lead"),
    create=extend_schema(
        summary="Create a lead",
        description="Likely duplicates of the new lead in your view are named in "
        "`possible_duplicates` (and the `Possible-Duplicates` header); a create is never "
        "refused for them.",
        parameters=[IDEMPOTENCY_KEY_PARAMETER, DUPLICATES_HEADER_PARAMETER],
        request=LeadSerializer,
        responses={201: LeadCreatedSerializer, 409: CREATE_CONFLICT_RESPONSE},
    ),
    update=extend_schema(
        summary="Replace a lead's profile",
        responses={200: LeadSerializer, 409: EMAIL_CONFLICT_RESPONSE},
    ),
    partial_update=extend_schema(
        summary="Change some fields of a lead's profile",
        responses={200: LeadSerializer, 409: EMAIL_CONFLICT_RESPONSE},
    ),
)
class LeadViewSet(RecordViewSet):
    """Leads, through ``visible_to``: one outside the caller's view answers 404."""

    serializer_class = LeadSerializer
    filterset_class = LeadFilter
    search_fields = ["first_name", "last_name", "email", "company__name"]
    ordering_fields = ["score", "predictive_score", "created_at", "updated_at", "last_name"]
    ordering = ("-score", "-id")
    # Sorted by the copy of the score in the lead's rank, which its indexes hold
    # (``Lead.ranked``); an annotation, as the cursor pages read it from each row.
    # The predictive score is the primary score row's, joined (``predictive_score_joined``)
    # so that its index gives the pages' order.
    ordering_columns = {"score": "rank_score", "predictive_score": "predictive"}
    # Leads without a predictive score come last in either direction.
    ordering_nulls_last = ("predictive",)
    permission_action = {"transition": "change", "merge": "change"}

    def get_queryset(self) -> QuerySet[Lead]:
        user = self.request.user
        if not isinstance(user, User):  # the schema generator looks without a user
            return Lead.objects.none()
        return (
            Lead.objects.ranked()
            .visible_to(user)
            .annotate(
                rank_score=F("rank__score"),
                score_before=score_before(timezone.now()),
                **_predictive_joined(),
            )
            .select_related("company")
            .prefetch_related("product_interests")
        )

    def get_object(self) -> Lead:
        """The lead, or ``LeadMoved`` when the id is an alias of a lead in view."""
        try:
            return super().get_object()
        except Http404:
            pk = str(self.kwargs.get("pk", ""))
            survivor = lead_alias_target(int(pk)) if pk.isdigit() else None
            if survivor is not None and self.get_queryset().filter(pk=survivor).exists():
                raise LeadMoved(survivor) from None
            raise

    def handle_exception(self, exc: Exception) -> Response:
        if not isinstance(exc, LeadMoved):
            return super().handle_exception(exc)
        old = f"/leads/{self.kwargs['pk']}/"
        path = self.request.get_full_path().replace(old, f"/leads/{exc.survivor_id}/", 1)
        code = 301 if self.request.method in ("GET", "HEAD", "OPTIONS") else 308
        return Response(status=code, headers={"Location": path})

    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The created lead with its likely duplicates, inside the ``Idempotency-Key``
        transaction, so that a replay answers the same warning."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.perform_create(serializer)
        lead = serializer.instance
        if not isinstance(lead, Lead):
            raise TypeError("A create makes a lead.")
        found = lead_duplicates(lead=lead, user=self.caller)
        duplicates = PossibleDuplicateSerializer(found, many=True).data
        data = {**serializer.data, "possible_duplicates": duplicates}
        headers = self.get_success_headers(data)
        if found:
            headers[DUPLICATES_HEADER] = ", ".join(str(d.lead.pk) for d in found)
        return Response(data, status=201, headers=headers)

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        data = dict(serializer.validated_data)
        interests = data.pop("product_interests", None)
        owner = default_owner(self.caller)
        if "owner" not in data and owner is not None:
            data["owner"] = owner
        with _email_taken_as_field_error(), transaction.atomic():
            lead = lead_save_profile(lead=Lead(**data), changed_fields=sorted(data))
            if interests is not None:
                lead.product_interests.set(interests)
        serializer.instance = lead

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        lead = serializer.instance
        if not isinstance(lead, Lead):
            raise TypeError("An update changes a lead.")
        data = dict(serializer.validated_data)
        interests = data.pop("product_interests", None)
        changed = [name for name, value in data.items() if getattr(lead, name) != value]
        if interests is not None and set(interests) != set(lead.product_interests.all()):
            changed.append("product_interests")
        for name, value in data.items():
            setattr(lead, name, value)
        with _email_taken_as_field_error(), transaction.atomic():
            lead_save_profile(lead=lead, changed_fields=changed)
            if interests is not None:
                lead.product_interests.set(interests)

    @extend_schema(
        summary="Why the lead has its score, and its score over time",
        responses={200: ScoreExplanationSerializer},
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def score(self, request: Request, pk: str | None = None) -> Response:
        lead = self.get_object()
        return Response(lead_explanation(lead=lead, history=True))

    @extend_schema(
        methods=["GET"],
        summary="Download the leads you can see as a CSV or XLSX file",
        operation_id="leads_export",
        description="Every lead that `GET /leads/` lists for the same filters, search and "
        "ordering, in that order, streamed without pages. An XLSX of more than "
        "`HOTLIST_EXPORT_INLINE_MAX` leads is written in the background instead: the "
        "answer is 202 with the export job (`Location`: the job; its `links.download` "
        "once written). Managers, marketers and admins export; reps are refused (403).",
        parameters=EXPORT_PARAMETERS,
        filters=True,
        responses={
            (200, CONTENT_TYPES[CSV].split(";")[0]): OpenApiResponse(
                OpenApiTypes.BINARY, description="The CSV file, as an attachment."
            ),
            (200, CONTENT_TYPES[XLSX]): OpenApiResponse(
                OpenApiTypes.BINARY, description="The XLSX workbook, as an attachment."
            ),
            (202, "application/json"): OpenApiResponse(
                ExportJobSerializer, description="Too many leads to answer at once: the job."
            ),
            400: EXPORT_INVALID_RESPONSE,
            403: EXPORT_REFUSED_RESPONSE,
        },
    )
    @extend_schema(
        methods=["POST"],
        summary="Export the leads you can see in the background",
        operation_id="leads_export_job_create",
        description="The file `GET /leads/export/` would answer for the same query string, "
        "written on the bulk queue whatever its size: answered at once (202) with the job "
        "(`Location`). The filters run again when the job runs, within what the caller then "
        "sees. The same export asked for while the first is queued or running answers "
        "that job.",
        parameters=EXPORT_PARAMETERS,
        filters=True,
        request=None,
        responses={
            (202, "application/json"): ExportJobSerializer,
            400: EXPORT_INVALID_RESPONSE,
            403: EXPORT_REFUSED_RESPONSE,
        },
    )
    @action(
        detail=False,
        methods=["get", "post"],
        pagination_class=None,
        renderer_classes=[JSONRenderer],
        content_negotiation_class=ExportNegotiation,
    )
    def export(self, request: Request, format: str | None = None) -> HttpResponseBase:
        if not may_export_leads(self.caller):
            raise PermissionDenied(EXPORT_REFUSED)
        query = request.query_params.copy()
        if "format" not in query and self.format_kwarg:  # leads/export.xlsx
            query["format"] = self.format_kwarg
        asked = ExportQuerySerializer(data=query)
        asked.is_valid(raise_exception=True)
        leads = self.filter_queryset(self.get_queryset())
        file_format = asked.validated_data["format"]
        columns = export_columns(asked.validated_data.get("columns"))
        if request.method == "POST" or export_needs_job(leads=leads, file_format=file_format):
            job = export_job_create(
                by=self.caller,
                source=EXPORT_SOURCE,
                query=query.urlencode(),
                columns=[column.name for column in columns],
                file_format=file_format,
            )
            body = ExportJobSerializer(job, context=self.get_serializer_context()).data
            return Response(
                body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["links"]["self"]}
            )
        return leads_export_response(leads=leads, columns=columns, file_format=file_format)

    @extend_schema(
        summary="Move the lead to another stage",
        request=TransitionSerializer,
        responses={
            200: LeadSerializer,
            403: OpenApiResponse(
                ErrorSerializer,
                description="Only the lead's owner, their manager or an admin moves it; an "
                "unassigned lead is taken first (as on the lead page).",
            ),
            409: OpenApiResponse(ErrorSerializer, description="The lifecycle refuses the move."),
        },
    )
    @action(detail=True, methods=["post"], pagination_class=None, filter_backends=[])
    def transition(self, request: Request, pk: str | None = None) -> Response:
        lead = self.get_object()
        refusal = lead_access(lead=lead, user=self.caller).refusal
        if refusal:
            raise PermissionDenied(refusal)
        move = TransitionSerializer(data=request.data)
        move.is_valid(raise_exception=True)
        try:
            lead_move_to_stage(lead_id=lead.pk, by=self.caller, **move.validated_data)
        except Lead.DoesNotExist:
            raise Conflict("The lead was deleted meanwhile.") from None
        except StageTransitionError as exc:
            raise Conflict(exc.messages[0]) from None
        lead.refresh_from_db()
        return Response(self.get_serializer(lead).data)

    @extend_schema(
        methods=["GET"],
        summary="Preview a merge: the fields on which the leads differ",
        parameters=[
            OpenApiParameter(
                "others",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                required=True,
                pattern=OTHERS_PATTERN,
                allow_blank=False,
                description="The ids of the leads to merge into this one, separated by commas.",
            )
        ],
        responses={
            200: MergePreviewSerializer,
            400: OpenApiResponse(ErrorSerializer, description="This lead among the others."),
            403: OpenApiResponse(ErrorSerializer, description="The caller may not merge."),
            404: OpenApiResponse(
                ErrorSerializer, description="This lead, or one of the others, is not in view."
            ),
        },
    )
    @extend_schema(
        methods=["POST"],
        summary="Merge other leads into this one, which keeps its id",
        request=MergeRequestSerializer,
        responses={
            200: LeadMergeSerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                description="This lead among the others, or a field's value from a lead "
                "outside the merge.",
            ),
            403: OpenApiResponse(
                ErrorSerializer,
                description="Managers merge the leads they can change; marketers and admins "
                "any; reps none.",
            ),
            404: OpenApiResponse(
                ErrorSerializer, description="This lead, or one of the others, is not in view."
            ),
        },
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None, filter_backends=[])
    def merge(self, request: Request, pk: str | None = None) -> Response:
        survivor = self.get_object()
        if request.method == "GET":
            others = list(dict.fromkeys(others_of(request)))
            check_may_merge(self.caller, survivor, others, self.get_queryset())
            if survivor.pk in others:
                raise merge_error(MergeError("A lead cannot be merged into itself."))
            leads = self.get_queryset().in_bulk(others)
            conflicts = merge_preview(survivor, [leads[pk] for pk in others])
            return Response({"survivor": survivor.pk, "others": others, "conflicts": conflicts})
        body = MergeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        others = body.validated_data["others"]
        check_may_merge(self.caller, survivor, others, self.get_queryset())
        try:
            merge = leads_merge(
                survivor_id=survivor.pk,
                others=others,
                fields=body.validated_data["fields"],
                by=self.caller,
            )
        except MergeError as exc:
            raise merge_error(exc) from None
        return Response(LeadMergeSerializer(merge).data)


@contextmanager
def _email_taken_as_field_error() -> Iterator[None]:
    """The unique email constraint, hit by a concurrent request: the lead that won may be
    one the caller cannot see, so the answer says nothing about it."""
    try:
        yield
    except IntegrityError as exc:
        if "email" not in str(exc).lower():
            raise
        raise Conflict(EMAIL_UNAVAILABLE) from exc


def _predictive_joined() -> dict[str, Any]:
    """``predictive_score_joined`` with the score under the name the ordering uses."""
    *joins, (_, score) = predictive_score_joined().items()
    return {**dict(joins), "predictive": score}


def leads_for_export(user: User, query: QueryDict) -> QuerySet[Lead]:
    """The leads ``GET /api/v1/leads/`` lists ``user`` for ``query`` (filters, search and
    ordering), without pages: what an export job asked through the API writes, run again
    when the job runs (the export source ``api`` of ``leads.export_jobs``)."""
    http = HttpRequest()
    http.method = "GET"
    http.GET = QueryDict(query.urlencode())
    request = Request(http)
    request.user = user
    view = LeadViewSet(request=request, args=(), kwargs={}, format_kwarg=None, action="export")
    try:
        return view.filter_queryset(view.get_queryset())
    except ValidationError as exc:
        raise ExportQueryError(f"{EXPORT_QUERY_INVALID}: {exc.detail}.") from None

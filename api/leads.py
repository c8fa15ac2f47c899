"""The REST API for leads, companies, activities, deals, tasks and notes.

Every queryset starts from ``Lead.objects.visible_to(user)``: a lead outside the
caller's view, and everything hanging off it, answers 404 as if it did not exist.
Writes go through ``leads.services`` so scoring is queued after commit.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import ISO_8601, mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from api.errors import Conflict, ErrorSerializer, PayloadTooLarge
from api.filters import IntegerFilter, IsoDateTimeFilter
from api.idempotency import idempotent
from api.strict import StrictFieldsMixin, check_json_document
from api.viewsets import RecordViewSet
from crm.models import User
from leads.activity_times import ActivityTimeError, activity_time
from leads.models import (
    Activity,
    ActivityType,
    Band,
    Company,
    CustomFieldDefinition,
    Deal,
    DealStatus,
    Grade,
    Lead,
    Note,
    ProductLine,
    Quadrant,
    Source,
    Stage,
    StageTransitionError,
    Task,
    normalize_email,
)
from leads.permissions import (
    ASSIGNEE_REFUSED,
    COMPANY_REFUSED,
    EMAIL_UNAVAILABLE,
    OWNER_REFUSED,
    default_owner,
    email_in_use,
    may_assign_task,
    may_change_company,
    may_own,
    tasks_visible_to,
)
from leads.services import activities_record_many, lead_move_to_stage, lead_save_profile
from scoring.selectors import lead_explanation

BULK_MAX = 1000
PROPERTIES_MAX_DEPTH = 10
PROPERTIES_MAX_BYTES = 16 * 1024
CUSTOM_FIELDS_MAX_BYTES = 16 * 1024
LEAD_NOT_VISIBLE = "There is no lead {pk_value} that you can see."
EMAIL_CONFLICT = "The email address belongs to a lead the caller cannot see (nothing more is told)"
EMAIL_CONFLICT_RESPONSE = OpenApiResponse(ErrorSerializer, description=f"{EMAIL_CONFLICT}.")
CREATE_CONFLICT_RESPONSE = OpenApiResponse(
    ErrorSerializer,
    description=f"{EMAIL_CONFLICT}, or the Idempotency-Key was used for another request "
    "or is in use.",
)


def _user(serializer: serializers.Serializer) -> User:
    return serializer.context["request"].user


MAX_ID = 2**63 - 1


def _is_id(value: Any) -> bool:
    """A whole number the database can hold as an id (larger ones overflow its driver)."""
    try:
        number = int(str(value))
    except ValueError:
        return False
    return 1 <= number <= MAX_ID


class VisibleLeadField(serializers.PrimaryKeyRelatedField):
    """A lead id, accepted only when the caller can see that lead."""

    default_error_messages = {"does_not_exist": LEAD_NOT_VISIBLE}

    def get_queryset(self) -> QuerySet[Lead]:
        return Lead.objects.visible_to(self.context["request"].user)

    def to_internal_value(self, data: Any) -> Lead:
        if not isinstance(data, bool) and isinstance(data, int | str) and not _is_id(data):
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)


# --- Companies -------------------------------------------------------------------------


class CompanySerializer(StrictFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = Company
        fields = [
            "id",
            "name",
            "domain",
            "industry",
            "employee_count",
            "annual_revenue",
            "country",
            "region",
            "city",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def validate_domain(self, value: str) -> str:
        domain = value.strip().lower()
        others = Company.objects.filter(domain__iexact=domain).exclude(
            pk=getattr(self.instance, "pk", None)
        )
        if domain and others.exists():
            raise serializers.ValidationError("A company with this domain exists already.")
        return domain

    def validate_country(self, value: str) -> str:
        return value.upper()


class CompanyChangePermission(permissions.BasePermission):
    message = COMPANY_REFUSED

    def has_object_permission(self, request: Request, view: Any, obj: Company) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return may_change_company(user=request.user, company=obj)


class CompanyFilter(django_filters.FilterSet):
    class Meta:
        model = Company
        fields = ["industry", "country"]


@extend_schema_view(
    list=extend_schema(summary="List companies"),
    retrieve=extend_schema(summary="Show a company"),
    create=extend_schema(summary="Create a company"),
    update=extend_schema(summary="Replace a company"),
    partial_update=extend_schema(summary="Change some fields of a company"),
)
class CompanyViewSet(RecordViewSet):
    """Companies are read by everyone with a role; a change is refused (403) to a rep or
    manager while the company carries a lead they cannot see (``may_change_company``)."""

    permission_classes = [*api_settings.DEFAULT_PERMISSION_CLASSES, CompanyChangePermission]
    serializer_class = CompanySerializer
    filterset_class = CompanyFilter
    search_fields = ["name", "domain"]
    ordering_fields = ["name", "created_at"]
    ordering = ("name", "id")

    def get_queryset(self) -> QuerySet[Company]:
        return Company.objects.all()


# --- Leads -------------------------------------------------------------------------------


class LeadSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    email = serializers.EmailField(max_length=254)
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
            "score",
            "fit_score",
            "engagement_score",
            "band",
            "grade",
            "quadrant",
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
            "score",
            "fit_score",
            "engagement_score",
            "band",
            "grade",
            "quadrant",
            "created_at",
            "updated_at",
            "first_activity_at",
            "last_activity_at",
        ]

    def get_company_name(self, lead: Lead) -> str | None:
        return lead.company.name if lead.company else None

    def validate_email(self, value: str) -> str:
        """An address held by a lead the caller cannot see answers the same bare
        conflict as a concurrent create's, which tells nothing about that lead."""
        email = normalize_email(value)
        why = email_in_use(user=_user(self), email=email, lead=self.instance)
        if why == EMAIL_UNAVAILABLE:
            raise Conflict(why)
        if why:
            raise serializers.ValidationError(why)
        return email

    def validate_owner(self, value: User | None) -> User | None:
        current = self.instance.owner if self.instance is not None else None
        if not may_own(user=_user(self), owner=value, current=current):
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
        help_text="Why; required when the lead is disqualified.",
    )


class ScoreLineSerializer(serializers.Serializer):
    rule_id = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()
    kind = serializers.CharField(help_text="fit, engagement or manual")
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
    score = serializers.IntegerField()
    fit = serializers.FloatField()
    engagement = serializers.FloatField()
    band = serializers.CharField()
    grade = serializers.CharField()
    quadrant = serializers.CharField()
    decay_applied = serializers.FloatField(help_text="Engagement points lost to decay so far.")
    positive = ScoreLineSerializer(many=True)
    negative = ScoreLineSerializer(many=True)
    history = ScorePointSerializer(many=True, help_text="The score over time, oldest first.")


class ScoreExplanationSerializer(serializers.Serializer):
    lead_id = serializers.IntegerField()
    score = serializers.IntegerField()
    band = serializers.CharField()
    grade = serializers.CharField()
    quadrant = serializers.CharField()
    models = ModelExplanationSerializer(many=True)


CURRENCY = r"^[A-Za-z]{3}$"
# A user id of at most 18 digits fits the id column; a longer one would fail in the query.
OWNER_FILTER = r"^(me|unassigned|[0-9]{1,18})$"


def _owner_value(value: str) -> None:
    if not re.fullmatch(OWNER_FILTER, value):
        raise DjangoValidationError("Use me, unassigned or a user id.")


class LeadFilter(django_filters.FilterSet):
    stage = django_filters.ChoiceFilter(choices=Stage.choices)
    owner = django_filters.CharFilter(
        method="filter_owner",
        validators=[_owner_value],
        help_text="`me`, `unassigned`, or a user id.",
    )
    band = django_filters.ChoiceFilter(choices=Band.choices)
    grade = django_filters.ChoiceFilter(choices=Grade.choices)
    quadrant = django_filters.ChoiceFilter(choices=Quadrant.choices)
    source = django_filters.ChoiceFilter(choices=Source.choices)
    score_min = IntegerFilter(
        field_name="score", lookup_expr="gte", min_value=-(10**6), max_value=10**6
    )
    score_max = IntegerFilter(
        field_name="score", lookup_expr="lte", min_value=-(10**6), max_value=10**6
    )
    product_interest = django_filters.CharFilter(
        field_name="product_interests__slug", help_text="A product line's slug."
    )
    updated_since = IsoDateTimeFilter(
        field_name="updated_at", lookup_expr="gte", help_text="ISO 8601 date and time."
    )

    class Meta:
        model = Lead
        fields: list[str] = []

    @extend_schema_field(
        {"type": "string", "pattern": OWNER_FILTER, "description": "me, unassigned or a user id."}
    )
    def filter_owner(self, queryset: QuerySet[Lead], name: str, value: str) -> QuerySet[Lead]:
        if value == "me":
            return queryset.filter(owner=self.request.user)
        if value == "unassigned":
            return queryset.filter(owner__isnull=True)
        return queryset.filter(owner_id=int(value))


@extend_schema_view(
    list=extend_schema(summary="List the leads you can see, hottest first"),
    retrieve=extend_schema(summary="Show a lead"),
    create=extend_schema(
        summary="Create a lead",
        responses={201: LeadSerializer, 409: CREATE_CONFLICT_RESPONSE},
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
    ordering_fields = ["score", "created_at", "updated_at", "last_name"]
    ordering = ("-score", "-id")
    permission_action = {"transition": "change"}

    def get_queryset(self) -> QuerySet[Lead]:
        return (
            Lead.objects.visible_to(self.request.user)
            .select_related("company")
            .prefetch_related("product_interests")
        )

    def perform_create(self, serializer: serializers.Serializer) -> None:
        data = dict(serializer.validated_data)
        interests = data.pop("product_interests", None)
        owner = default_owner(self.request.user)
        if "owner" not in data and owner is not None:
            data["owner"] = owner
        with _email_taken_as_field_error(), transaction.atomic():
            lead = lead_save_profile(lead=Lead(**data), changed_fields=sorted(data))
            if interests is not None:
                lead.product_interests.set(interests)
        serializer.instance = lead

    def perform_update(self, serializer: serializers.Serializer) -> None:
        lead = serializer.instance
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
        summary="Move the lead to another stage",
        request=TransitionSerializer,
        responses={
            200: LeadSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The lifecycle refuses the move."),
        },
    )
    @action(detail=True, methods=["post"], pagination_class=None, filter_backends=[])
    def transition(self, request: Request, pk: str | None = None) -> Response:
        lead = self.get_object()
        move = TransitionSerializer(data=request.data)
        move.is_valid(raise_exception=True)
        try:
            lead_move_to_stage(lead_id=lead.pk, by=request.user, **move.validated_data)
        except Lead.DoesNotExist:
            raise Conflict("The lead was deleted meanwhile.") from None
        except StageTransitionError as exc:
            raise Conflict(exc.messages[0]) from None
        lead.refresh_from_db()
        return Response(self.get_serializer(lead).data)


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


# --- Activities --------------------------------------------------------------------------


class ActivityFieldsMixin(serializers.Serializer):
    """Checks shared by one activity and the items of a batch."""

    def validate_properties(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Give the properties as an object.")
        check_json_document(value, max_depth=PROPERTIES_MAX_DEPTH, max_bytes=PROPERTIES_MAX_BYTES)
        return value

    def validate_occurred_at(self, value: dt.datetime) -> dt.datetime:
        try:
            return activity_time(value, received_at=timezone.now())
        except ActivityTimeError as exc:
            raise serializers.ValidationError(str(exc)) from None


ACTIVITY_FIELDS = [
    "id",
    "lead",
    "type",
    "url",
    "duration_seconds",
    "properties",
    "occurred_at",
    "received_at",
    "source",
    "idempotency_key",
    "created_by",
    "scored_at",
]
ACTIVITY_READ_ONLY = ["received_at", "created_by", "scored_at"]


class ActivitySerializer(StrictFieldsMixin, ActivityFieldsMixin, serializers.ModelSerializer):
    lead = VisibleLeadField()
    source = serializers.CharField(max_length=50, default="api")

    class Meta:
        model = Activity
        fields = ACTIVITY_FIELDS
        read_only_fields = ACTIVITY_READ_ONLY
        # A key stored before is answered with the stored activity, not refused.
        validators: list[Any] = []


class BatchLeadField(serializers.IntegerField):
    """A visible lead's id in a batch: the batch's leads are loaded in one query."""

    default_error_messages = {"does_not_exist": LEAD_NOT_VISIBLE}

    def to_internal_value(self, data: Any) -> Lead:
        pk = super().to_internal_value(data)
        lead = self._visible_leads().get(pk) if _is_id(pk) else None
        if lead is None:
            self.fail("does_not_exist", pk_value=pk)
        return lead

    def _visible_leads(self) -> dict[int, Lead]:
        root = self.root
        if not hasattr(root, "visible_leads"):
            items = root.initial_data.get("activities") or []
            wanted = {
                int(item["lead"])
                for item in items
                if isinstance(item, dict) and _is_id(item.get("lead", ""))
            }
            user = root.context["request"].user
            root.visible_leads = Lead.objects.visible_to(user).in_bulk(wanted)
        return root.visible_leads


class BulkActivityItemSerializer(
    StrictFieldsMixin, ActivityFieldsMixin, serializers.ModelSerializer
):
    lead = BatchLeadField(help_text="The id of a lead you can see.")
    source = serializers.CharField(max_length=50, default="api")

    class Meta:
        model = Activity
        fields = [f for f in ACTIVITY_FIELDS if f not in ("id", *ACTIVITY_READ_ONLY)]
        # A key stored before is answered with the stored activity, not refused.
        validators: list[Any] = []


class BulkActivitySerializer(StrictFieldsMixin, serializers.Serializer):
    activities = BulkActivityItemSerializer(
        many=True, allow_empty=False, help_text=f"Up to {BULK_MAX} activities."
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        """A batch whose items are all plainly valid is checked in one pass (``PlainBatch``);
        any other goes through the fields, which name every bad item and convert the
        values a plain check leaves alone. Both give the same validated items, except
        that a plain item names its lead by ``lead_id`` rather than a loaded ``lead``."""
        user = self.context["request"].user
        items = PlainBatch(self.fields["activities"].child.fields).items(data, user=user)
        if items is not None:
            return {"activities": items}
        return super().to_internal_value(data)

    def validate_activities(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        errors = {
            index: {"idempotency_key": [f"Repeats the idempotency key of item {first}."]}
            for index, first in _repeated_keys(items).items()
        }
        if errors:
            raise serializers.ValidationError(errors)
        return items


def _repeated_keys(items: list[dict[str, Any]]) -> dict[int, int]:
    """The positions of items whose (source, idempotency key) an earlier item has, each
    with the position of that first item."""
    repeated: dict[int, int] = {}
    first_with_key: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        key = item.get("idempotency_key")
        if not key:
            continue
        first = first_with_key.setdefault((item["source"], key), index)
        if first != index:
            repeated[index] = first
    return repeated


PLAIN_TEXT_FIELDS = ("url", "source", "idempotency_key")


class PlainBatch:
    """The check of a bulk body whose every item is plainly valid, without the per-item
    field machinery: about a tenth of its cost for a batch of 1,000.

    "Plainly valid" is narrower than valid: the lead a visible id as a JSON integer, the
    type one of the choices, texts as JSON strings, the duration an integer or null,
    properties an object, the time an ISO 8601 string, no unknown field, no repeated
    idempotency key. Such an item gives exactly what the fields give (texts stripped,
    the time in the current time zone, ``source`` defaulting to ``api``). Whatever is
    not plainly valid, including every error, is left to the fields, so the answers to
    bad input are theirs alone. Limits are read from the item serializer's fields.
    """

    def __init__(self, fields: dict[str, serializers.Field]) -> None:
        self.names = frozenset(fields)
        self.types = frozenset(fields["type"].choice_strings_to_values)
        self.text_limits = {name: fields[name].max_length for name in PLAIN_TEXT_FIELDS}
        self.text_blank = {name: fields[name].allow_blank for name in PLAIN_TEXT_FIELDS}
        self.source_default = fields["source"].default
        self.duration_max = fields["duration_seconds"].max_value
        occurred_at = fields["occurred_at"]
        # The field reads ISO 8601 alone (the default) and gives times in this zone.
        formats = getattr(occurred_at, "input_formats", api_settings.DATETIME_INPUT_FORMATS)
        self.iso_only = formats == [ISO_8601]
        self.zone = getattr(occurred_at, "timezone", None) or occurred_at.default_timezone()

    def items(self, data: Any, *, user: User) -> list[dict[str, Any]] | None:
        """The validated items, or None when the batch needs the fields' word."""
        if type(data) is not dict or data.keys() != {"activities"}:
            return None
        raw = data["activities"]
        if type(raw) is not list or not raw or not all(type(item) is dict for item in raw):
            return None
        wanted = {lead for item in raw if type(lead := item.get("lead")) is int and _is_id(lead)}
        visible = set(
            Lead.objects.visible_to(user).filter(pk__in=wanted).values_list("pk", flat=True)
        )
        received_at = timezone.now()
        items = []
        for item in raw:
            clean = self._item(item, visible, received_at)
            if clean is None:
                return None
            items.append(clean)
        return None if _repeated_keys(items) else items

    def _item(self, item: dict[str, Any], visible: set[int], received_at: dt.datetime) -> Any:
        lead, kind = item.get("lead"), item.get("type")
        if not item.keys() <= self.names or type(lead) is not int or lead not in visible:
            return None
        if type(kind) is not str or kind not in self.types:
            return None
        clean: dict[str, Any] = {"lead_id": lead, "type": kind, "source": self.source_default}
        for name in PLAIN_TEXT_FIELDS:
            if name in item:
                clean[name] = self._text(name, item[name])
                if clean[name] is None:
                    return None
        if "duration_seconds" in item:
            duration = clean["duration_seconds"] = item["duration_seconds"]
            if duration is not None and not (
                type(duration) is int and 0 <= duration <= self.duration_max
            ):
                return None
        if "properties" in item:
            clean["properties"] = item["properties"]
            if not _plain_properties(item["properties"]):
                return None
        if "occurred_at" in item:
            clean["occurred_at"] = self._time(item["occurred_at"], received_at)
            if clean["occurred_at"] is None:
                return None
        return clean

    def _text(self, name: str, value: Any) -> str | None:
        if type(value) is not str:
            return None
        value = value.strip()
        if len(value) > self.text_limits[name] or (not value and not self.text_blank[name]):
            return None
        if "\x00" in value or not (value.isascii() or _encodable(value)):
            return None
        return value

    def _time(self, value: Any, received_at: dt.datetime) -> dt.datetime | None:
        """An ISO 8601 time with its offset, as the field reads it (a time without an
        offset is left to the field, which places it in the current zone), within
        ``activity_time``'s bounds and moved back as it moves it."""
        if type(value) is not str or not self.iso_only or self.zone is None:
            return None
        try:
            at = parse_datetime(value)
            if at is None or at.utcoffset() is None:
                return None
            at = at.astimezone(self.zone)
            return activity_time(at, received_at=received_at)
        except (ValueError, TypeError, OverflowError):
            return None


def _plain_properties(value: Any) -> bool:
    if type(value) is not dict:
        return False
    try:
        check_json_document(value, max_depth=PROPERTIES_MAX_DEPTH, max_bytes=PROPERTIES_MAX_BYTES)
    except serializers.ValidationError:
        return False
    return True


def _encodable(text: str) -> bool:
    """Whether UTF-8 can hold the text (a lone surrogate cannot be stored)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class BulkActivityResultSerializer(serializers.Serializer):
    created = serializers.IntegerField(help_text="How many activities were stored.")
    duplicates = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="The positions of the items whose (source, idempotency key) was stored "
        "before: they were not stored again.",
    )
    ids = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="The activity id of each item, in order; a repeated idempotency key "
        "gives the id stored the first time.",
    )


class ActivityFilter(django_filters.FilterSet):
    lead = IntegerFilter(field_name="lead_id")
    type = django_filters.ChoiceFilter(choices=ActivityType.choices)
    occurred_after = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = Activity
        fields: list[str] = []


def _stored_keys(items: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Activity ids already stored under the items' (source, idempotency key) pairs."""
    wanted = {(i["source"], i["idempotency_key"]) for i in items if i.get("idempotency_key")}
    if not wanted:
        return {}
    # ``exclude(idempotency_key="")`` repeats the unique index's condition, so that the
    # index serves the lookup however many keys are asked for.
    rows = (
        Activity.objects.filter(
            idempotency_key__in={key for _, key in wanted}, source__in={src for src, _ in wanted}
        )
        .exclude(idempotency_key="")
        .values_list("source", "idempotency_key", "pk")
    )
    return {(src, key): pk for src, key, pk in rows if (src, key) in wanted}


def _record(items: list[dict[str, Any]], by: User) -> tuple[list[int], list[int]]:
    """Store the activities not stored before, all leads in one go.

    Returns the activity id of each item, in order, and the positions of the items
    stored before (their id is the one stored then).
    """
    stored = _stored_keys(items)
    ids = [stored.get((i["source"], i.get("idempotency_key", "")), 0) for i in items]
    fresh = [index for index, pk in enumerate(ids) if not pk]
    # One receipt time for the request, and the creator by id: a thousand calls of
    # ``timezone.now()`` and of the foreign key's setter cost more than the INSERT.
    received_at, by_id = timezone.now(), by.pk
    activities = [
        Activity(created_by_id=by_id, received_at=received_at, **items[index]) for index in fresh
    ]
    try:
        created = activities_record_many(activities=activities) if activities else []
    except IntegrityError:
        raise Conflict("Another request stored one of these activities; send it again.") from None
    for index, activity in zip(fresh, created, strict=True):
        ids[index] = activity.pk
    new = set(fresh)
    return ids, [index for index in range(len(items)) if index not in new]


@extend_schema_view(
    list=extend_schema(summary="List activities on the leads you can see, newest first"),
    retrieve=extend_schema(summary="Show an activity"),
)
class ActivityViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Activities are append-only: they are listed and recorded, never changed."""

    serializer_class = ActivitySerializer
    filterset_class = ActivityFilter
    ordering_fields = ["occurred_at"]
    ordering = ("-occurred_at", "-id")

    def get_queryset(self) -> QuerySet[Activity]:
        return Activity.objects.filter(lead__in=Lead.objects.visible_to(self.request.user))

    @extend_schema(
        summary="Record an activity",
        responses={
            201: ActivitySerializer,
            200: OpenApiResponse(
                ActivitySerializer, description="The key was used before: the stored activity."
            ),
        },
    )
    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        (pk,), duplicates = _record([dict(serializer.validated_data)], by=request.user)
        created = not duplicates
        activity = Activity.objects.get(pk=pk)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(self.get_serializer(activity).data, status=code)

    @extend_schema(
        summary=f"Record up to {BULK_MAX} activities at once, all or none",
        request=BulkActivitySerializer,
        responses={
            201: BulkActivityResultSerializer,
            413: OpenApiResponse(ErrorSerializer, description=f"More than {BULK_MAX} items."),
        },
    )
    @idempotent
    @action(detail=False, methods=["post"], pagination_class=None, filter_backends=[])
    def bulk(self, request: Request) -> Response:
        items = request.data.get("activities") if isinstance(request.data, dict) else None
        if isinstance(items, list) and len(items) > BULK_MAX:
            raise PayloadTooLarge(f"Send at most {BULK_MAX} activities per request.")
        batch = BulkActivitySerializer(data=request.data, context=self.get_serializer_context())
        batch.is_valid(raise_exception=True)
        items = batch.validated_data["activities"]
        ids, duplicates = _record(items, by=request.user)
        # Plain numbers already: the answer is rendered as it is, in the documented shape.
        body = {"created": len(ids) - len(duplicates), "duplicates": duplicates, "ids": ids}
        return Response(body, status=status.HTTP_201_CREATED)


# --- Deals, tasks, notes -----------------------------------------------------------------


class DealSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    currency = serializers.CharField(
        required=False,
        validators=[RegexValidator(CURRENCY, "Use a three-letter currency code, e.g. EUR.")],
        help_text="A three-letter currency code, e.g. EUR.",
    )
    lead = VisibleLeadField()
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0, default=0)

    class Meta:
        model = Deal
        fields = [
            "id",
            "lead",
            "name",
            "amount",
            "currency",
            "status",
            "created_at",
            "closed_at",
            "lost_reason",
        ]
        read_only_fields = ["created_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        deal = self.instance
        state = attrs.get("status", deal.status if deal else DealStatus.OPEN)
        closed_at = attrs.get("closed_at", deal.closed_at if deal else None)
        if state == DealStatus.OPEN and closed_at is not None:
            if "closed_at" in attrs:
                raise serializers.ValidationError({"closed_at": "An open deal has no close date."})
            attrs["closed_at"] = None
        elif state != DealStatus.OPEN and closed_at is None:
            attrs["closed_at"] = timezone.now()
        return attrs

    def validate_currency(self, value: str) -> str:
        return value.upper()


class TaskSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    lead = VisibleLeadField(allow_null=True, required=False)
    assignee = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True),
        default=serializers.CurrentUserDefault(),
        help_text="A user id; you, when left out. Reps give tasks to themselves only, "
        "managers also to the members of their teams.",
    )
    is_overdue = serializers.BooleanField(read_only=True)

    class Meta:
        model = Task
        fields = [
            "id",
            "lead",
            "assignee",
            "title",
            "kind",
            "due_at",
            "done_at",
            "is_overdue",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def validate_assignee(self, value: User) -> User:
        current = self.instance.assignee if self.instance is not None else None
        if not may_assign_task(user=_user(self), assignee=value, current=current):
            raise serializers.ValidationError(ASSIGNEE_REFUSED)
        return value


class NoteSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    lead = VisibleLeadField()
    author = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Note
        fields = ["id", "lead", "author", "body", "created_at"]
        read_only_fields = ["created_at"]


class DealFilter(django_filters.FilterSet):
    lead = IntegerFilter(field_name="lead_id")

    class Meta:
        model = Deal
        fields = ["status"]


class TaskFilter(django_filters.FilterSet):
    lead = IntegerFilter(field_name="lead_id")
    assignee = IntegerFilter(field_name="assignee_id")
    open = django_filters.BooleanFilter(
        field_name="done_at", lookup_expr="isnull", help_text="true: not done yet."
    )
    due_before = IsoDateTimeFilter(field_name="due_at", lookup_expr="lt")

    class Meta:
        model = Task
        fields = ["kind"]


class NoteFilter(django_filters.FilterSet):
    lead = IntegerFilter(field_name="lead_id")

    class Meta:
        model = Note
        fields: list[str] = []


class LeadChildViewSet(RecordViewSet):
    """Rows that belong to a lead: visible exactly when their lead is."""

    def visible_leads(self) -> QuerySet[Lead]:
        return Lead.objects.visible_to(self.request.user)


@extend_schema_view(
    list=extend_schema(summary="List deals on the leads you can see"),
    retrieve=extend_schema(summary="Show a deal"),
    create=extend_schema(summary="Create a deal"),
    update=extend_schema(summary="Replace a deal"),
    partial_update=extend_schema(summary="Change some fields of a deal"),
)
class DealViewSet(LeadChildViewSet):
    serializer_class = DealSerializer
    filterset_class = DealFilter
    ordering_fields = ["created_at", "amount", "closed_at"]
    ordering = ("-created_at", "-id")

    def get_queryset(self) -> QuerySet[Deal]:
        return Deal.objects.filter(lead__in=self.visible_leads())


@extend_schema_view(
    list=extend_schema(summary="List tasks on the leads you can see, and your own"),
    retrieve=extend_schema(summary="Show a task"),
    create=extend_schema(summary="Create a task"),
    update=extend_schema(summary="Replace a task"),
    partial_update=extend_schema(summary="Change some fields of a task"),
)
class TaskViewSet(LeadChildViewSet):
    serializer_class = TaskSerializer
    filterset_class = TaskFilter
    ordering_fields = ["due_at", "created_at"]
    ordering = ("due_at", "id")

    def get_queryset(self) -> QuerySet[Task]:
        if getattr(self, "swagger_fake_view", False):
            return Task.objects.none()
        return tasks_visible_to(self.request.user)


@extend_schema_view(
    list=extend_schema(summary="List notes on the leads you can see"),
    retrieve=extend_schema(summary="Show a note"),
    create=extend_schema(summary="Write a note"),
    update=extend_schema(summary="Replace a note"),
    partial_update=extend_schema(summary="Change a note"),
)
class NoteViewSet(LeadChildViewSet):
    serializer_class = NoteSerializer
    filterset_class = NoteFilter
    ordering_fields = ["created_at"]
    ordering = ("-created_at", "-id")

    def get_queryset(self) -> QuerySet[Note]:
        return Note.objects.filter(lead__in=self.visible_leads())

    def perform_create(self, serializer: serializers.Serializer) -> None:
        serializer.save(author=self.request.user)

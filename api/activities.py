"""The REST API for activities: listed, recorded one at a time or in batches of up to
``BULK_MAX``, on the leads the caller can see; never changed."""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from typing import Any

import django_filters
from django.db import IntegrityError
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from api.activity_batches import (
    PROPERTIES_MAX_BYTES,
    PROPERTIES_MAX_DEPTH,
    PlainBatch,
    repeated_keys,
)
from api.errors import Conflict, ErrorSerializer, PayloadTooLarge, flatten_errors
from api.fields import LEAD_NOT_VISIBLE, VisibleLeadField, caller, is_id, merged_lead
from api.idempotency import idempotent
from api.strict import StrictFieldsMixin, check_json_document
from crm.filters import IntegerFilter, IsoDateTimeFilter
from crm.models import User
from leads.activities import activities_record_many
from leads.activity_times import ActivityTimeError, activity_time
from leads.models import Activity, ActivityType, Lead

BULK_MAX = 1000


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
    # The field named "source", not ``Field.source``: DRF takes declared fields off the class.
    source = serializers.CharField(max_length=50, default="api")  # type: ignore[assignment]

    class Meta:
        model = Activity
        fields = ACTIVITY_FIELDS
        read_only_fields = ACTIVITY_READ_ONLY
        # A key stored before is answered with the stored activity, not refused.
        validators: list[Any] = []


class BatchLeadField(serializers.IntegerField):
    """A visible lead's id in a batch: the batch's leads are loaded in one query."""

    default_error_messages = {"does_not_exist": LEAD_NOT_VISIBLE}

    # It answers the loaded lead, as a PrimaryKeyRelatedField does, not the number.
    def to_internal_value(self, data: Any) -> Lead:  # type: ignore[override]
        pk = super().to_internal_value(data)
        lead = self._visible_leads().get(pk) if is_id(pk) else None
        if lead is None:
            # The id of a merged lead names its survivor (one query, for old ids only).
            lead = merged_lead(caller(self.root.context["request"]), pk)
        if lead is None:
            self.fail("does_not_exist", pk_value=pk)
        return lead

    def _visible_leads(self) -> dict[int, Lead]:
        root = self.root
        assert isinstance(root, BulkActivitySerializer)
        return root.visible_leads


class BulkActivityItemSerializer(
    StrictFieldsMixin, ActivityFieldsMixin, serializers.ModelSerializer
):
    lead = BatchLeadField(help_text="The id of a lead you can see.")
    # The field named "source", not ``Field.source``: DRF takes declared fields off the class.
    source = serializers.CharField(max_length=50, default="api")  # type: ignore[assignment]

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
        user = caller(self.context["request"])
        activities = self.fields["activities"]
        assert isinstance(activities, serializers.ListSerializer)
        assert isinstance(activities.child, serializers.Serializer)
        items = PlainBatch(activities.child.fields).items(data, user=user)
        if items is not None:
            return {"activities": items}
        return super().to_internal_value(data)

    @cached_property
    def visible_leads(self) -> dict[int, Lead]:
        """The batch's leads the caller can see, which its items' lead fields read."""
        items = self.initial_data.get("activities")
        wanted = {
            int(item["lead"])
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, dict) and is_id(item.get("lead", ""))
        }
        return Lead.objects.visible_to(caller(self.context["request"])).in_bulk(wanted)

    def validate_activities(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        errors = {
            str(index): {"idempotency_key": [f"Repeats the idempotency key of item {first}."]}
            for index, first in repeated_keys(items).items()
        }
        if errors:
            raise serializers.ValidationError(errors)
        return items


class RejectedItemSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's position in the batch.")
    # The field named "fields", as in the error shape; DRF takes it off the class.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per invalid field of the item (nested ones as dotted paths).",
    )


class BulkActivityResultSerializer(serializers.Serializer):
    created = serializers.IntegerField(help_text="How many activities were stored.")
    duplicates = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="The positions of the items whose (source, idempotency key) was stored "
        "before: they were not stored again.",
    )
    ids = serializers.ListField(
        child=serializers.IntegerField(allow_null=True),
        help_text="The activity id of each item, in order; a repeated idempotency key "
        "gives the id stored the first time; null for a rejected item.",
    )
    rejected = RejectedItemSerializer(
        many=True,
        help_text="The items refused, each with its reasons; the batch's other items were "
        "stored. Empty when every item was.",
    )


def _item_errors(errors: Any) -> dict[int, Any] | None:
    """The errors of a batch's items by position, or None when the body itself is wrong
    (not an object, no list, an empty list, an unknown top-level field)."""
    if set(errors) != {"activities"}:
        return None
    detail = errors["activities"]
    if isinstance(detail, dict) and all(str(key).isdigit() for key in detail):
        return {int(key): error for key, error in detail.items()}
    if isinstance(detail, list) and all(isinstance(item, dict) for item in detail):
        return {index: item for index, item in enumerate(detail) if item}
    return None


def validated_batch(
    data: Any, context: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[int], dict[int, Any]]:
    """A batch's valid items, their positions and the errors of the others by position.

    One bad item never sinks its neighbours: the batch is checked again without the items
    refused (a repeated key is only looked for once every item is valid on its own). A body
    that is wrong as a whole, or whose every item is refused, raises the 400 naming each.
    """
    given = data.get("activities") if isinstance(data, dict) else None
    raw: list[Any] = given if isinstance(given, list) else []
    positions = list(range(len(raw)))
    rejected: dict[int, Any] = {}  # by position in the batch
    while True:
        body = {**data, "activities": [raw[p] for p in positions]} if rejected else data
        batch = BulkActivitySerializer(data=body, context=context)
        if batch.is_valid():
            return batch.validated_data["activities"], positions, rejected
        errors = _item_errors(batch.errors)
        if errors is None:
            raise serializers.ValidationError(batch.errors)
        rejected.update({positions[index]: error for index, error in errors.items()})
        positions = [p for index, p in enumerate(positions) if index not in errors]
        if not positions:
            by_position = {str(p): error for p, error in sorted(rejected.items())}
            raise serializers.ValidationError({"activities": by_position})


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
        user = self.request.user
        if not isinstance(user, User):  # the schema generator looks without a user
            return Activity.objects.none()
        return Activity.objects.filter(lead__in=Lead.objects.visible_to(user))

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
        (pk,), duplicates = _record([dict(serializer.validated_data)], by=caller(request))
        created = not duplicates
        activity = Activity.objects.get(pk=pk)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(self.get_serializer(activity).data, status=code)

    @extend_schema(
        summary=f"Record up to {BULK_MAX} activities at once; a bad item is refused alone",
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
        valid, positions, rejected = validated_batch(
            request.data, dict(self.get_serializer_context())
        )
        stored, duplicates = _record(valid, by=caller(request))
        ids: list[int | None] = [None] * (len(positions) + len(rejected))
        for position, pk in zip(positions, stored, strict=True):
            ids[position] = pk
        # Plain numbers already: the answer is rendered as it is, in the documented shape.
        body = {
            "created": len(stored) - len(duplicates),
            "duplicates": [positions[index] for index in duplicates],
            "ids": ids,
            "rejected": [
                {"index": index, "fields": flatten_errors(error)}
                for index, error in sorted(rejected.items())
            ],
        }
        return Response(body, status=status.HTTP_201_CREATED)

"""The REST API for merging duplicate leads: the merge itself, its preview, the record
of merges and their undo.

``POST /api/v1/leads/<id>/merge/`` merges other leads into lead ``<id>`` (the survivor,
which keeps its id), ``GET`` the same path with ``?others=`` previews the fields on
which they differ. ``/api/v1/lead-merges/`` lists the merges into leads in the caller's
view; ``POST /api/v1/lead-merges/<id>/undo/`` undoes one. Who may is
``leads.permissions.merge_refusal``, as on every surface; the work is
``leads.merging``'s.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from api.errors import Conflict, ErrorSerializer
from api.fields import LEAD_NOT_VISIBLE, caller
from api.strict import StrictFieldsMixin
from crm.models import User
from leads.merging import MERGE_FIELDS, MergeError, lead_merge_undo
from leads.models import Lead, LeadMerge
from leads.permissions import merge_refusal, merges_leads

MAX_OTHERS = 50


class MergeFieldsSerializer(StrictFieldsMixin, serializers.Serializer):
    """Per field a merge chooses, the id of the lead whose value wins."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            name: serializers.IntegerField(min_value=1, required=False) for name in MERGE_FIELDS
        }


class MergeRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    others = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        min_length=1,
        max_length=MAX_OTHERS,
        help_text="The ids of the leads merged into this one; their rows are deleted and "
        "their ids answer with this lead.",
    )
    # Declared fields are taken off the class (DRF's metaclass): this does not hide
    # ``Serializer.fields``.
    fields = MergeFieldsSerializer(  # type: ignore[assignment]
        required=False,
        default=dict,
        help_text="Per field, the id of the lead (this one or one merged) whose value wins. "
        "A field not named keeps this lead's value, or takes the first merged lead's where "
        "this lead's is empty; custom fields not named are combined, this lead's winning.",
    )


class MergePreviewFieldSerializer(serializers.Serializer):
    field = serializers.CharField()
    values = serializers.DictField(help_text="Each lead's value, by lead id.")
    default = serializers.IntegerField(help_text="The lead whose value wins unless chosen.")


class MergePreviewSerializer(serializers.Serializer):
    survivor = serializers.IntegerField()
    others = serializers.ListField(child=serializers.IntegerField())
    conflicts = MergePreviewFieldSerializer(many=True)


class LeadMergeSerializer(serializers.ModelSerializer):
    survivor = serializers.IntegerField(source="survivor_ref", read_only=True)
    by: serializers.PrimaryKeyRelatedField[User] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )
    undone_by: serializers.PrimaryKeyRelatedField[User] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )
    moved = serializers.SerializerMethodField(
        help_text="How many rows of each kind moved to the survivor."
    )

    class Meta:
        model = LeadMerge
        fields = [
            "id",
            "survivor",
            "merged_ids",
            "fields",
            "moved",
            "by",
            "at",
            "undone_at",
            "undone_by",
        ]
        read_only_fields = fields

    def get_moved(self, merge: LeadMerge) -> dict[str, int]:
        counts: dict[str, int] = {}
        for kind, per_lead in merge.moved.items():
            if isinstance(per_lead, dict) and all(isinstance(v, list) for v in per_lead.values()):
                counts[kind] = sum(len(ids) for ids in per_lead.values())
        return counts


OTHERS_PATTERN = rf"^[1-9][0-9]{{0,17}}(,[1-9][0-9]{{0,17}}){{0,{MAX_OTHERS - 1}}}$"


def others_of(request: Request) -> list[int]:
    """The ``others`` query parameter of a preview: ids separated by commas."""
    raw = request.query_params.get("others", "")
    if not re.match(OTHERS_PATTERN, raw):
        raise serializers.ValidationError(
            {"others": [f"Give 1 to {MAX_OTHERS} lead ids separated by commas."]}
        )
    return [int(part) for part in raw.split(",")]


def check_may_merge(user: User, survivor: Lead, others: list[int], leads: QuerySet[Lead]) -> None:
    """403 for a person who merges nothing (reps), 404 for another lead they cannot see
    (as for any lead outside their view), 403 for leads in view they may not merge."""
    if not merges_leads(user):
        raise PermissionDenied(merge_refusal(user=user, lead_ids=[survivor.pk]))
    found = leads.filter(pk__in=others).values_list("pk", flat=True)
    missing = sorted(set(others) - set(found))
    if missing:
        raise NotFound(LEAD_NOT_VISIBLE.format(pk_value=missing[0]))
    refusal = merge_refusal(user=user, lead_ids=[survivor.pk, *others])
    if refusal:
        raise PermissionDenied(refusal)


def merge_error(exc: MergeError) -> serializers.ValidationError:
    return serializers.ValidationError({"others": [exc.message]})


@extend_schema_view(
    list=extend_schema(summary="List the merges into leads you can see, latest first"),
    retrieve=extend_schema(summary="Show a merge"),
)
class LeadMergeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Merges into leads in the caller's view; managers, marketers and admins only."""

    serializer_class = LeadMergeSerializer
    permission_classes = [IsAuthenticated]
    filter_backends: list[Any] = []
    ordering = ("-at", "-id")

    def get_queryset(self) -> QuerySet[LeadMerge]:
        user = self.request.user
        if not isinstance(user, User) or not merges_leads(user):
            return LeadMerge.objects.none()
        visible = Lead.objects.visible_to(user).values("pk")
        return LeadMerge.objects.filter(survivor__in=visible).order_by("-at", "-id")

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not merges_leads(caller(request)):
            raise PermissionDenied(merge_refusal(user=caller(request), lead_ids=[]))

    @extend_schema(
        summary="Undo a merge: the merged leads back with their ids and rows",
        request=None,
        responses={
            200: LeadMergeSerializer,
            403: OpenApiResponse(
                ErrorSerializer, description="The caller may not merge these leads."
            ),
            409: OpenApiResponse(
                ErrorSerializer,
                description="Undone already, the survivor is gone, a later merge of it is "
                "not undone, or a merged lead's address is another lead's now.",
            ),
        },
    )
    @action(detail=True, methods=["post"], pagination_class=None)
    def undo(self, request: Request, pk: str | None = None) -> Response:
        merge = self.get_object()
        refusal = merge_refusal(user=caller(request), lead_ids=[merge.survivor_ref])
        if refusal:
            raise PermissionDenied(refusal)
        try:
            merge = lead_merge_undo(merge_id=merge.pk, by=caller(request))
        except MergeError as exc:
            raise Conflict(exc.message) from None
        return Response(LeadMergeSerializer(merge).data)

"""The REST API for merging duplicate companies: the merge itself, its preview, the
record of merges and their undo.

``POST /api/v1/company-merges/`` merges ``others`` into ``survivor`` (which keeps its
id) and answers the record of the merge; ``GET /api/v1/company-merges/preview/`` with
``?survivor=&others=`` previews the fields on which they differ. ``GET`` lists the
merges into companies the caller may merge; ``POST /api/v1/company-merges/<id>/undo/``
undoes one. Who may is ``leads.permissions.company_merge_refusal``, as on every
surface; the work is ``leads.company_merging``'s. The conventions are the lead merges'
(``api.merges``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from api.errors import Conflict, ErrorSerializer
from api.fields import MAX_ID, caller
from api.merges import MAX_OTHERS, MergePreviewFieldSerializer
from api.strict import StrictFieldsMixin
from crm.models import User
from leads.company_merging import (
    COMPANY_MERGE_FIELDS,
    companies_merge,
    company_alias_target,
    company_merge_preview,
    company_merge_undo,
)
from leads.merging import MergeError
from leads.models import Company, CompanyMerge
from leads.permissions import companies_merged_by, company_merge_refusal, merges_leads

NO_COMPANY = "There is no company {pk}."
MERGED_ALREADY = "Company {pk} was merged into company {survivor}: name that one instead."
ITSELF = "A company cannot be merged into itself."
COMPANY_IDS_PATTERN = rf"^[1-9][0-9]{{0,17}}(,[1-9][0-9]{{0,17}}){{0,{MAX_OTHERS - 1}}}$"


def _company_id(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


class CompanyMergeFieldsSerializer(StrictFieldsMixin, serializers.Serializer):
    """Per field a company merge chooses, the id of the company whose value wins."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {name: _company_id(required=False) for name in COMPANY_MERGE_FIELDS}


class CompanyMergeRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    survivor = _company_id(help_text="The company that stays and keeps its id.")
    others = serializers.ListField(
        child=_company_id(),
        min_length=1,
        max_length=MAX_OTHERS,
        help_text="The ids of the companies merged into the survivor; their leads move to "
        "it, their rows are deleted and their ids answer with the survivor.",
    )
    # Declared fields are taken off the class (DRF's metaclass): this does not hide
    # ``Serializer.fields``.
    fields = CompanyMergeFieldsSerializer(  # type: ignore[assignment]
        required=False,
        default=dict,
        help_text="Per field, the id of the company (the survivor or one merged) whose "
        "value wins. A field not named keeps the survivor's value, or takes the first "
        "merged company's where the survivor's is empty.",
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        others = list(dict.fromkeys(data["others"]))
        if data["survivor"] in others:
            raise serializers.ValidationError({"others": [ITSELF]})
        merged = {data["survivor"], *others}
        strangers = {
            name: [f"Company {pk} is not in this merge."]
            for name, pk in data["fields"].items()
            if pk not in merged
        }
        if strangers:
            raise serializers.ValidationError({"fields": strangers})
        return {**data, "others": others}


class CompanyMergePreviewQuerySerializer(serializers.Serializer):
    survivor = _company_id(help_text="The company that would stay.")
    others = serializers.RegexField(
        COMPANY_IDS_PATTERN,
        error_messages={"invalid": f"Give 1 to {MAX_OTHERS} company ids separated by commas."},
        help_text="The ids of the companies that would be merged, separated by commas.",
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        others = list(dict.fromkeys(int(pk) for pk in data["others"].split(",")))
        if data["survivor"] in others:
            raise serializers.ValidationError({"others": [ITSELF]})
        return {**data, "others": others}


class CompanyMergePreviewSerializer(serializers.Serializer):
    survivor = serializers.IntegerField()
    others = serializers.ListField(child=serializers.IntegerField())
    conflicts = MergePreviewFieldSerializer(many=True)


class CompanyMergeSerializer(serializers.ModelSerializer):
    survivor = serializers.IntegerField(source="survivor_ref", read_only=True)
    merged_ids = serializers.ListField(
        child=serializers.IntegerField(),
        read_only=True,
        help_text="The ids of the companies merged in; they answer with the survivor.",
    )
    fields = serializers.DictField(  # type: ignore[assignment]
        read_only=True,
        help_text='Per field the survivor took: {"from": company id, "before", "after"}, '
        'and "kept": true for a field an undo left as changed since.',
    )
    by: serializers.PrimaryKeyRelatedField[User] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    undone_by: serializers.PrimaryKeyRelatedField[User] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    moved = serializers.SerializerMethodField(
        help_text="How many rows of each kind moved to the survivor (``leads.lead``: leads)."
    )

    class Meta:
        model = CompanyMerge
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

    def get_moved(self, merge: CompanyMerge) -> dict[str, int]:
        return {
            kind: sum(len(ids) for ids in per_company.values())
            for kind, per_company in merge.moved.items()
        }


def check_companies(survivor: int, others: list[int]) -> dict[int, Company]:
    """The companies named, by id: 400 on the field naming one that never existed, 409
    for one merged into another already."""
    companies = Company.objects.in_bulk([survivor, *others])
    for field, ids in (("survivor", [survivor]), ("others", others)):
        missing = [pk for pk in ids if pk not in companies]
        for pk in missing:
            target = company_alias_target(pk)
            if target is not None:
                raise Conflict(MERGED_ALREADY.format(pk=pk, survivor=target))
        if missing:
            raise serializers.ValidationError({field: [NO_COMPANY.format(pk=missing[0])]})
    return companies


def check_may_merge(user: User, company_ids: list[int]) -> None:
    refusal = company_merge_refusal(user=user, company_ids=company_ids)
    if refusal:
        raise PermissionDenied(refusal)


COMMON_ERRORS = {
    403: OpenApiResponse(
        ErrorSerializer,
        description="Reps merge nothing; managers merge only companies whose every lead "
        "they can see; marketers and admins any.",
    ),
    409: OpenApiResponse(
        ErrorSerializer, description="A company named was merged into another already."
    ),
}


@extend_schema_view(
    list=extend_schema(summary="List the merges into companies you may merge, latest first"),
    retrieve=extend_schema(summary="Show a company merge"),
)
class CompanyMergeViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Company merges; managers, marketers and admins only (reps: 403)."""

    serializer_class = CompanyMergeSerializer
    permission_classes = [IsAuthenticated]
    filter_backends: list[Any] = []
    ordering = ("-at", "-id")

    def get_queryset(self) -> QuerySet[CompanyMerge]:
        user = self.request.user
        if not isinstance(user, User) or not merges_leads(user):
            return CompanyMerge.objects.none()
        merges = CompanyMerge.objects.all()
        if not user.sees_all_leads:
            merges = merges.filter(survivor__in=companies_merged_by(user).values("pk"))
        return merges.order_by("-at", "-id")

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not merges_leads(caller(request)):
            raise PermissionDenied(company_merge_refusal(user=caller(request), company_ids=[]))

    @extend_schema(
        summary="Merge companies into one, which keeps its id",
        request=CompanyMergeRequestSerializer,
        responses={
            201: CompanyMergeSerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                description="A company that does not exist, the survivor among the others, "
                "a field a merge does not choose, or a field's value from a company "
                "outside the merge; nothing is changed.",
            ),
            **COMMON_ERRORS,
        },
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = CompanyMergeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        survivor, others = body.validated_data["survivor"], body.validated_data["others"]
        check_companies(survivor, others)
        check_may_merge(caller(request), [survivor, *others])
        try:
            merge = companies_merge(
                survivor_id=survivor,
                others=others,
                fields=body.validated_data["fields"],
                by=caller(request),
            )
        except MergeError as exc:
            raise serializers.ValidationError({"others": [exc.message]}) from None
        return Response(CompanyMergeSerializer(merge).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Preview a company merge: the fields on which the companies differ",
        parameters=[
            OpenApiParameter(
                "survivor",
                OpenApiTypes.INT,
                OpenApiParameter.QUERY,
                required=True,
                description="The company that would stay.",
            ),
            OpenApiParameter(
                "others",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                required=True,
                pattern=COMPANY_IDS_PATTERN,
                allow_blank=False,
                description="The ids of the companies that would be merged, separated by commas.",
            ),
        ],
        responses={
            200: CompanyMergePreviewSerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                description="A company that does not exist, or the survivor among the others.",
            ),
            **COMMON_ERRORS,
        },
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def preview(self, request: Request) -> Response:
        query = CompanyMergePreviewQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        survivor, others = query.validated_data["survivor"], query.validated_data["others"]
        companies = check_companies(survivor, others)
        check_may_merge(caller(request), [survivor, *others])
        conflicts = company_merge_preview(companies[survivor], [companies[pk] for pk in others])
        return Response({"survivor": survivor, "others": others, "conflicts": conflicts})

    @extend_schema(
        summary="Undo a company merge: the merged companies back with their ids and leads",
        request=None,
        responses={
            200: CompanyMergeSerializer,
            403: COMMON_ERRORS[403],
            409: OpenApiResponse(
                ErrorSerializer,
                description="Undone already, the survivor is gone, a later merge of it is "
                "not undone, or a merged company's domain is another company's now.",
            ),
        },
    )
    @action(detail=True, methods=["post"], pagination_class=None)
    def undo(self, request: Request, pk: str | None = None) -> Response:
        merge = self.get_object()
        check_may_merge(caller(request), [merge.survivor_ref])
        try:
            merge = company_merge_undo(merge_id=merge.pk, by=caller(request))
        except MergeError as exc:
            raise Conflict(exc.message) from None
        return Response(CompanyMergeSerializer(merge).data)

"""Personal API tokens: each user lists, creates and revokes their own; the admin sees all."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from crm.models import ApiToken
from crm.permissions import tokens_visible_to

from .pagination import ApiCursorPagination
from .strict import StrictFieldsMixin


class ApiTokenSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)
    revoked = serializers.BooleanField(source="is_revoked", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "user",
            "created_at",
            "last_used_at",
            "revoked_at",
            "revoked",
        ]
        read_only_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]


class NewApiTokenSerializer(ApiTokenSerializer):
    key = serializers.CharField(
        read_only=True, help_text="The secret key. Shown only in this response: store it now."
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]


@extend_schema_view(
    list=extend_schema(summary="List API tokens (your own; all of them for an admin)"),
    retrieve=extend_schema(summary="Show an API token"),
    create=extend_schema(
        summary="Create an API token",
        request=ApiTokenSerializer,
        responses={status.HTTP_201_CREATED: NewApiTokenSerializer},
    ),
)
class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    permission_classes = [IsAuthenticated]
    pagination_class = ApiCursorPagination
    filter_backends: list = []
    ordering = ("-created_at", "-id")

    def get_queryset(self) -> QuerySet[ApiToken]:
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        tokens = tokens_visible_to(self.request.user)
        return tokens.select_related("user").order_by("-created_at", "-id")

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return NewApiTokenSerializer if self.action == "create" else ApiTokenSerializer

    def perform_create(self, serializer: serializers.Serializer) -> None:
        token, key = ApiToken.objects.issue(
            user=self.request.user, name=serializer.validated_data["name"]
        )
        token.key = key
        serializer.instance = token

    @extend_schema(summary="Revoke an API token", request=None, responses=ApiTokenSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        token = self.get_object()
        ApiToken.objects.filter(pk=token.pk).revoke()
        token.refresh_from_db()
        return Response(ApiTokenSerializer(token).data)

"""Personal API tokens: each user lists, creates and revokes their own; the admin sees all."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from crm.models import ApiToken, User
from crm.permissions import tokens_visible_to

from .fields import caller, request_user
from .pagination import ApiCursorPagination
from .strict import StrictFieldsMixin


class ApiTokenSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    user: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
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
    key = serializers.SerializerMethodField(
        help_text="The secret key. Shown only in this response: store it now."
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]

    def create(self, validated_data: dict[str, Any]) -> ApiToken:
        token, self.issued_key = ApiToken.objects.issue(
            user=request_user(self), name=validated_data["name"]
        )
        return token

    def get_key(self, token: ApiToken) -> str:
        """Only the hash is stored: the key is the one just issued (``create``)."""
        return self.issued_key


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
        tokens = tokens_visible_to(caller(self.request))
        return tokens.select_related("user").order_by("-created_at", "-id")

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return NewApiTokenSerializer if self.action == "create" else ApiTokenSerializer

    @extend_schema(summary="Revoke an API token", request=None, responses=ApiTokenSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        token = self.get_object()
        ApiToken.objects.filter(pk=token.pk).revoke()
        token.refresh_from_db()
        return Response(ApiTokenSerializer(token).data)

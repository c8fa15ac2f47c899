"""The REST API for companies.

The id of a company merged into another answers with a permanent redirect to the same
path under the survivor's id (301 for reads, 308 for writes), as a merged lead's does.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from api.fields import caller
from api.strict import StrictFieldsMixin
from api.viewsets import RecordViewSet
from leads.company_merging import company_alias_target
from leads.models import Company
from leads.permissions import COMPANY_REFUSED, may_change_company


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
        others = Company.objects.filter(domain__iexact=domain)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
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
        return may_change_company(user=caller(request), company=obj)


class CompanyMoved(Exception):
    """The requested id is a company merged into ``survivor_id``."""

    def __init__(self, survivor_id: int) -> None:
        super().__init__(survivor_id)
        self.survivor_id = survivor_id


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

    permission_classes = [*RecordViewSet.permission_classes, CompanyChangePermission]
    serializer_class = CompanySerializer
    filterset_class = CompanyFilter
    search_fields = ["name", "domain"]
    ordering_fields = ["name", "created_at"]
    ordering = ("name", "id")

    def get_queryset(self) -> QuerySet[Company]:
        return Company.objects.all()

    def get_object(self) -> Company:
        """The company, or ``CompanyMoved`` when the id is an alias of a company."""
        try:
            return super().get_object()
        except Http404:
            pk = str(self.kwargs.get("pk", ""))
            survivor = company_alias_target(int(pk)) if pk.isdigit() and len(pk) < 19 else None
            if survivor is not None:
                raise CompanyMoved(survivor) from None
            raise

    def handle_exception(self, exc: Exception) -> Response:
        if not isinstance(exc, CompanyMoved):
            return super().handle_exception(exc)
        old = f"/companies/{self.kwargs['pk']}/"
        path = self.request.get_full_path().replace(old, f"/companies/{exc.survivor_id}/", 1)
        code = 301 if self.request.method in ("GET", "HEAD", "OPTIONS") else 308
        return Response(status=code, headers={"Location": path})

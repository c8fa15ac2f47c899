"""The REST API for companies.

The id of a company merged into another answers with a permanent redirect to the same
path under the survivor's id (301 for reads, 308 for writes), as a merged lead's does.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from api.fields import caller
from api.strict import StrictFieldsMixin
from api.viewsets import RecordViewSet
from leads.company_merging import company_alias_target
from leads.models import Company
from leads.permissions import COMPANY_REFUSED, may_change_company
from scoring.account_selectors import account_scores, with_account_score
from scoring.models import AccountScore


class AccountScoreSerializer(serializers.ModelSerializer):
    """The company's score in one scoring model, from its people's scores. ``engagement``
    is their engagement summed at ``engagement_at``; it halves with the model's
    half-life from then on."""

    model_name = serializers.CharField(source="model.name", read_only=True)

    class Meta:
        model = AccountScore
        fields = [
            "model",
            "model_name",
            "score",
            "band",
            "best_fit",
            "engagement",
            "engagement_at",
            "engaged_contacts",
            "conversion_probability",
            "updated_at",
        ]
        read_only_fields = fields


class CompanyListSerializer(serializers.ListSerializer):
    """Reads the account scores of a whole page of companies in one query."""

    def to_representation(self, data: Any) -> Any:
        companies = list(data.all() if isinstance(data, QuerySet) else data)
        found = account_scores(company.pk for company in companies)
        for company in companies:
            company.loaded_account_scores = found.get(company.pk, [])
        return super().to_representation(companies)


class CompanySerializer(StrictFieldsMixin, serializers.ModelSerializer):
    """A company; ``account_score`` is its score in the first active scoring model that
    scores it (as a lead's primary score is chosen), ``account_scores`` its score in each.
    Both are read-only and kept by scoring."""

    account_score = serializers.SerializerMethodField()
    account_scores = serializers.SerializerMethodField()

    class Meta:
        model = Company
        list_serializer_class = CompanyListSerializer
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
            "account_score",
            "account_scores",
        ]
        read_only_fields = ["created_at"]

    def _scores(self, company: Company) -> list[AccountScore]:
        loaded = getattr(company, "loaded_account_scores", None)
        if loaded is None:
            loaded = account_scores([company.pk]).get(company.pk, [])
            company.loaded_account_scores = loaded  # type: ignore[attr-defined]
        return loaded

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_account_score(self, company: Company) -> int | None:
        scores = self._scores(company)
        return scores[0].score if scores else None

    @extend_schema_field(AccountScoreSerializer(many=True))
    def get_account_scores(self, company: Company) -> Any:
        return AccountScoreSerializer(self._scores(company), many=True).data

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
    ordering_fields = ["name", "created_at", "account_score"]
    ordering = ("name", "id")

    def get_queryset(self) -> QuerySet[Company]:
        return with_account_score(Company.objects.all())

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

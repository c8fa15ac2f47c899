"""The REST API for the deals, tasks and notes on the leads the caller can see."""

from __future__ import annotations

from typing import Any

import django_filters
from django.core.validators import RegexValidator
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers

from api.fields import VisibleLeadField, request_user
from api.strict import StrictFieldsMixin
from api.viewsets import RecordViewSet
from crm.filters import IntegerFilter, IsoDateTimeFilter
from crm.models import User
from leads.deals import deal_save
from leads.models import Deal, DealStatus, Lead, Note, Task
from leads.permissions import ASSIGNEE_REFUSED, may_assign_task, tasks_visible_to

CURRENCY = r"^[A-Za-z]{3}$"


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
        if not may_assign_task(user=request_user(self), assignee=value, current=current):
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

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        # Through the service, so that the lead's deal outcome follows.
        serializer.instance = deal_save(deal=Deal(**serializer.validated_data))

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        deal = serializer.instance
        for name, value in serializer.validated_data.items():
            setattr(deal, name, value)
        deal_save(deal=deal)


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

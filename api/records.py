"""The REST API for the deals, tasks and notes on the leads the caller can see.

Adding one, or changing one, is acting on its lead, as in the workspace
(``leads.permissions``: ``lead_access``, and ``task_refusal`` for what a task's assignee
and their manager may do besides): a visible lead the caller may not act on answers 403
with the reason, a lead they cannot see 400 on ``lead`` (the row: 404), as before.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import django_filters
from django.core.validators import RegexValidator
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied

from api.errors import ErrorSerializer
from api.fields import VisibleLeadField, request_user
from api.strict import StrictFieldsMixin
from api.viewsets import RecordViewSet
from crm.filters import IntegerFilter, IsoDateTimeFilter
from crm.models import User
from leads.deals import deal_save
from leads.models import Deal, DealStatus, Lead, Note, Task
from leads.permissions import (
    ASSIGNEE_REFUSED,
    lead_access,
    may_assign_task,
    task_refusal,
    tasks_visible_to,
)

CURRENCY = r"^[A-Za-z]{3}$"


class DealSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    currency = serializers.CharField(
        required=False,
        validators=[RegexValidator(CURRENCY, "Use a three-letter currency code, e.g. EUR.")],
        help_text="A three-letter currency code, e.g. EUR.",
    )
    lead = VisibleLeadField()
    amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=Decimal(0), default=Decimal(0)
    )

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
    author: serializers.PrimaryKeyRelatedField[User] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )

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


REFUSED_ON_LEAD = (
    "Your role does not allow this, or the lead is one you see but may not work on "
    "(`message` says why): an unassigned lead is taken first; another's lead is for its "
    "owner, their manager or an admin."
)
REFUSED_ON_TASK = (
    f"{REFUSED_ON_LEAD} A task's assignee and their manager may still complete, snooze or "
    "reassign it (`done_at`, `due_at`, `assignee`); a task without a lead is for them and "
    "admins."
)


def _writes(summary: str, serializer: type[serializers.Serializer], code: int, refused: str) -> Any:
    """A write's schema: its answer, and the 403 of a lead the caller may not work on."""
    forbidden = OpenApiResponse(ErrorSerializer, description=refused)
    return extend_schema(summary=summary, responses={code: serializer, 403: forbidden})


class LeadChildViewSet(RecordViewSet):
    """Rows that belong to a lead: visible exactly when their lead is, added and changed
    by whoever may act on it (``lead_access``)."""

    def visible_leads(self) -> QuerySet[Lead]:
        if getattr(self, "swagger_fake_view", False):
            return Lead.objects.none()
        return Lead.objects.visible_to(self.caller)

    def check_lead(self, lead: Lead | None) -> None:
        """403, with the reason, unless the caller may act on ``lead`` (None: no lead)."""
        if lead is not None:
            refusal = lead_access(lead=lead, user=self.caller).refusal
            if refusal:
                raise PermissionDenied(refusal)

    def check_change(self, record: Deal | Note, data: dict[str, Any]) -> None:
        """For a change: the record's lead, and the lead it moves to."""
        self.check_lead(record.lead)
        if "lead" in data:
            self.check_lead(data["lead"])

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        self.check_lead(serializer.validated_data.get("lead"))
        super().perform_create(serializer)


@extend_schema_view(
    list=extend_schema(summary="List deals on the leads you can see"),
    retrieve=extend_schema(summary="Show a deal"),
    create=_writes("Create a deal", DealSerializer, 201, REFUSED_ON_LEAD),
    update=_writes("Replace a deal", DealSerializer, 200, REFUSED_ON_LEAD),
    partial_update=_writes("Change some fields of a deal", DealSerializer, 200, REFUSED_ON_LEAD),
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
        self.check_lead(serializer.validated_data["lead"])
        serializer.instance = deal_save(deal=Deal(**serializer.validated_data))

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        deal = serializer.instance
        if not isinstance(deal, Deal):
            raise TypeError("An update changes a deal.")
        self.check_change(deal, serializer.validated_data)
        for name, value in serializer.validated_data.items():
            setattr(deal, name, value)
        deal_save(deal=deal)


@extend_schema_view(
    list=extend_schema(summary="List tasks on the leads you can see, and your own"),
    retrieve=extend_schema(summary="Show a task"),
    create=_writes("Create a task", TaskSerializer, 201, REFUSED_ON_TASK),
    update=_writes("Replace a task", TaskSerializer, 200, REFUSED_ON_TASK),
    partial_update=_writes("Change some fields of a task", TaskSerializer, 200, REFUSED_ON_TASK),
)
class TaskViewSet(LeadChildViewSet):
    serializer_class = TaskSerializer
    filterset_class = TaskFilter
    ordering_fields = ["due_at", "created_at"]
    ordering = ("due_at", "id")

    def get_queryset(self) -> QuerySet[Task]:
        if getattr(self, "swagger_fake_view", False):
            return Task.objects.none()
        return tasks_visible_to(self.caller)

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        """The task's own rule (its assignee completes, snoozes and, as the manager,
        reassigns it on any lead), and acting on the lead it moves to."""
        task, data = serializer.instance, serializer.validated_data
        if not isinstance(task, Task):
            raise TypeError("An update changes a task.")
        changed = {name for name, value in data.items() if getattr(task, name) != value}
        refusal = task_refusal(task=task, user=self.caller, changed=changed)
        if refusal:
            raise PermissionDenied(refusal)
        if "lead" in changed:
            self.check_lead(data["lead"])
        super().perform_update(serializer)


@extend_schema_view(
    list=extend_schema(summary="List notes on the leads you can see"),
    retrieve=extend_schema(summary="Show a note"),
    create=_writes("Write a note", NoteSerializer, 201, REFUSED_ON_LEAD),
    update=_writes("Replace a note", NoteSerializer, 200, REFUSED_ON_LEAD),
    partial_update=_writes("Change a note", NoteSerializer, 200, REFUSED_ON_LEAD),
)
class NoteViewSet(LeadChildViewSet):
    serializer_class = NoteSerializer
    filterset_class = NoteFilter
    ordering_fields = ["created_at"]
    ordering = ("-created_at", "-id")

    def get_queryset(self) -> QuerySet[Note]:
        return Note.objects.filter(lead__in=self.visible_leads())

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        self.check_lead(serializer.validated_data["lead"])
        serializer.save(author=self.caller)

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        note = serializer.instance
        if not isinstance(note, Note):
            raise TypeError("An update changes a note.")
        self.check_change(note, serializer.validated_data)
        super().perform_update(serializer)

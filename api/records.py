"""The REST API for the deals, tasks and notes on the leads the caller can see.

Adding one, or changing one, is acting on its lead, as in the workspace
(``leads.permissions``: ``lead_access``, and ``task_refusal`` for what a task's assignee
and their manager may do besides): a visible lead the caller may not act on answers 403
with the reason, a lead they cannot see 400 on ``lead`` (the row: 404), as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import django_filters
from django.core.validators import RegexValidator
from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.exceptions import PermissionDenied

from api.errors import Conflict, ErrorSerializer
from api.fields import VisibleLeadField, request_user
from api.permissions import RoleReadModelWrite
from api.strict import StrictFieldsMixin
from api.viewsets import RecordViewSet
from crm.filters import IntegerFilter, IsoDateTimeFilter
from crm.models import User
from leads.deals import deal_create, deal_update, lost_reason_clean
from leads.models import (
    Deal,
    DealStage,
    DealStatus,
    Lead,
    LostReason,
    Note,
    ProductLine,
    StageTransitionError,
    Task,
)
from leads.permissions import (
    ASSIGNEE_REFUSED,
    OWNER_REFUSED,
    deals_visible_to,
    lead_access,
    may_assign_task,
    may_own,
    task_refusal,
    tasks_visible_to,
)

CURRENCY = r"^[A-Za-z]{3}$"
# What a deal's closing is written with; the rest are its fields (``leads.deals``).
CLOSING = ("status", "closed_at", "lost_reason")


class NullableSlugField(serializers.SlugRelatedField):
    """A slug or null; DRF would read "" as null, which the schema's slug does not admit."""

    def run_validation(self, data: Any = serializers.empty) -> Any:
        if data == "":
            raise serializers.ValidationError("Give a slug, or null for none.")
        return super().run_validation(data)


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
    stage = serializers.PrimaryKeyRelatedField(
        queryset=DealStage.objects.all(),
        required=False,
        allow_null=True,
        help_text="A deal stage id (`/deal-stages/`); the pipeline's first when left out.",
    )
    probability = serializers.IntegerField(
        min_value=0,
        max_value=100,
        required=False,
        allow_null=True,
        help_text="Per cent chance of winning; null: the stage's.",
    )
    win_probability = serializers.IntegerField(
        read_only=True, help_text="The deal's probability, else its stage's."
    )
    product_line = NullableSlugField(
        slug_field="slug",
        queryset=ProductLine.objects.all(),
        required=False,
        allow_null=True,
        help_text="A product line's slug.",
    )
    owner = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True),
        required=False,
        allow_null=True,
        help_text="A user id; the lead's owner when left out. Reps give deals to themselves, "
        "managers also to the members of their teams.",
    )
    lost_reason = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="Why a lost deal was lost: one of the reasons of `/lost-reasons/`.",
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
            "stage",
            "stage_changed_at",
            "probability",
            "win_probability",
            "expected_close",
            "product_line",
            "owner",
            "created_at",
            "closed_at",
            "lost_reason",
        ]
        read_only_fields = ["created_at", "stage_changed_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """An open deal has no close date; only a lost deal has a reason, one from the
        pick-list (``lost_reason_clean``), asked for when it is lost or its reason
        changed."""
        deal = self.instance
        state = attrs.get("status", deal.status if deal else DealStatus.OPEN)
        if state == DealStatus.OPEN and attrs.get("closed_at") is not None:
            raise serializers.ValidationError({"closed_at": "An open deal has no close date."})
        if state != DealStatus.LOST:
            if attrs.get("lost_reason"):
                raise serializers.ValidationError(
                    {"lost_reason": "Only a lost deal has a lost reason."}
                )
            attrs.pop("lost_reason", None)
        elif "lost_reason" in attrs or deal is None or deal.status != DealStatus.LOST:
            reason = attrs.get("lost_reason", deal.lost_reason if deal else "")
            attrs["lost_reason"] = lost_reason_clean(reason)
        return attrs

    def validate_currency(self, value: str) -> str:
        return value.upper()

    def validate_owner(self, value: User | None) -> User | None:
        current = self.instance.owner if self.instance is not None else None
        if not may_own(user=request_user(self), owner=value, current=current):
            raise serializers.ValidationError(OWNER_REFUSED)
        return value


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
    stage = IntegerFilter(field_name="stage_id")
    owner = IntegerFilter(field_name="owner_id")

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


REFUSED_WIN = (
    "Winning the deal makes its lead a customer, and the lead cannot become one: it is "
    "disqualified (recycle it first)."
)


def _writes(
    summary: str,
    serializer: type[serializers.Serializer],
    code: int,
    refused: str,
    conflict: str = "",
) -> Any:
    """A write's schema: its answer, and the 403 of a lead the caller may not work on
    (and the 409 of a ``conflict``, when it has one)."""
    responses: dict[int, Any] = {code: serializer, 403: OpenApiResponse(ErrorSerializer, refused)}
    if conflict:
        responses[409] = OpenApiResponse(ErrorSerializer, conflict)
    return extend_schema(summary=summary, responses=responses)


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
    create=_writes("Create a deal", DealSerializer, 201, REFUSED_ON_LEAD, REFUSED_WIN),
    update=_writes("Replace a deal", DealSerializer, 200, REFUSED_ON_LEAD, REFUSED_WIN),
    partial_update=_writes(
        "Change some fields of a deal", DealSerializer, 200, REFUSED_ON_LEAD, REFUSED_WIN
    ),
)
class DealViewSet(LeadChildViewSet):
    """Deals go through ``leads.deals``: a deal won makes its lead a customer, a deal
    lost needs a reason from the pick-list, and the lead's deal outcome follows."""

    serializer_class = DealSerializer
    filterset_class = DealFilter
    ordering_fields = ["created_at", "amount", "closed_at", "expected_close"]
    ordering = ("-created_at", "-id")

    def get_queryset(self) -> QuerySet[Deal]:
        if getattr(self, "swagger_fake_view", False):
            return Deal.objects.none()
        return deals_visible_to(self.caller).select_related("stage")

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        data = dict(serializer.validated_data)
        lead = data.pop("lead")
        self.check_lead(lead)
        closing = {name: data.pop(name) for name in CLOSING if name in data}
        with _conflicts(), transaction.atomic():
            deal = deal_create(lead=lead, by=self.caller, **data)
            if closing.get("status", DealStatus.OPEN) != DealStatus.OPEN:
                deal = deal_update(deal=deal, by=self.caller, changes=closing)
        serializer.instance = deal

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        deal = serializer.instance
        if not isinstance(deal, Deal):
            raise TypeError("An update changes a deal.")
        self.check_change(deal, serializer.validated_data)
        with _conflicts():
            deal_update(deal=deal, by=self.caller, changes=serializer.validated_data)


@contextmanager
def _conflicts() -> Iterator[None]:
    """A lead that cannot become a customer answers 409, as a refused stage move does."""
    try:
        yield
    except StageTransitionError as exc:
        raise Conflict(" ".join(exc.messages)) from None


class DealStageSerializer(serializers.ModelSerializer):
    class Meta:
        model = DealStage
        fields = ["id", "name", "position", "probability", "rot_days"]


class LostReasonSerializer(serializers.ModelSerializer):
    class Meta:
        model = LostReason
        fields = ["id", "name", "position", "active"]


@extend_schema_view(
    list=extend_schema(summary="List the deal pipeline's stages, in order"),
    retrieve=extend_schema(summary="Show a deal stage"),
)
class DealStageViewSet(viewsets.ReadOnlyModelViewSet):
    """The stages admins and marketers set up in the admin; read by everyone with a role."""

    queryset = DealStage.objects.all()
    serializer_class = DealStageSerializer
    permission_classes = [RoleReadModelWrite]
    filter_backends: list[Any] = []
    pagination_class = None


@extend_schema_view(
    list=extend_schema(summary="List the reasons a deal can be lost for"),
    retrieve=extend_schema(summary="Show a lost reason"),
)
class LostReasonViewSet(viewsets.ReadOnlyModelViewSet):
    """The pick-list of lost reasons (``active``: offered for new losses)."""

    queryset = LostReason.objects.all()
    serializer_class = LostReasonSerializer
    permission_classes = [RoleReadModelWrite]
    filter_backends: list[Any] = []
    pagination_class = None


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

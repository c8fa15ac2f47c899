"""The REST API for scoring models and their rules.

Everyone with a role reads them; writing needs the scoring permissions that the
marketer and admin roles hold. A write is logged and rescored by ``scoring.changes``,
as in the admin.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Count, QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from crm.models import User
from leads.models import ProductLine
from scoring import changes
from scoring.models import EDITABLE_FIELDS, Rule, ScoringModel
from scoring.permissions import may_draft_suggestions, may_view_suggestions
from scoring.predictive.distill_runs import (
    model_distillation_request,
    model_draft_from_kept_distillation,
)
from scoring.predictive.distilling import DistillationError
from scoring.rule_fields import RuleError
from scoring.suggestion_runs import COMPUTING, model_draft_request, model_suggestion_request
from scoring.suggestions import CONFOUNDED, DUPLICATE, TOO_FEW, SuggestionError

from .errors import Conflict, ErrorSerializer
from .fields import caller
from .permissions import RoleReadModelWrite

MODEL_FIELDS = list(EDITABLE_FIELDS)
SCALE_FIELDS = ("base_score", "fit_cap", "engagement_cap", "max_points")


@extend_schema_field({"type": "number", "minimum": 0, "exclusiveMinimum": True, "nullable": True})
class HalfLifeField(serializers.FloatField):
    """Days, above 0 (the model refuses 0 and less); null for no decay."""


@extend_schema_field(
    {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "field": {"type": "string"},
                "operator": {"type": "string"},
                "value": {"type": "string"},
                "value_to": {"type": "string"},
            },
            "required": ["field", "operator"],
            "additionalProperties": False,
        },
    }
)
class ConditionsField(serializers.JSONField):
    """A fit rule's other tests, each {field, operator, value, value_to}; the rule checks
    them (``Rule.validate``) with its own test, so a bad one is a field error."""


@extend_schema_field({"type": "number", "minimum": 0, "exclusiveMinimum": True, "nullable": True})
class PerUnitField(serializers.FloatField):
    """Above 0 (the rule refuses 0 and less); null: the points once."""


class ScoringModelSerializer(serializers.ModelSerializer):
    decay_half_life_days = HalfLifeField(
        allow_null=True,
        required=False,
        help_text="Engagement halves every this many days; null: no decay.",
    )
    segment_product_lines = serializers.SlugRelatedField(
        slug_field="slug",
        many=True,
        queryset=ProductLine.objects.all(),
        required=False,
        help_text="Product line slugs; the model scores leads interested in any of them.",
    )
    rule_count = serializers.SerializerMethodField(help_text="How many rules the model has.")
    scale_0_100 = serializers.BooleanField(
        write_only=True,
        required=False,
        help_text="Put the score on a 0 to 100 scale: max_points 100, and the caps not given "
        "(nor set) so that base_score and both caps add up to 100.",
    )

    class Meta:
        model = ScoringModel
        fields = [
            "id",
            *MODEL_FIELDS,
            "segment_product_lines",
            "rule_count",
            "scale_0_100",
            "version_of",
            "decay_version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["version_of", "decay_version", "created_at", "updated_at"]

    def get_rule_count(self, model: ScoringModel) -> int:
        # Annotated on lists; a model just created or changed is counted.
        count = getattr(model, "rule_count", None)
        return model.rules.count() if count is None else count

    def validate_is_default(self, value: bool) -> bool:
        others = ScoringModel.objects.filter(is_default=True)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if value and others.exists():
            raise serializers.ValidationError("Another model is the default already.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        base = self.instance or ScoringModel()
        model = ScoringModel(**{f: getattr(base, f) for f in MODEL_FIELDS})
        for name, value in attrs.items():
            if name in MODEL_FIELDS:
                setattr(model, name, value)
        try:
            if attrs.pop("scale_0_100", False):
                model.scale_to_100()
                attrs.update(
                    {name: getattr(model, name) for name in SCALE_FIELDS if name != "base_score"}
                )
            model.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None
        return attrs


class RuleSerializer(serializers.ModelSerializer):
    model: serializers.PrimaryKeyRelatedField[ScoringModel] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )
    description = serializers.CharField(
        source="describe", read_only=True, help_text="The rule as a sentence."
    )
    conditions = ConditionsField(
        required=False,
        help_text="A fit rule's other tests, joined to its first by `join`.",
    )
    per_unit = PerUnitField(
        allow_null=True,
        required=False,
        help_text="Give the points for each this much of the (number) field; null: once.",
    )

    class Meta:
        model = Rule
        fields = [
            "id",
            "model",
            "name",
            "description",
            "kind",
            "points",
            "active",
            "field",
            "operator",
            "value",
            "value_to",
            "conditions",
            "join",
            "per_unit",
            "points_cap",
            "activity_type",
            "target",
            "property_name",
            "match",
            "pattern",
            "min_duration_seconds",
            "max_per_lead",
            "max_per_day",
            "bonus_count",
            "bonus_points",
            "recency_days",
            "window_days",
            "window_min",
            "window_measure",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        extra_kwargs = {
            "points_cap": {"min_value": 1},
            "window_days": {"min_value": 1},
            "window_min": {"min_value": 1},
        }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        rule = Rule(model=self.context["scoring_model"])
        if self.instance is not None:
            rule.__dict__.update(
                {f.attname: getattr(self.instance, f.attname) for f in Rule._meta.concrete_fields}
            )
        for name, value in attrs.items():
            setattr(rule, name, value)
        try:
            rule.validate()
        except RuleError as exc:
            raise serializers.ValidationError(
                {exc.field or api_settings.NON_FIELD_ERRORS_KEY: str(exc)}
            ) from None
        return attrs


class SuggestionFlagSerializer(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=[DUPLICATE, CONFOUNDED, TOO_FEW], help_text="What kind of second look."
    )
    text = serializers.CharField(help_text="Why, in words.")


class RuleSuggestionSerializer(serializers.Serializer):
    rule = serializers.IntegerField(source="rule_id")
    name = serializers.CharField()
    description = serializers.CharField(source="sentence", help_text="The rule as a sentence.")
    kind = serializers.CharField()
    active = serializers.BooleanField(help_text="Whether the rule is switched on now.")
    current_points = serializers.IntegerField()
    suggested_points = serializers.IntegerField(
        help_text="0: switch the rule off (a draft keeps its points and switches it off)."
    )
    matched = serializers.IntegerField(help_text="Closed leads the rule matches.")
    won = serializers.IntegerField(help_text="Of them, won.")
    lift = serializers.FloatField(
        source="lift.value",
        allow_null=True,
        help_text="Single-rule lift: the conversion of the closed leads it matches over "
        "the others'.",
    )
    lift_low = serializers.FloatField(source="lift.low", allow_null=True)
    lift_high = serializers.FloatField(source="lift.high", allow_null=True)
    log_odds = serializers.FloatField(
        allow_null=True,
        help_text="The fitted log-odds one match adds, the other rules held fixed; null "
        "when the rule was not fitted.",
    )
    flags = SuggestionFlagSerializer(many=True)


class WeightSuggestionSerializer(serializers.Serializer):
    ready = serializers.BooleanField(help_text="Whether points are proposed.")
    message = serializers.CharField(help_text="What the fit read, or why nothing is proposed.")
    won = serializers.IntegerField(help_text="Won leads in the model's segment.")
    lost = serializers.IntegerField(help_text="Lost leads in the model's segment.")
    min_closed = serializers.IntegerField(help_text="The won and the lost leads needed, each.")
    needed_won = serializers.IntegerField()
    needed_lost = serializers.IntegerField()
    points_per_log_odds = serializers.FloatField(allow_null=True)
    regularization = serializers.FloatField(
        allow_null=True, help_text="The L2 penalty's C, chosen by cross-validation."
    )
    cross_validated = serializers.BooleanField()
    rules = RuleSuggestionSerializer(many=True)


class SuggestionStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[COMPUTING], help_text="The fit runs in the background: ask again shortly."
    )
    since = serializers.DateTimeField(allow_null=True, help_text="When the fit was queued.")
    error = serializers.CharField(
        allow_blank=True, help_text="Why the last attempt failed, if it did (it is tried again)."
    )


class DistilledRuleSerializer(serializers.Serializer):
    rule = serializers.IntegerField(source="rule_id")
    name = serializers.CharField()
    description = serializers.CharField(source="sentence", help_text="The rule as a sentence.")
    kind = serializers.CharField()
    active = serializers.BooleanField(help_text="Whether the rule is switched on now.")
    current_points = serializers.IntegerField()
    proposed_points = serializers.IntegerField(
        help_text="0: switch the rule off (a draft keeps its points and switches it off)."
    )
    matched = serializers.IntegerField(help_text="Leads read that the rule matches.")
    log_odds = serializers.FloatField(
        allow_null=True,
        help_text="The log-odds the predictive model gives one match, the other rules held "
        "fixed; null when the rule was not fitted.",
    )
    reason = serializers.CharField(help_text="Why these points, in a sentence.")
    flags = SuggestionFlagSerializer(many=True)


class FeatureHintSerializer(serializers.Serializer):
    feature = serializers.CharField(help_text="The predictive model's raw input.")
    feature_label = serializers.CharField(source="label", help_text="The raw input in words.")
    text = serializers.CharField(help_text="What the model makes of it, in words.")


class DistillationSerializer(serializers.Serializer):
    ready = serializers.BooleanField(help_text="Whether points are proposed.")
    message = serializers.CharField(help_text="What the fit read, or why nothing is proposed.")
    predictive_model = serializers.IntegerField(
        source="predictive_id", allow_null=True, help_text="The live predictive model fitted to."
    )
    leads = serializers.IntegerField(help_text="Scored leads the fit read.")
    points_per_log_odds = serializers.FloatField(allow_null=True)
    regularization = serializers.FloatField(
        allow_null=True, help_text="The ridge penalty, chosen by cross-validation."
    )
    checked = serializers.IntegerField(help_text="Scored leads left out of the fit to check it.")
    r_squared = serializers.FloatField(
        allow_null=True, help_text="Share of the model's log-odds the rules reproduce."
    )
    rank_correlation = serializers.FloatField(
        allow_null=True,
        help_text="Spearman correlation of the proposed points' score with the model's chance.",
    )
    live_rank_correlation = serializers.FloatField(
        allow_null=True, help_text="The same for the points now."
    )
    holdout = serializers.IntegerField(
        help_text="The newest closed leads the predictive model did not train on."
    )
    holdout_won = serializers.IntegerField()
    model_auc = serializers.FloatField(
        allow_null=True, help_text="The predictive model's ROC AUC on them."
    )
    live_auc = serializers.FloatField(allow_null=True, help_text="The points now, on them.")
    proposed_auc = serializers.FloatField(allow_null=True, help_text="The proposed points.")
    rules = DistilledRuleSerializer(many=True)
    hints = FeatureHintSerializer(
        many=True, help_text="Strong features of the model that no switched-on rule reads."
    )


class SuggestionPermission(permissions.BasePermission):
    """Reading suggested weights and making a draft of them: ``scoring.permissions``."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not isinstance(user, User):
            return False
        if request.method in permissions.SAFE_METHODS:
            return may_view_suggestions(user)
        return may_draft_suggestions(user)


class ScoringModelFilter(django_filters.FilterSet):
    class Meta:
        model = ScoringModel
        fields = ["status", "is_default"]


class RuleFilter(django_filters.FilterSet):
    class Meta:
        model = Rule
        fields = ["kind", "active", "activity_type"]


@extend_schema_view(
    list=extend_schema(summary="List scoring models"),
    retrieve=extend_schema(summary="Show a scoring model"),
    create=extend_schema(summary="Create a scoring model (marketers and admins)"),
    update=extend_schema(summary="Replace a scoring model (marketers and admins)"),
    partial_update=extend_schema(summary="Change a scoring model (marketers and admins)"),
)
class ScoringModelViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ScoringModelSerializer
    permission_classes = [RoleReadModelWrite]
    filterset_class = ScoringModelFilter
    search_fields = ["name"]
    ordering_fields = ["name", "priority", "created_at"]
    ordering = ("-priority", "id")

    def get_queryset(self) -> QuerySet[ScoringModel]:
        return ScoringModel.objects.annotate(rule_count=Count("rules")).prefetch_related(
            "segment_product_lines"
        )

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        with transaction.atomic():
            model = serializer.save()
            changes.model_save(
                model=model,
                before=None,
                by=caller(self.request),
                reason="Model created through the API",
            )

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        assert isinstance(serializer.instance, ScoringModel)
        before = changes.model_snapshot(model=serializer.instance)
        with transaction.atomic():
            model = serializer.save()
            changes.model_save(
                model=model,
                before=before,
                by=caller(self.request),
                reason="Model changed through the API",
            )

    @extend_schema(
        summary="Make a draft version of a model (marketers and admins)",
        description="A copy of the model and its rules as a draft (`version_of` names the "
        "model): edit and preview it without touching any lead, then publish it.",
        request=None,
        responses={201: ScoringModelSerializer},
    )
    @action(detail=True, methods=["post"], url_path="draft")
    def draft(self, request: Request, pk: str | None = None) -> Response:
        copy = changes.model_duplicate(model=self.get_object(), by=caller(request))
        return Response(self.get_serializer(copy).data, status=201)

    @extend_schema(
        summary="Publish a draft version in place of its model (marketers and admins)",
        description="The draft takes the live model's segment, default role and priority "
        "and goes live; the live one is archived, kept to roll back to. Both are rescored "
        "on the bulk queue.",
        request=None,
        responses={
            200: ScoringModelSerializer,
            409: OpenApiResponse(
                ErrorSerializer, description="The model is not a draft version of a live model."
            ),
        },
    )
    @action(detail=True, methods=["post"], url_path="publish")
    def publish(self, request: Request, pk: str | None = None) -> Response:
        model = self.get_object()
        try:
            changes.model_publish(model=model, by=caller(request))
        except changes.PublishError as exc:
            raise Conflict(str(exc)) from None
        return Response(self.get_serializer(self.get_queryset().get(pk=model.pk)).data)

    @extend_schema(
        summary="Suggested weights for a model's rules (marketers and admins)",
        description="Points for every rule from an L2-regularized logistic regression of "
        "the won against the lost leads of the model's segment, beside each rule's "
        "single-rule lift, with flags in words: rules that duplicate another, rules whose "
        "single-rule lift is confounded, rules matching too few closed leads. Below "
        "`min_closed` won or lost leads nothing is proposed (`ready` false) and `message` "
        "says how many more are needed. The fit runs in the background: until it is done "
        "the answer is 202 with its status; ask again.",
        responses={200: WeightSuggestionSerializer, 202: SuggestionStatusSerializer},
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="suggested-weights",
        url_name="suggested-weights",
        permission_classes=[SuggestionPermission],
    )
    def suggested_weights(self, request: Request, pk: str | None = None) -> Response:
        state = model_suggestion_request(model=self.get_object())
        if not state.ready:
            return Response(SuggestionStatusSerializer(state).data, status=202)
        return Response(WeightSuggestionSerializer(state.suggestion).data)

    @extend_schema(
        summary="Make a draft version with the suggested weights (marketers and admins)",
        description="A draft version of the model (as `draft/` makes) with the suggested "
        "points: rules suggested 0 switched off, the others on with their points. Preview "
        "it, then publish it; no lead changes until then. The points are those of the "
        "suggestion `suggested-weights/` answers, kept for a while after their fit: once "
        "they are no longer kept, no draft is made and the answer is 202 with the fit's "
        "status, as `suggested-weights/` answers while it runs (`Location`: there); the "
        "weights fitted again may differ, so read them, then ask for the draft again.",
        request=None,
        responses={
            201: ScoringModelSerializer,
            202: OpenApiResponse(
                SuggestionStatusSerializer,
                description="The suggested weights are being fitted again: no draft.",
            ),
            409: OpenApiResponse(
                ErrorSerializer, description="Too few closed leads to suggest weights."
            ),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="suggested-weights/draft",
        url_name="suggested-weights-draft",
        permission_classes=[SuggestionPermission],
    )
    def suggested_weights_draft(self, request: Request, pk: str | None = None) -> Response:
        try:
            draft, state = model_draft_request(model=self.get_object(), by=caller(request))
        except SuggestionError as exc:
            raise Conflict(str(exc)) from None
        if draft is None:
            poll = reverse("api-scoring-model-suggested-weights", kwargs={"pk": pk})
            return Response(
                SuggestionStatusSerializer(state).data,
                status=202,
                headers={"Location": request.build_absolute_uri(poll)},
            )
        return Response(self.get_serializer(self.get_queryset().get(pk=draft.pk)).data, status=201)

    @extend_schema(
        summary="Rule weights derived from the live predictive model (marketers and admins)",
        description="Points for every rule that make the rule score follow the model's "
        "log-odds: a ridge regression of the live predictive model's log-odds on the rule "
        "matrix of the model's scored leads (a sample of 20,000 at most), converted to points "
        "as suggested weights are. With how well the rules reproduce the model (R², rank "
        "correlation), the ROC AUC of the points now, the proposed ones and the model on the "
        "newest closed leads the model did not train on, and the model's strong features no "
        "rule reads. Without a live predictive model nothing is proposed (`ready` false, "
        "`message` says why). The fit runs in the background: until it is done the answer "
        "is 202 with its status; ask again.",
        responses={200: DistillationSerializer, 202: SuggestionStatusSerializer},
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="predictive-weights",
        url_name="predictive-weights",
        permission_classes=[SuggestionPermission],
    )
    def predictive_weights(self, request: Request, pk: str | None = None) -> Response:
        state = model_distillation_request(model=self.get_object())
        if not state.ready:
            return Response(SuggestionStatusSerializer(state).data, status=202)
        return Response(DistillationSerializer(state.distillation).data)

    @extend_schema(
        summary="Make a draft version with the rule weights from the predictive model "
        "(marketers and admins)",
        description="A draft version of the model (as `draft/` makes) with the points "
        "`predictive-weights/` proposes: rules proposed 0 switched off, the others on with "
        "their points. Made only from a fit already done (ask `predictive-weights/` until it "
        "answers 200). Preview it, then publish it; no lead changes until then.",
        request=None,
        responses={
            201: ScoringModelSerializer,
            409: OpenApiResponse(
                ErrorSerializer,
                description="No live predictive model, or its fit is still running.",
            ),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="predictive-weights/draft",
        url_name="predictive-weights-draft",
        permission_classes=[SuggestionPermission],
    )
    def predictive_weights_draft(self, request: Request, pk: str | None = None) -> Response:
        try:
            draft = model_draft_from_kept_distillation(model=self.get_object(), by=caller(request))
        except DistillationError as exc:
            raise Conflict(str(exc)) from None
        return Response(self.get_serializer(self.get_queryset().get(pk=draft.pk)).data, status=201)

    @extend_schema(
        summary="Put back the version a live model replaced (marketers and admins)",
        request=None,
        responses={
            200: ScoringModelSerializer,
            409: OpenApiResponse(
                ErrorSerializer,
                description="The model is not live, or replaced no version that is kept.",
            ),
        },
    )
    @action(detail=True, methods=["post"], url_path="roll-back")
    def roll_back(self, request: Request, pk: str | None = None) -> Response:
        model = self.get_object()
        try:
            changes.model_rollback(model=model, by=caller(request))
        except changes.PublishError as exc:
            raise Conflict(str(exc)) from None
        assert model.version_of_id is not None
        return Response(self.get_serializer(self.get_queryset().get(pk=model.version_of_id)).data)


@extend_schema_view(
    list=extend_schema(summary="List the rules of a scoring model"),
    retrieve=extend_schema(summary="Show a rule"),
    create=extend_schema(summary="Add a rule to a scoring model (marketers and admins)"),
    update=extend_schema(summary="Replace a rule (marketers and admins)"),
    partial_update=extend_schema(summary="Change a rule (marketers and admins)"),
    destroy=extend_schema(
        summary="Delete a rule (marketers and admins)",
        description="The deletion is logged with the rule as it was, and a live model's "
        "leads are rescored without it on the bulk queue. To keep a rule's history and "
        "stop it scoring, set `active` to false instead.",
    ),
)
class RuleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The rules of the scoring model named in the URL; an unknown model answers 404."""

    serializer_class = RuleSerializer
    permission_classes = [RoleReadModelWrite]
    filterset_class = RuleFilter
    ordering_fields = ["points", "name", "created_at"]
    ordering = ("kind", "-points", "id")

    def scoring_model(self) -> ScoringModel:
        if not hasattr(self, "_scoring_model"):
            pk = self.kwargs.get("model_pk")
            self._scoring_model = get_object_or_404(ScoringModel, pk=pk)
        return self._scoring_model

    def get_queryset(self) -> QuerySet[Rule]:
        if getattr(self, "swagger_fake_view", False):
            return Rule.objects.none()
        return Rule.objects.filter(model=self.scoring_model())

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if not getattr(self, "swagger_fake_view", False):
            context["scoring_model"] = self.scoring_model()
        return context

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        with transaction.atomic():
            rule = serializer.save(model=self.scoring_model())
            changes.rule_save(rule=rule, before=None, by=caller(self.request))

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        assert isinstance(serializer.instance, Rule)
        before = changes.rule_snapshot(rule=serializer.instance)
        with transaction.atomic():
            rule = serializer.save()
            changes.rule_save(rule=rule, before=before, by=caller(self.request))

    def perform_destroy(self, instance: Rule) -> None:
        with transaction.atomic():
            changes.rule_delete(rule=instance, by=caller(self.request))

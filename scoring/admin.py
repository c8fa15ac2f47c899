"""The marketers' tool: scoring models with their rules (``scoring.rule_admin``), preview,
activation and rescoring."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminTextareaWidget
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from crm.http import AuthenticatedHttpRequest

from . import changes
from .models import (
    EDITABLE_FIELDS,
    ChangeLog,
    DomainList,
    LeadScore,
    ModelStatus,
    RescoreJob,
    RescoreStatus,
    Rule,
    ScoreEntry,
    ScoringModel,
)
from .permissions import may_draft_suggestions, may_view_suggestions
from .preview import model_preview
from .rescore_jobs import rescore_job_start
from .rule_admin import RULE_GROUPS, RuleInline
from .suggestion_runs import REFITTING, model_draft_request, model_suggestion_request
from .suggestions import SuggestionError
from .thresholds import ThresholdMoves, threshold_moves_count


class ScoringModelForm(forms.ModelForm):
    """The model's form, which says how many leads a lowered threshold moves forward
    (``scoring.thresholds``) and saves only once that is confirmed."""

    move_leads = forms.BooleanField(
        required=False,
        label="Move the leads past the thresholds",
        help_text="Asked when a change lowers a threshold or raises the base score of a "
        "live model: the leads it puts past a threshold move forward once, and are "
        "handed off as usual.",
    )

    scale_0_100 = forms.BooleanField(
        required=False,
        label="Put the score on a 0 to 100 scale",
        help_text="Sets the maximum to 100, and the caps left empty so that the base score "
        "and both caps add up to 100.",
    )

    class Meta:
        model = ScoringModel
        # The admin's fieldsets choose what shows; these are the fields it may save.
        fields = (*EDITABLE_FIELDS, "segment_product_lines", "predictive_excluded_fields")

    def clean_predictive_excluded_fields(self) -> list[str]:
        value = self.cleaned_data.get("predictive_excluded_fields") or []
        if not isinstance(value, list) or not all(isinstance(key, str) for key in value):
            raise forms.ValidationError('Give the field keys as a list, e.g. ["budget", "rating"].')
        return [key.strip() for key in value if key.strip()]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("scale_0_100"):
            self._scale_to_100(cleaned)
        mql, sql = cleaned.get("mql_threshold"), cleaned.get("sql_threshold")
        if (
            self.instance.pk is None
            or mql is None
            or sql is None
            or cleaned.get("status") != ModelStatus.ACTIVE
            or cleaned.get("move_leads")
        ):
            return cleaned
        moves = threshold_moves_count(
            model=self.instance,
            mql=mql,
            sql=sql,
            base_score=cleaned.get("base_score"),
            max_points=cleaned.get("max_points"),
        )
        if moves.total:
            field = "sql_threshold" if moves.to_sql else "mql_threshold"
            self.add_error(
                field,
                f"These thresholds and base score move {moves.describe()} forward now, "
                "with their hand-offs. Tick “Move the leads past the thresholds” to save.",
            )
        return cleaned

    def _scale_to_100(self, cleaned: dict[str, Any]) -> None:
        scale = ("base_score", "fit_cap", "engagement_cap", "max_points")
        if cleaned.get("base_score") is None:
            return  # the base score's own error is shown
        model = ScoringModel(**{name: cleaned.get(name) for name in scale})
        try:
            model.scale_to_100()
        except ValidationError as exc:
            self.add_error(None, exc)
            return
        cleaned.update({name: getattr(model, name) for name in scale})


# How many finished rescores a model's page shows, the latest first, beside every one
# still queued or running.
RECENT_RESCORES = 5


def shown_rescores(model: ScoringModel) -> QuerySet[RescoreJob]:
    """The rescores a model's page shows and follows: those not finished, the latest others."""
    latest = list(
        model.rescores.order_by("-created_at").values_list("pk", flat=True)[:RECENT_RESCORES]
    )
    waiting = Q(status__in=(RescoreStatus.QUEUED, RescoreStatus.RUNNING))
    return model.rescores.filter(waiting | Q(pk__in=latest)).order_by("-created_at")


def rescore_progress_text(job: RescoreJob) -> str:
    return f"{job.done:,} / {job.total:,} leads · {job.get_status_display().lower()}"


class RescoreJobInline(admin.TabularInline):
    model = RescoreJob
    verbose_name_plural = "Rescores: those running and the latest"
    fields = (
        "created_at",
        "reason",
        "status",
        "progress",
        "changed_entries",
        "threshold_moves",
        "finished_at",
    )
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-created_at",)
    template = "admin/scoring/scoringmodel/rescore_rows.html"

    @admin.display(description="Progress")
    def progress(self, job: RescoreJob) -> str:
        # static/js/rescore-progress.js keeps it current while the job runs.
        return format_html(
            '<span data-rescore-job="{}" data-status="{}">'
            '<progress max="100" value="{}" aria-label="Rescore progress">{}%</progress> '
            "<span data-rescore-text>{}</span></span>",
            job.pk,
            job.status,
            job.percent,
            job.percent,
            rescore_progress_text(job),
        )

    @admin.display(description="Moved past a lowered threshold")
    def threshold_moves(self, job: RescoreJob) -> str:
        if job.mql_threshold_before is None and job.sql_threshold_before is None:
            return "—"
        return ThresholdMoves(to_mql=job.moved_to_mql, to_sql=job.moved_to_sql).describe()


@admin.register(ScoringModel)
class ScoringModelAdmin(admin.ModelAdmin):
    form = ScoringModelForm
    readonly_fields = ("version_of",)
    list_select_related = ("version_of",)
    list_display = (
        "name",
        "status",
        "version_of",
        "is_default",
        "priority",
        "mql_threshold",
        "sql_threshold",
        "hot_from",
        "warm_from",
        "decay_half_life_days",
        "rule_count",
    )
    list_filter = ("status",)
    search_fields = ("name",)
    formfield_overrides = {
        # The product lines a model scores, a tick box each: a short list, shown in full.
        models.ManyToManyField: {"widget": forms.CheckboxSelectMultiple},
        models.TextField: {"widget": AdminTextareaWidget(attrs={"rows": 3})},
    }
    # A new model is entered with its first rules in full; a saved model lists its rules
    # a line each, by group, and each rule is edited on its own page (scoring.rule_admin).
    inlines = [RuleInline]
    actions = ["duplicate_as_draft", "activate", "roll_back", "rescore"]
    fieldsets = (
        (
            None,
            {"fields": ("name", "description", "status", "is_default", "priority", "version_of")},
        ),
        ("Segment", {"fields": ("segment_product_lines",)}),
        (
            "Thresholds",
            {
                "fields": (
                    ("mql_threshold", "sql_threshold"),
                    ("hot_from", "warm_from"),
                    "move_leads",
                )
            },
        ),
        (
            "Score scale",
            {
                "description": "Every lead starts from the base score; fit and engagement "
                "count up to their caps, the score up to the maximum.",
                "fields": (
                    ("base_score", "max_points"),
                    ("fit_cap", "engagement_cap"),
                    "scale_0_100",
                ),
            },
        ),
        (
            "Engagement",
            {
                "fields": (
                    ("engaged_from", "decay_half_life_days", "idle_week_penalty"),
                    ("surge_points", "surge_hours"),
                )
            },
        ),
        (
            "Fit grades and predictive scoring",
            {
                "classes": ("collapse",),
                "description": "Custom fields marked “set after contact” are never learnt "
                "from by predictive scoring; list here any other field sales fill in after "
                "the hand-off.",
                "fields": (
                    ("grade_a_from", "grade_b_from", "grade_c_from"),
                    ("decide_on", "predictive_share"),
                    "predictive_excluded_fields",
                ),
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ScoringModel]:
        return super().get_queryset(request).annotate(n_rules=Count("rules"))

    def get_inlines(self, request: HttpRequest, obj: ScoringModel | None) -> list[Any]:
        if obj is None:
            return [RuleInline]
        return [*RULE_GROUPS, RescoreJobInline]

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, RescoreJobInline) and obj.pk:
            # The same rescores as rescores.json reports; the changelist has them all.
            kwargs["queryset"] = shown_rescores(obj).select_related("model")
        return kwargs

    @admin.display(description="Rules", ordering="n_rules")
    def rule_count(self, model: ScoringModel) -> int:
        return model.n_rules  # type: ignore[attr-defined]  # annotated by get_queryset

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:pk>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="scoring_scoringmodel_preview",
            ),
            path(
                "<int:pk>/suggested-weights/",
                self.admin_site.admin_view(self.suggested_weights_view),
                name="scoring_scoringmodel_suggested_weights",
            ),
            path(
                "<int:pk>/rescores.json",
                self.admin_site.admin_view(self.rescores_view),
                name="scoring_scoringmodel_rescores",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        # A non-numeric id must reach the admin's "doesn't exist" redirect, not a 500.
        if str(object_id).isdigit():
            pk = int(object_id)
            extra_context["preview_url"] = reverse("admin:scoring_scoringmodel_preview", args=[pk])
            if may_view_suggestions(request.user):
                extra_context["suggested_weights_url"] = reverse(
                    "admin:scoring_scoringmodel_suggested_weights", args=[pk]
                )
            # The model's history includes its rules' changes, deleted rules too.
            extra_context["changes"] = ChangeLog.objects.filter(
                Q(object_type="scoringmodel", object_id=pk)
                | Q(object_type="rule", after__model=pk)
                | Q(object_type="rule", before__model=pk)
            ).select_related("by")[:20]
        return super().change_view(request, object_id, form_url, extra_context)

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        model = get_object_or_404(ScoringModel, pk=pk)
        if not self.has_view_permission(request, model):
            return redirect("admin:index")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Preview of {model}",
            "preview": model_preview(model=model),
            "original": model,
        }
        return TemplateResponse(request, "admin/scoring/scoringmodel/preview.html", context)

    def suggested_weights_view(self, request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
        """The points a fit on the closed leads suggests for the model's rules, beside
        their single-rule lift, fitted on the bulk queue (``scoring.suggestion_runs``:
        202 and a page that reloads itself until the fit is kept); POST makes a draft
        version with them."""
        model = get_object_or_404(ScoringModel, pk=pk)
        if not may_view_suggestions(request.user):
            raise PermissionDenied
        if request.method == "POST":
            return self._draft_from_suggestion(request, model)
        state = model_suggestion_request(model=model)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Suggested weights for {model}",
            "state": state,
            "suggestion": state.suggestion,
            "may_draft": may_draft_suggestions(request.user),
            "original": model,
        }
        return TemplateResponse(
            request,
            "admin/scoring/scoringmodel/suggested_weights.html",
            context,
            status=200 if state.ready else 202,
        )

    def _draft_from_suggestion(
        self, request: AuthenticatedHttpRequest, model: ScoringModel
    ) -> HttpResponse:
        if not may_draft_suggestions(request.user):
            raise PermissionDenied
        try:
            draft, _ = model_draft_request(model=model, by=request.user)
        except SuggestionError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return redirect("admin:scoring_scoringmodel_suggested_weights", pk=model.pk)
        if draft is None:
            # Fitted again in the background: the page follows the fit (202, reloading).
            self.message_user(request, REFITTING, messages.INFO)
            return redirect("admin:scoring_scoringmodel_suggested_weights", pk=model.pk)
        self.message_user(
            request,
            f"Created the draft “{draft}” with the suggested weights: preview it before "
            "publishing it.",
            messages.SUCCESS,
        )
        return redirect("admin:scoring_scoringmodel_change", draft.pk)

    def rescores_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The model's latest rescore jobs, for the model page's progress bars."""
        model = get_object_or_404(ScoringModel, pk=pk)
        if not self.has_view_permission(request, model):
            raise PermissionDenied
        jobs = [
            {
                "id": job.pk,
                "status": job.status,
                "percent": job.percent,
                "text": rescore_progress_text(job),
            }
            for job in shown_rescores(model)
        ]
        return JsonResponse({"jobs": jobs})

    def save_model(self, request, obj, form, change) -> None:
        before = changes.model_snapshot(model=obj) if change else None
        super().save_model(request, obj, form, change)
        request._scoring_edit = changes.ModelEdit(model=obj)
        request._scoring_before = before

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        # Logged once the segment (many-to-many) and the rules are saved too.
        request._scoring_edit.model_changed = changes.model_change_record(
            model=form.instance, before=request._scoring_before, by=request.user
        )
        request._scoring_edit.before = request._scoring_before

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is not Rule:
            super().save_formset(request, form, formset, change)
            return
        befores = {
            rule.pk: changes.rule_snapshot(rule=rule) for rule in formset.queryset if rule.pk
        }
        instances = formset.save(commit=False)
        edit = request._scoring_edit
        for rule in formset.deleted_objects:
            changes.rule_delete(rule=rule, by=request.user, rescore=False)
            edit.rules_deleted = True
        for rule in instances:
            before = befores.get(rule.pk)
            rule.save()
            if changes.rule_change_record(rule=rule, before=before, by=request.user):
                edit.rule_changed(rule, before)
        formset.save_m2m()

    def response_change(self, request, obj):
        self._rescore(request, "Model changed in the admin")
        return super().response_change(request, obj)

    def response_add(self, request, obj, post_url_continue=None):
        self._rescore(request, "Model created in the admin")
        return super().response_add(request, obj, post_url_continue)

    def _rescore(self, request: AuthenticatedHttpRequest, reason: str) -> None:
        edit = getattr(request, "_scoring_edit", None)
        if edit is None:
            return
        jobs = changes.edit_rescore(edit=edit, by=request.user, reason=reason)
        if not jobs:
            return
        if jobs[0].rule_id is not None:
            message = (
                f"Rescoring only what {len(jobs)} changed rule(s) touch, on the bulk queue; "
                "progress shows below."
            )
        else:
            message = (
                f"Rescoring the leads of “{edit.model}” on the bulk queue (job {jobs[0].pk}); "
                "progress shows below."
            )
        self.message_user(request, message, messages.INFO)

    @admin.action(description="Duplicate as a draft")
    def duplicate_as_draft(
        self, request: AuthenticatedHttpRequest, queryset: QuerySet[ScoringModel]
    ) -> None:
        for model in queryset:
            copy = changes.model_duplicate(model=model, by=request.user)
            self.message_user(request, f"Created the draft “{copy}”.", messages.SUCCESS)

    @admin.action(description="Activate and rescore (a draft version: publish it in place)")
    def activate(self, request: AuthenticatedHttpRequest, queryset: QuerySet[ScoringModel]) -> None:
        for model in queryset.exclude(status=ModelStatus.ACTIVE).select_related("version_of"):
            if model.is_candidate:
                self._version_change(request, changes.model_publish, model, model.version_of)
                continue
            changes.model_activate(model=model, by=request.user)
            self.message_user(request, f"“{model}” is live; its leads are being rescored.")

    @admin.action(description="Roll back to the version it replaced")
    def roll_back(
        self, request: AuthenticatedHttpRequest, queryset: QuerySet[ScoringModel]
    ) -> None:
        for model in queryset.select_related("version_of"):
            self._version_change(request, changes.model_rollback, model.version_of, model)

    def _version_change(
        self, request: AuthenticatedHttpRequest, change: Any, live: Any, archived: Any
    ) -> None:
        """Publish or roll back (``change``), saying which version is live now."""
        model = live if change is changes.model_publish else archived
        try:
            change(model=model, by=request.user)
        except changes.PublishError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(
            request,
            f"“{live}” is live in place of “{archived}”, which is archived and can be put "
            "back; the leads are being rescored.",
            messages.SUCCESS,
        )

    @admin.action(description="Rescore all leads now")
    def rescore(self, request: AuthenticatedHttpRequest, queryset: QuerySet[ScoringModel]) -> None:
        with transaction.atomic():
            for model in queryset:
                rescore_job_start(model=model, reason="Requested in the admin", by=request.user)
        self.message_user(request, f"Queued {queryset.count()} rescore(s) on the bulk queue.")


@admin.register(DomainList)
class DomainListAdmin(admin.ModelAdmin):
    list_display = ("domain", "kind", "note")
    list_filter = ("kind",)
    search_fields = ("domain",)


@admin.register(ScoreEntry)
class ScoreEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "lead", "model", "points", "reason", "kind", "by")
    list_filter = ("kind", "model")
    list_select_related = ("lead", "model", "by")
    search_fields = ("lead__email", "reason")
    raw_id_fields = ("lead", "activity", "rule", "reversal_of")
    show_full_result_count = False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(LeadScore)
class LeadScoreAdmin(admin.ModelAdmin):
    list_display = ("lead", "model", "score", "band", "grade", "quadrant", "is_primary")
    list_filter = ("model", "band", "grade", "is_primary")
    list_select_related = ("lead", "model")
    search_fields = ("lead__email",)
    raw_id_fields = ("lead",)
    show_full_result_count = False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(RescoreJob)
class RescoreJobAdmin(admin.ModelAdmin):
    list_display = ("created_at", "model", "reason", "status", "percent", "done", "total")
    list_filter = ("status", "model")
    readonly_fields = [f.name for f in RescoreJob._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ChangeLog)
class ChangeLogAdmin(admin.ModelAdmin):
    list_display = ("at", "object_type", "object_repr", "action", "by")
    list_filter = ("object_type", "action")
    search_fields = ("object_repr",)
    readonly_fields = [f.name for f in ChangeLog._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

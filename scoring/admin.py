"""The marketers' tool: scoring models with inline rules, preview, activation and rescoring."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from crm.models import Role
from leads.admin import LeadAdmin
from leads.models import Lead

from . import services
from .models import (
    ChangeLog,
    DomainList,
    LeadScore,
    ModelStatus,
    RescoreJob,
    Rule,
    ScoreEntry,
    ScoringModel,
)


class RuleInline(admin.StackedInline):
    model = Rule
    extra = 0
    fieldsets = (
        (None, {"fields": (("name", "kind", "points", "active"), "sentence")}),
        ("Fit: who they are", {"fields": (("field", "operator"), ("value", "value_to"))}),
        (
            "Engagement: what they do",
            {
                "fields": (
                    ("activity_type", "target", "property_name"),
                    ("match", "pattern", "min_duration_seconds"),
                    ("max_per_day", "max_per_lead", "recency_days"),
                    ("bonus_count", "bonus_points"),
                )
            },
        ),
    )
    readonly_fields = ("sentence",)

    @admin.display(description="Reads as")
    def sentence(self, rule: Rule) -> str:
        return rule.describe() if rule.pk else "—"


class RescoreJobInline(admin.TabularInline):
    model = RescoreJob
    fields = ("created_at", "reason", "status", "progress", "changed_entries", "finished_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-created_at",)

    @admin.display(description="Progress")
    def progress(self, job: RescoreJob) -> str:
        return format_html(
            '<progress max="100" value="{}" aria-label="Rescore progress">{}%</progress> '
            "{} / {} leads",
            job.percent,
            job.percent,
            job.done,
            job.total,
        )


@admin.register(ScoringModel)
class ScoringModelAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "status",
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
    filter_horizontal = ("segment_product_lines",)
    inlines = [RuleInline, RescoreJobInline]
    actions = ["duplicate_as_draft", "activate", "rescore"]
    fieldsets = (
        (None, {"fields": ("name", "description", "status", "is_default", "priority")}),
        ("Segment", {"fields": ("segment_product_lines",)}),
        ("Thresholds", {"fields": (("mql_threshold", "sql_threshold"), ("hot_from", "warm_from"))}),
        ("Fit grades", {"fields": (("grade_a_from", "grade_b_from", "grade_c_from"),)}),
        (
            "Engagement",
            {
                "fields": (
                    "engaged_from",
                    ("decay_half_life_days", "idle_week_penalty"),
                    "max_points",
                    ("surge_points", "surge_hours"),
                )
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ScoringModel]:
        return super().get_queryset(request).annotate(n_rules=Count("rules"))

    @admin.display(description="Rules", ordering="n_rules")
    def rule_count(self, model: ScoringModel) -> int:
        return model.n_rules

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:pk>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="scoring_scoringmodel_preview",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        # A non-numeric id must reach the admin's "doesn't exist" redirect, not a 500.
        if str(object_id).isdigit():
            pk = int(object_id)
            extra_context["preview_url"] = reverse("admin:scoring_scoringmodel_preview", args=[pk])
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
            "preview": services.model_preview(model=model),
            "original": model,
        }
        return TemplateResponse(request, "admin/scoring/scoringmodel/preview.html", context)

    def save_model(self, request, obj, form, change) -> None:
        before = services.snapshot(ScoringModel.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        request._scoring_changes = {"model": form.has_changed(), "rules": set(), "deleted": False}
        services.changelog_record(
            obj=obj, action="change" if change else "create", before=before, by=request.user
        )

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is not Rule:
            super().save_formset(request, form, formset, change)
            return
        befores = {
            rule.pk: services.snapshot(Rule.objects.get(pk=rule.pk))
            for rule in formset.queryset
            if rule.pk
        }
        instances = formset.save(commit=False)
        changes = request._scoring_changes
        changes["deleted"] = bool(formset.deleted_objects)
        for rule in formset.deleted_objects:
            services.changelog_record(
                obj=rule, action="delete", before=befores.get(rule.pk), by=request.user
            )
            rule.delete()
        for rule in instances:
            is_new = rule.pk is None
            rule.save()
            changes["rules"].add(rule.pk)
            services.changelog_record(
                obj=rule,
                action="create" if is_new else "change",
                before=befores.get(rule.pk),
                by=request.user,
            )
        formset.save_m2m()

    def response_change(self, request, obj):
        self._rescore_if_live(request, obj, "Model changed in the admin")
        return super().response_change(request, obj)

    def response_add(self, request, obj, post_url_continue=None):
        self._rescore_if_live(request, obj, "Model created in the admin")
        return super().response_add(request, obj, post_url_continue)

    def _rescore_if_live(self, request: HttpRequest, obj: ScoringModel, reason: str) -> None:
        """Queue the cheapest rescore that makes the change true for every lead.

        A change to some rules of a live model rescores only what those rules touch; a
        change to the model itself, a deleted rule or a model going out of service
        rescores the model's leads in full.
        """
        changes = getattr(request, "_scoring_changes", None)
        if changes is None or not (changes["model"] or changes["rules"] or changes["deleted"]):
            return
        if obj.status != ModelStatus.ACTIVE and not obj.entries.exists():
            return
        if obj.status == ModelStatus.ACTIVE and not (changes["model"] or changes["deleted"]):
            rules = Rule.objects.filter(pk__in=changes["rules"])
            jobs = [
                services.rescore_job_start(
                    model=obj, rule=rule, reason=f"Rule “{rule}” changed", by=request.user
                )
                for rule in rules
            ]
            self.message_user(
                request,
                f"Rescoring only what {len(jobs)} changed rule(s) touch, on the bulk queue; "
                "progress shows below.",
                messages.INFO,
            )
            return
        job = services.rescore_job_start(model=obj, reason=reason, by=request.user)
        self.message_user(
            request,
            f"Rescoring the leads of “{obj}” on the bulk queue (job {job.pk}); "
            "progress shows below.",
            messages.INFO,
        )

    @admin.action(description="Duplicate as a draft")
    def duplicate_as_draft(self, request: HttpRequest, queryset: QuerySet[ScoringModel]) -> None:
        for model in queryset:
            copy = services.model_duplicate(model=model, by=request.user)
            self.message_user(request, f"Created the draft “{copy}”.", messages.SUCCESS)

    @admin.action(description="Activate and rescore")
    def activate(self, request: HttpRequest, queryset: QuerySet[ScoringModel]) -> None:
        for model in queryset.exclude(status=ModelStatus.ACTIVE):
            services.model_activate(model=model, by=request.user)
            self.message_user(request, f"“{model}” is live; its leads are being rescored.")

    @admin.action(description="Rescore all leads now")
    def rescore(self, request: HttpRequest, queryset: QuerySet[ScoringModel]) -> None:
        with transaction.atomic():
            for model in queryset:
                services.rescore_job_start(
                    model=model, reason="Requested in the admin", by=request.user
                )
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


# --- The lead admin, with scoring's manual adjustment ------------------------------------


class ScoreAdjustmentForm(forms.Form):
    points = forms.IntegerField(
        min_value=-1000, max_value=1000, help_text="Negative points lower the score."
    )
    reason = forms.CharField(max_length=200, help_text="Shown in the lead's score history.")

    def clean_points(self) -> int:
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError("Give a non-zero number of points.")
        return points


# Scoring sits above leads, so it extends the lead admin that leads registered with its
# own action instead of leads' admin importing scoring.
admin.site.unregister(Lead)


@admin.register(Lead)
class ScoredLeadAdmin(LeadAdmin):
    actions = [*(LeadAdmin.actions or ()), "adjust_score"]

    @admin.action(description="Adjust the score of the selected leads", permissions=["adjust"])
    def adjust_score(self, request: HttpRequest, queryset: QuerySet[Lead]) -> Any:
        """Ask for points and a reason, then add a manual ledger entry to each lead."""
        form = ScoreAdjustmentForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            count = services.leads_adjust_score(
                lead_ids=list(queryset.values_list("pk", flat=True)),
                points=form.cleaned_data["points"],
                reason=form.cleaned_data["reason"],
                by=request.user,
            )
            self.message_user(request, f"Adjusted the score of {count} lead(s).", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Adjust lead scores",
            "opts": self.model._meta,
            "form": form,
            "leads": queryset,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/leads/lead/adjust_score.html", context)

    def has_adjust_permission(self, request: HttpRequest) -> bool:
        """Managers and admins adjust scores by hand; reps and marketers do not."""
        return request.user.role in (Role.ADMIN, Role.MANAGER)

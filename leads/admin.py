from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import (
    Activity,
    Company,
    CustomFieldDefinition,
    Deal,
    Lead,
    Note,
    ProductLine,
    StageChange,
    Task,
)


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ("name", "domain", "industry", "employee_count", "country")
    list_filter = ("industry", "country")
    search_fields = ("name", "domain")


@admin.register(ProductLine)
class ProductLineAdmin(admin.ModelAdmin):
    list_display = ("name", "slug")
    search_fields = ("name",)
    prepopulated_fields = {"slug": ("name",)}


@admin.register(CustomFieldDefinition)
class CustomFieldDefinitionAdmin(admin.ModelAdmin):
    list_display = ("label", "key", "field_type", "required")
    search_fields = ("label", "key")


class ActivityInline(admin.TabularInline):
    model = Activity
    fields = ("occurred_at", "type", "url", "duration_seconds", "source", "scored_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    ordering = ("-occurred_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Activity]:
        # The 50 newest are enough for the admin; the rep page paginates the rest.
        queryset = super().get_queryset(request)
        newest = queryset.order_by("-occurred_at").values("pk")[:50]
        return queryset.filter(pk__in=newest)


class StageChangeInline(admin.TabularInline):
    model = StageChange
    fields = ("at", "from_stage", "to_stage", "by", "reason")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False


class DealInline(admin.TabularInline):
    model = Deal
    fields = ("name", "amount", "currency", "status", "closed_at", "lost_reason")
    extra = 0


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "email",
        "company",
        "stage",
        "score",
        "band",
        "grade",
        "owner",
        "last_activity_at",
    )
    list_filter = ("stage", "band", "grade", "quadrant", "source", "email_status", "seniority")
    list_select_related = ("company", "owner")
    search_fields = ("email", "first_name", "last_name", "company__name")
    autocomplete_fields = ("company", "owner")
    filter_horizontal = ("product_interests",)
    show_full_result_count = False
    ordering = ("-score", "-id")
    readonly_fields = (
        "stage",
        "stage_changed_at",
        "score",
        "fit_score",
        "engagement_score",
        "band",
        "grade",
        "quadrant",
        "created_at",
        "updated_at",
        "first_activity_at",
        "last_activity_at",
    )
    fieldsets = (
        (None, {"fields": ("first_name", "last_name", "email", "phone", "email_status")}),
        ("Role", {"fields": ("job_title", "seniority", "department", "company")}),
        ("Location", {"fields": ("country", "region", "city")}),
        (
            "Origin",
            {
                "fields": (
                    "source",
                    "campaign",
                    ("utm_source", "utm_medium", "utm_campaign"),
                    ("utm_term", "utm_content"),
                    "product_interests",
                )
            },
        ),
        ("BANT", {"fields": ("budget", "authority", "need", "timeline")}),
        ("Custom fields", {"fields": ("custom_fields",)}),
        (
            "Pipeline",
            {"fields": ("owner", "stage", "stage_changed_at", "disqualification_reason")},
        ),
        (
            "Score",
            {"fields": (("score", "band", "grade", "quadrant"), ("fit_score", "engagement_score"))},
        ),
        (
            "Timestamps",
            {"fields": ("created_at", "updated_at", "first_activity_at", "last_activity_at")},
        ),
    )
    inlines = [StageChangeInline, DealInline, ActivityInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Lead]:
        return super().get_queryset(request).visible_to(request.user)


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "type", "lead", "url", "source", "scored_at")
    list_filter = ("type", "source")
    list_select_related = ("lead",)
    search_fields = ("lead__email", "url", "idempotency_key")
    raw_id_fields = ("lead", "created_by")
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    readonly_fields = ("received_at", "scored_at")


@admin.register(StageChange)
class StageChangeAdmin(admin.ModelAdmin):
    list_display = ("at", "lead", "from_stage", "to_stage", "by", "reason")
    list_filter = ("to_stage", "from_stage")
    list_select_related = ("lead", "by")
    search_fields = ("lead__email",)
    raw_id_fields = ("lead",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: StageChange | None = None) -> bool:
        return False


@admin.register(Deal)
class DealAdmin(admin.ModelAdmin):
    list_display = ("name", "lead", "amount", "currency", "status", "closed_at")
    list_filter = ("status", "currency")
    list_select_related = ("lead",)
    search_fields = ("name", "lead__email")
    raw_id_fields = ("lead",)


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("title", "lead", "assignee", "kind", "due_at", "done_at")
    list_filter = ("kind", "done_at")
    list_select_related = ("lead", "assignee")
    search_fields = ("title", "lead__email")
    raw_id_fields = ("lead",)
    autocomplete_fields = ("assignee",)


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ("__str__", "lead", "author", "created_at")
    list_select_related = ("lead", "author")
    search_fields = ("body", "lead__email")
    raw_id_fields = ("lead",)

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.html import format_html

from crm.models import User

from . import rep_admin  # noqa: F401  (the user admin, with the product lines reps sell)
from .models import (
    Activity,
    Company,
    CustomFieldDefinition,
    Deal,
    Lead,
    Note,
    PendingEvent,
    ProductLine,
    StageChange,
    Task,
    TrackedEvent,
    TrackingIdentity,
    TrackingKey,
    WebForm,
    normalize_email,
)
from .permissions import (
    ASSIGNEE_REFUSED,
    OWNER_REFUSED,
    email_in_use,
    may_assign_task,
    may_change_company,
    may_own,
    tasks_visible_to,
)
from .services import email_error, lead_save_profile


class UserBoundForm(forms.ModelForm):
    """A change form that knows who fills it in (set per request by ``UserBoundFormMixin``)."""

    user: User


class UserBoundFormMixin:
    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        # ``get_form`` builds a new class on every call: the user stays with this request.
        form.user = request.user
        return form


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    """Everyone with a role reads companies; who may change one is ``may_change_company``."""

    list_display = ("name", "domain", "industry", "employee_count", "country")
    list_filter = ("industry", "country")
    search_fields = ("name", "domain")

    def has_change_permission(self, request: HttpRequest, obj: Company | None = None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or may_change_company(user=request.user, company=obj))

    def has_delete_permission(self, request: HttpRequest, obj: Company | None = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or may_change_company(user=request.user, company=obj))


@admin.register(ProductLine)
class ProductLineAdmin(admin.ModelAdmin):
    list_display = ("name", "slug")
    search_fields = ("name",)
    prepopulated_fields = {"slug": ("name",)}


@admin.register(CustomFieldDefinition)
class CustomFieldDefinitionAdmin(admin.ModelAdmin):
    list_display = ("label", "key", "field_type", "required")
    search_fields = ("label", "key")


class VisibleLeadRowsMixin:
    """Rows that belong to a lead are listed only when the user may see that lead, and
    are written only on such a lead."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        if request.user.sees_all_leads:
            return queryset
        return queryset.filter(self.visible_filter(request))

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "lead":
            kwargs["queryset"] = Lead.objects.visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def visible_filter(self, request: HttpRequest) -> Q:
        return Q(lead__in=Lead.objects.visible_to(request.user))


class NewestActivitiesFormSet(BaseInlineFormSet):
    """The lead's 50 newest activities; the rep's lead page paginates the rest."""

    def get_queryset(self) -> QuerySet[Activity]:
        if not hasattr(self, "_newest"):
            self._newest = super().get_queryset().order_by("-occurred_at", "-id")[:50]
        return self._newest


class ActivityInline(admin.TabularInline):
    model = Activity
    fields = ("occurred_at", "type", "url", "duration_seconds", "source", "scored_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    formset = NewestActivitiesFormSet


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


class LeadAdminForm(UserBoundForm):
    # Checked by ``email_error`` alone, in the words every surface uses.
    email = forms.CharField(label="Email", widget=forms.EmailInput)

    def clean_email(self) -> str:
        email = normalize_email(self.cleaned_data["email"])
        problem = email_error(email)
        if problem:
            raise forms.ValidationError(problem)
        why = email_in_use(user=self.user, email=email, lead=self.instance)
        if why:
            raise forms.ValidationError(why)
        return email

    def clean_owner(self) -> User | None:
        owner = self.cleaned_data.get("owner")
        current = self.instance.owner if self.instance.owner_id else None
        if not may_own(user=self.user, owner=owner, current=current):
            raise forms.ValidationError(OWNER_REFUSED)
        return owner


@admin.register(Lead)
class LeadAdmin(UserBoundFormMixin, admin.ModelAdmin):
    form = LeadAdminForm
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

    def save_model(self, request: HttpRequest, obj: Lead, form, change: bool) -> None:
        # Through the service, so a change of explicit fields rescores the lead's fit.
        lead_save_profile(lead=obj, changed_fields=list(form.changed_data))


@admin.register(Activity)
class ActivityAdmin(VisibleLeadRowsMixin, admin.ModelAdmin):
    list_display = ("occurred_at", "type", "lead", "url", "source", "scored_at")
    list_filter = ("type", "source")
    list_select_related = ("lead",)
    search_fields = ("lead__email", "url", "idempotency_key")
    raw_id_fields = ("lead", "created_by")
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    readonly_fields = ("received_at", "scored_at")


@admin.register(StageChange)
class StageChangeAdmin(VisibleLeadRowsMixin, admin.ModelAdmin):
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
class DealAdmin(VisibleLeadRowsMixin, admin.ModelAdmin):
    list_display = ("name", "lead", "amount", "currency", "status", "closed_at")
    list_filter = ("status", "currency")
    list_select_related = ("lead",)
    search_fields = ("name", "lead__email")
    raw_id_fields = ("lead",)


class TaskAdminForm(UserBoundForm):
    def clean_assignee(self) -> User:
        assignee = self.cleaned_data["assignee"]
        current = self.instance.assignee if self.instance.assignee_id else None
        if not may_assign_task(user=self.user, assignee=assignee, current=current):
            raise forms.ValidationError(ASSIGNEE_REFUSED)
        return assignee


@admin.register(Task)
class TaskAdmin(UserBoundFormMixin, VisibleLeadRowsMixin, admin.ModelAdmin):
    form = TaskAdminForm
    list_display = ("title", "lead", "assignee", "kind", "due_at", "done_at")
    list_filter = ("kind", "done_at")
    list_select_related = ("lead", "assignee")
    search_fields = ("title", "lead__email")
    raw_id_fields = ("lead",)
    autocomplete_fields = ("assignee",)

    def visible_filter(self, request: HttpRequest) -> Q:
        return Q(pk__in=tasks_visible_to(request.user).values("pk"))


@admin.register(Note)
class NoteAdmin(VisibleLeadRowsMixin, admin.ModelAdmin):
    list_display = ("__str__", "lead", "author", "created_at")
    list_select_related = ("lead", "author")
    search_fields = ("body", "lead__email")
    raw_id_fields = ("lead",)


@admin.register(WebForm)
class WebFormAdmin(admin.ModelAdmin):
    list_display = ("name", "key", "is_active", "redirect_url", "default_source", "created_at")
    list_filter = ("is_active", "default_source")
    search_fields = ("name", "key")
    readonly_fields = ("key", "endpoint", "created_at")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = (
        (None, {"fields": ("name", "is_active", "key", "endpoint", "created_at")}),
        ("Fields", {"fields": ("field_mapping", "honeypot_field")}),
        ("After posting", {"fields": ("redirect_url", "allowed_origins")}),
        ("Attribution", {"fields": ("default_source", "default_campaign")}),
    )
    actions = ["regenerate_key"]

    @admin.display(description="Posts go to")
    def endpoint(self, obj: WebForm) -> str:
        if obj.pk is None:
            return "Shown once the form is saved."
        return format_html("<code>{}</code>", obj.get_absolute_url())

    @admin.action(description="Regenerate the key of the selected forms (old keys stop working)")
    def regenerate_key(self, request: HttpRequest, queryset: QuerySet[WebForm]) -> None:
        forms_changed = list(queryset)
        for form in forms_changed:
            form.regenerate_key()
        self.message_user(
            request,
            f"New keys for {len(forms_changed)} form(s): update the pages that post to them.",
            messages.SUCCESS,
        )


@admin.register(TrackingKey)
class TrackingKeyAdmin(admin.ModelAdmin):
    """Write keys for ``/v1/…``. A key's secret is shown once, when it is made."""

    list_display = ("name", "prefix", "is_active", "created_at", "last_used_at")
    list_filter = ("is_active",)
    search_fields = ("name", "prefix")
    fields = ("name", "is_active", "prefix", "created_at", "last_used_at")
    readonly_fields = ("prefix", "created_at", "last_used_at")
    actions = ["regenerate_secret"]

    def save_model(self, request: HttpRequest, obj: TrackingKey, form, change: bool) -> None:
        secret = None if change else obj.set_new_secret()
        super().save_model(request, obj, form, change)
        if secret:
            self._show_secret(request, obj, secret)

    @admin.action(description="Regenerate the selected keys (old ones stop working)")
    def regenerate_secret(self, request: HttpRequest, queryset: QuerySet[TrackingKey]) -> None:
        for key in queryset:
            secret = key.set_new_secret()
            key.save(update_fields=["prefix", "key_hash"])
            self._show_secret(request, key, secret)

    def _show_secret(self, request: HttpRequest, key: TrackingKey, secret: str) -> None:
        self.message_user(
            request,
            format_html(
                "Write key for “{}”: <code>{}</code>. Copy it now: it is not shown again.",
                key.name,
                secret,
            ),
            messages.WARNING,
        )


@admin.register(TrackedEvent)
class TrackedEventAdmin(admin.ModelAdmin):
    """Which activity each tracked event records; events without a row are kept as custom."""

    list_display = ("name", "activity_type", "is_active")
    list_editable = ("activity_type", "is_active")
    list_filter = ("activity_type", "is_active")
    search_fields = ("name",)


@admin.register(TrackingIdentity)
class TrackingIdentityAdmin(VisibleLeadRowsMixin, admin.ModelAdmin):
    list_display = ("value", "kind", "lead", "created_at")
    list_filter = ("kind",)
    list_select_related = ("lead",)
    search_fields = ("value", "lead__email")
    raw_id_fields = ("lead",)
    readonly_fields = ("created_at",)


@admin.register(PendingEvent)
class PendingEventAdmin(admin.ModelAdmin):
    """Calls from senders not linked to a lead yet; kept 30 days."""

    list_display = ("type", "anonymous_id", "user_id", "occurred_at", "received_at")
    list_filter = ("type",)
    search_fields = ("anonymous_id", "user_id", "message_id")
    readonly_fields = (
        "type",
        "anonymous_id",
        "user_id",
        "message_id",
        "message",
        "occurred_at",
        "received_at",
    )
    date_hierarchy = "received_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: PendingEvent | None = None) -> bool:
        return False


# --- Hand-off -------------------------------------------------------------------------

from .handoff_models import AssignmentRule, HandOff, LeadRating, Notification  # noqa: E402


@admin.register(AssignmentRule)
class AssignmentRuleAdmin(admin.ModelAdmin):
    """The steps that pick a handed-off lead's owner, after keeping a current owner who is an
    active rep; active rules run from the lowest position up."""

    list_display = ("name", "kind", "position", "active", "owner", "team", "product_line")
    list_editable = ("position", "active")
    list_filter = ("kind", "active")
    list_select_related = ("owner", "team", "product_line")
    search_fields = ("name",)
    raw_id_fields = ("owner",)
    ordering = ("position", "pk")


@admin.register(HandOff)
class HandOffAdmin(VisibleLeadRowsMixin, admin.ModelAdmin):
    """The log of hand-offs: who got each lead, why, and how fast they acted."""

    list_display = (
        "created_at",
        "lead",
        "owner",
        "status",
        "assigned_by",
        "sla_due_at",
        "escalated_at",
        "speed_to_lead",
    )
    list_filter = ("status", "stage", ("escalated_at", admin.EmptyFieldListFilter))
    list_select_related = ("lead", "owner")
    search_fields = ("lead__email", "owner__username", "assigned_by")
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: HandOff | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: HandOff | None = None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "kind", "title", "read_at", "emailed_at")
    list_filter = ("kind", ("read_at", admin.EmptyFieldListFilter))
    list_select_related = ("user",)
    search_fields = ("title", "user__username")
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Notification | None = None) -> bool:
        return False


@admin.register(LeadRating)
class LeadRatingAdmin(VisibleLeadRowsMixin, admin.ModelAdmin):
    """Reps' verdicts on lead quality, read by the reports."""

    list_display = ("created_at", "lead", "by", "rating", "reason")
    list_filter = ("rating",)
    list_select_related = ("lead", "by")
    search_fields = ("lead__email", "reason")
    raw_id_fields = ("lead", "by")

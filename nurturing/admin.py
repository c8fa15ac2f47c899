"""The marketers' tool for nurturing: sequences with their steps and statistics,
manual and bulk enrollment, enrollments, messages and suppressed addresses."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelectMultiple
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from leads.models import Band, Lead, Source, Stage

from . import services
from .models import (
    WEEKDAYS,
    Enrollment,
    EnrollmentStatus,
    ExitReason,
    Message,
    Sequence,
    SequenceStatus,
    Step,
    Suppression,
)
from .services import EnrollmentError


def _choices_field(choices: list[tuple[str, str]], label: str, help_text: str = "") -> Any:
    return forms.MultipleChoiceField(
        choices=choices,
        required=False,
        label=label,
        help_text=help_text,
        widget=forms.CheckboxSelectMultiple,
    )


class SequenceForm(forms.ModelForm):
    bands = _choices_field(Band.choices, "Bands", "Empty: any band.")
    stages = _choices_field(Stage.choices, "Stages", "Empty: any stage.")
    sources = _choices_field(Source.choices, "Sources", "Empty: any source.")
    exit_stages = _choices_field(Stage.choices, "Exit stages", "Reaching one of these ends it.")

    class Meta:
        model = Sequence
        exclude: list[str] = []


class StepForm(forms.ModelForm):
    window_weekdays = forms.TypedMultipleChoiceField(
        choices=list(enumerate(WEEKDAYS)),
        coerce=int,
        required=False,
        label="Send on weekdays",
        help_text="Empty: any day.",
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = Step
        exclude: list[str] = []
        widgets = {
            "body_text": forms.Textarea(attrs={"rows": 8}),
            "body_html": forms.Textarea(attrs={"rows": 8}),
        }


class StepInline(admin.StackedInline):
    model = Step
    form = StepForm
    extra = 0
    fieldsets = (
        (None, {"fields": (("position", "kind"), ("delay_days", "delay_hours"))}),
        (
            "Content",
            {
                "fields": ("subject", "body_text", "body_html"),
                "description": "Django templates. Available: {{ first_name }}, "
                "{{ last_name }}, {{ company_name }}, {{ owner_name }}, {{ owner_email }}, "
                "{{ unsubscribe_url }}. A body without the unsubscribe link gets one.",
            },
        ),
        (
            "Send window",
            {
                "fields": (
                    "window_weekdays",
                    ("window_start_hour", "window_end_hour", "window_zone"),
                )
            },
        ),
    )


def _count_column(name: str, label: str) -> Any:
    @admin.display(description=label, ordering=f"n_{name}")
    def column(self: Any, sequence: Sequence) -> int:
        return getattr(sequence, f"n_{name}")

    return column


@admin.register(Sequence)
class SequenceAdmin(admin.ModelAdmin):
    form = SequenceForm
    list_display = (
        "name",
        "status",
        "priority",
        "auto_enroll",
        "active_count",
        "enrolled_count",
        "sent_count",
        "opened_count",
        "clicked_count",
        "replied_count",
        "bounced_count",
        "unsubscribed_count",
        "mql_count",
        "sql_count",
        "stats_link",
    )
    list_filter = ("status", "auto_enroll")
    search_fields = ("name",)
    filter_horizontal = ("product_lines",)
    inlines = [StepInline]
    actions = ["enroll_matching", "pause", "resume"]
    fieldsets = (
        (None, {"fields": ("name", "description", ("status", "priority", "auto_enroll"))}),
        (
            "Who enters",
            {
                "fields": (
                    "scoring_model",
                    "bands",
                    "stages",
                    ("min_score", "max_score"),
                    "product_lines",
                    "sources",
                    "silent_days",
                )
            },
        ),
        (
            "Who leaves",
            {
                "fields": (
                    "exit_stages",
                    ("exit_on_track_change", "exit_on_reply"),
                    "max_duration_days",
                ),
                "description": "Unsubscribes and bounces always end every sequence.",
            },
        ),
    )

    active_count = _count_column("active", "Active")
    enrolled_count = _count_column("enrolled", "Enrolled")
    sent_count = _count_column("sent", "Sent")
    opened_count = _count_column("opened", "Opened")
    clicked_count = _count_column("clicked", "Clicked")
    replied_count = _count_column("replied", "Replied")
    bounced_count = _count_column("bounced", "Bounced")
    unsubscribed_count = _count_column("unsubscribed", "Unsubscribed")
    mql_count = _count_column("mql", "Reached MQL")
    sql_count = _count_column("sql", "Reached SQL")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Sequence]:
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            return queryset.with_stats()
        return queryset

    def save_model(self, request, obj, form, change) -> None:
        # Pausing and resuming have effects of their own (held messages): the services
        # change the status, the form saves the rest.
        status = obj.status
        if change and "status" in form.changed_data:
            obj.status = form.initial["status"]
        super().save_model(request, obj, form, change)
        if obj.status == status:
            return
        if status == SequenceStatus.PAUSED:
            services.sequences_pause(sequence_ids=[obj.pk])
        else:
            services.sequences_resume(sequence_ids=[obj.pk])
        obj.status = status

    @admin.display(description="Statistics")
    def stats_link(self, sequence: Sequence) -> str:
        url = reverse("admin:nurturing_sequence_stats", args=[sequence.pk])
        return format_html('<a href="{}">By step</a>', url)

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:pk>/stats/",
                self.admin_site.admin_view(self.stats_view),
                name="nurturing_sequence_stats",
            ),
            path(
                "<int:pk>/enroll/",
                self.admin_site.admin_view(self.enroll_view),
                name="nurturing_sequence_enroll",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        if str(object_id).isdigit():
            pk = int(object_id)
            extra_context["stats_url"] = reverse("admin:nurturing_sequence_stats", args=[pk])
            extra_context["enroll_url"] = reverse("admin:nurturing_sequence_enroll", args=[pk])
        return super().change_view(request, object_id, form_url, extra_context)

    def _page(self, request: HttpRequest, sequence: Sequence, title: str, **context: Any) -> dict:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "original": sequence,
            **context,
        }

    def stats_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        sequence = get_object_or_404(Sequence.objects.with_stats(), pk=pk)
        if not self.has_view_permission(request, sequence):
            return redirect("admin:index")
        context = self._page(
            request,
            sequence,
            f"Statistics of {sequence}",
            rows=services.sequence_stats_rows(sequence),
        )
        return TemplateResponse(request, "admin/nurturing/sequence/stats.html", context)

    def enroll_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        sequence = get_object_or_404(Sequence, pk=pk)
        if not self.has_change_permission(request, sequence):
            return redirect("admin:index")
        form = EnrollLeadsForm(request.POST or None, admin_site=self.admin_site, user=request.user)
        if request.method == "POST" and form.is_valid():
            try:
                added = services.enrollments_start_many(
                    lead_ids=[lead.pk for lead in form.cleaned_data["leads"]],
                    sequence=sequence,
                    by=request.user,
                )
            except EnrollmentError as exc:
                form.add_error(None, exc.messages)
            else:
                skipped = len(form.cleaned_data["leads"]) - added
                note = f" ({skipped} skipped: already enrolled or not emailable)" if skipped else ""
                self.message_user(request, f"Enrolled {added} lead(s) in “{sequence}”{note}.")
                return redirect("admin:nurturing_sequence_change", sequence.pk)
        title = f"Enroll leads in {sequence}"
        context = self._page(request, sequence, title, form=form, media=self.media + form.media)
        status = 400 if request.method == "POST" else 200
        return TemplateResponse(
            request, "admin/nurturing/sequence/enroll.html", context, status=status
        )

    @admin.action(description="Enroll every lead that matches now", permissions=["change"])
    def enroll_matching(self, request: HttpRequest, queryset: QuerySet[Sequence]) -> None:
        now = timezone.now()
        for sequence in queryset:
            try:
                added = services.enrollments_start_many(
                    lead_ids=list(sequence.entrants(now=now).values_list("pk", flat=True)),
                    sequence=sequence,
                    by=request.user,
                    now=now,
                )
            except EnrollmentError as exc:
                self.message_user(request, " ".join(exc.messages), messages.WARNING)
                continue
            self.message_user(request, f"Enrolled {added} lead(s) in “{sequence}”.")

    @admin.action(description="Pause the selected sequences", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Sequence]) -> None:
        count = services.sequences_pause(sequence_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"Paused {count} sequence(s); their steps wait meanwhile.")

    @admin.action(description="Resume the selected sequences", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Sequence]) -> None:
        count = services.sequences_resume(sequence_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"Resumed {count} sequence(s).")


class EnrollLeadsForm(forms.Form):
    leads = forms.ModelMultipleChoiceField(queryset=Lead.objects.none())

    def __init__(self, *args: Any, admin_site: admin.AdminSite, user: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        field = self.fields["leads"]
        field.widget = AutocompleteSelectMultiple(Enrollment._meta.get_field("lead"), admin_site)
        field.queryset = Lead.objects.visible_to(user)  # binds the widget's choices too
        field.help_text = "Type a name, email or company to find leads."


class EnrollmentAddForm(forms.ModelForm):
    class Meta:
        model = Enrollment
        fields = ["lead", "sequence"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        lead, sequence = data.get("lead"), data.get("sequence")
        if lead is None or sequence is None:
            return data
        if not sequence.is_active:
            self.add_error("sequence", f"“{sequence}” is paused.")
        elif services.lead_is_suppressed(lead):
            self.add_error("lead", "This lead is unsubscribed or bounced: it is never emailed.")
        elif Enrollment.objects.active().filter(lead=lead, sequence=sequence).exists():
            self.add_error("lead", "This lead is already in this sequence.")
        return data


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = (
        "lead",
        "sequence",
        "status",
        "source",
        "next_position",
        "next_due_at",
        "started_at",
        "ended_at",
        "exit_reason",
    )
    list_filter = ("status", "source", "exit_reason", "sequence")
    list_select_related = ("lead", "sequence")
    search_fields = ("lead__email", "lead__last_name", "sequence__name")
    autocomplete_fields = ("lead",)
    actions = ["end_selected"]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Enrollment]:
        return super().get_queryset(request).filter(lead__in=Lead.objects.visible_to(request.user))

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = EnrollmentAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["lead", "sequence"]
        return [f.name for f in Enrollment._meta.fields if f.name != "id"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return
        enrollment, _ = services.enrollment_start(
            lead=obj.lead, sequence=obj.sequence, by=request.user
        )
        obj.pk = enrollment.pk

    @admin.action(description="End the selected enrollments", permissions=["change"])
    def end_selected(self, request: HttpRequest, queryset: QuerySet[Enrollment]) -> None:
        ended = sum(
            services.enrollment_exit(enrollment=enrollment, reason=ExitReason.MANUAL)
            for enrollment in queryset.filter(status=EnrollmentStatus.ACTIVE)
        )
        self.message_user(request, f"Ended {ended} enrollment(s).")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "lead",
        "subject",
        "status",
        "attempts",
        "sent_at",
        "opened_at",
        "clicked_at",
        "replied_at",
    )
    list_filter = ("status", "enrollment__sequence")
    list_select_related = ("lead",)
    search_fields = ("lead__email", "to_email", "subject", "provider_message_id")
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).filter(lead__in=Lead.objects.visible_to(request.user))

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Message._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("email", "reason", "detail", "created_at")
    list_filter = ("reason",)
    search_fields = ("email",)

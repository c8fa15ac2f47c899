"""The sequence admin: criteria, steps, statistics by step, bulk enrollment, and
pausing and resuming (through ``nurturing.pausing``)."""

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

from crm.http import AuthenticatedHttpRequest
from crm.models import User
from leads.models import Band, Lead, Source, Stage

from ..enrollment import EnrollmentError, enrollments_start_many
from ..models import WEEKDAYS, Enrollment, Sequence, SequenceStatus, Step
from ..pausing import sequences_pause, sequences_resume
from ..statistics import sequences_with_stats, steps_with_stats


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
                    "min_account_score",
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
        match = request.resolver_match
        if match and match.url_name and match.url_name.endswith("changelist"):
            queryset = sequences_with_stats(queryset)
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
            sequences_pause(sequence_ids=[obj.pk])
        else:
            sequences_resume(sequence_ids=[obj.pk])
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
        sequence = get_object_or_404(sequences_with_stats(Sequence.objects.all()), pk=pk)
        if not self.has_view_permission(request, sequence):
            return redirect("admin:index")
        context = self._page(
            request,
            sequence,
            f"Statistics of {sequence}",
            rows=_stats_rows(sequence),
        )
        return TemplateResponse(request, "admin/nurturing/sequence/stats.html", context)

    def enroll_view(self, request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
        sequence = get_object_or_404(Sequence, pk=pk)
        if not self.has_change_permission(request, sequence):
            return redirect("admin:index")
        form = EnrollLeadsForm(request.POST or None, admin_site=self.admin_site, user=request.user)
        if request.method == "POST" and form.is_valid():
            try:
                added = enrollments_start_many(
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
    def enroll_matching(
        self, request: AuthenticatedHttpRequest, queryset: QuerySet[Sequence]
    ) -> None:
        now = timezone.now()
        for sequence in queryset:
            try:
                added = enrollments_start_many(
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
        count = sequences_pause(sequence_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"Paused {count} sequence(s); their steps wait meanwhile.")

    @admin.action(description="Resume the selected sequences", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Sequence]) -> None:
        count = sequences_resume(sequence_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"Resumed {count} sequence(s).")


class EnrollLeadsForm(forms.Form):
    """The leads to enroll, picked among those ``user`` can see."""

    def __init__(self, *args: Any, admin_site: admin.AdminSite, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["leads"] = forms.ModelMultipleChoiceField(
            queryset=Lead.objects.visible_to(user),
            widget=AutocompleteSelectMultiple(Enrollment._meta.get_field("lead"), admin_site),
            help_text="Type a name, email or company to find leads.",
        )


def _stats_rows(sequence: Sequence) -> list[dict[str, Any]]:
    """Per step: the message counters and the leads that qualified after it."""
    names = ["sent", "delivered", "opened", "clicked", "replied", "bounced", "unsubscribed"]
    rows = []
    for step in steps_with_stats(sequence.steps.all()).order_by("position"):
        row: dict[str, Any] = {"step": step}
        row.update({name: getattr(step, f"n_{name}") for name in [*names, "mql", "sql"]})
        rows.append(row)
    return rows

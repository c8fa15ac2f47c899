"""The enrollment admin: enrolling one lead by hand (through ``enrollment_start``),
the enrollments of the leads one can see, and ending them by hand."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from crm.http import signed_in
from leads.models import Lead

from ..enrollment import EnrollmentError, enrollment_check, enrollment_exit, enrollment_start
from ..models import Enrollment, EnrollmentStatus, ExitReason


class EnrollmentAddForm(forms.ModelForm):
    class Meta:
        model = Enrollment
        fields = ["lead", "sequence"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        lead, sequence = data.get("lead"), data.get("sequence")
        if lead is None or sequence is None:
            return data
        try:
            enrollment_check(lead=lead, sequence=sequence)
        except EnrollmentError as exc:
            self.add_error(None, exc)
            return data
        # enrollment_start returns an active enrollment as it is; here that is an error.
        if Enrollment.objects.active().filter(lead=lead, sequence=sequence).exists():
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
        return (
            super()
            .get_queryset(request)
            .filter(lead__in=Lead.objects.visible_to(signed_in(request)))
        )

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
        enrollment, _ = enrollment_start(lead=obj.lead, sequence=obj.sequence, by=request.user)
        obj.pk = enrollment.pk

    @admin.action(description="End the selected enrollments", permissions=["change"])
    def end_selected(self, request: HttpRequest, queryset: QuerySet[Enrollment]) -> None:
        ended = sum(
            enrollment_exit(enrollment=enrollment, reason=ExitReason.MANUAL)
            for enrollment in queryset.filter(status=EnrollmentStatus.ACTIVE)
        )
        self.message_user(request, f"Ended {ended} enrollment(s).")

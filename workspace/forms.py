"""Forms of the rep workspace: what a person may type on the lead page and My day.

Forms only validate; the views hand the cleaned data to the services, which may
still refuse (a stage someone else changed meanwhile, a hand-off already
answered). Their messages land on the form like any other error, beside the inputs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.utils import timezone

from leads.activity_times import TOO_EARLY, ActivityTimeError, activity_time
from leads.handoff_models import Rating, RejectReason
from leads.models import ALLOWED_TRANSITIONS, ActivityType, Lead, Stage, Task, TaskKind
from leads.selectors import parse_cursor

# What ``<input type="datetime-local">`` sends, with and without seconds.
LOCAL_DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]

TOUCH_CHOICES = [
    (ActivityType.CALL.value, "Call"),
    (ActivityType.MEETING.value, "Meeting"),
    (ActivityType.EMAIL_REPLY.value, "Email"),
]


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


def _stripped(value: str) -> str:
    return (value or "").strip()


class TouchForm(forms.Form):
    """A call, meeting or email the rep had with the lead."""

    type = forms.ChoiceField(label="What happened", choices=TOUCH_CHOICES)
    notes = forms.CharField(
        label="Notes", required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3})
    )
    occurred_at = forms.DateTimeField(
        label="When",
        required=False,
        input_formats=LOCAL_DATETIME_FORMATS,
        widget=LocalDateTimeInput(),
        help_text="Leave empty for now.",
    )

    def clean_occurred_at(self) -> datetime | None:
        when = self.cleaned_data["occurred_at"]
        if when is None:
            return None
        # A touch logged "now" from a phone whose clock runs a little ahead is accepted.
        try:
            return activity_time(when, received_at=timezone.now())
        except ActivityTimeError as exc:
            if str(exc) == TOO_EARLY:
                raise forms.ValidationError("A touch cannot be logged before 2000.") from None
            raise forms.ValidationError("A touch cannot be logged in the future.") from None


class NoteForm(forms.Form):
    body = forms.CharField(
        label="Note",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Write the note first."},
    )


class TaskForm(forms.ModelForm):
    """A task on the lead; reps assign to themselves, managers also to their team's reps."""

    due_at = forms.DateTimeField(
        label="Due", input_formats=LOCAL_DATETIME_FORMATS, widget=LocalDateTimeInput()
    )

    class Meta:
        model = Task
        fields = ["title", "kind", "due_at", "assignee"]
        labels = {"title": "Task", "kind": "Kind", "assignee": "For"}

    def __init__(self, *args: Any, assignees: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assignee = self.fields["assignee"]
        assert isinstance(assignee, forms.ModelChoiceField)
        assignee.queryset = assignees
        assignee.empty_label = None
        self.fields["kind"].initial = TaskKind.FOLLOW_UP

    def clean_title(self) -> str:
        title = _stripped(self.cleaned_data["title"])
        if not title:
            raise forms.ValidationError("Say what needs doing.")
        return title


class StageForm(forms.Form):
    """A move along the lifecycle; only the moves allowed from the current stage are offered."""

    stage = forms.ChoiceField(label="Move to")
    reason = forms.CharField(
        label="Reason",
        required=False,
        max_length=200,
        help_text="Required to disqualify, and for a manager to make a customer without a "
        "won deal.",
    )

    def __init__(self, *args: Any, lead: Lead, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        allowed = ALLOWED_TRANSITIONS[lead.stage]
        stage = self.fields["stage"]
        assert isinstance(stage, forms.ChoiceField)
        stage.choices = [(s.value, s.label) for s in Stage if s in allowed]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("stage") == Stage.DISQUALIFIED and not data.get("reason"):
            self.add_error("reason", "Say why the lead is disqualified.")
        return data


class RejectHandOffForm(forms.Form):
    """Why a hand-off goes back: one of the usual reasons, a note, or both (stored as
    "reason: note")."""

    choice = forms.ChoiceField(
        label="Why are you rejecting this lead?",
        choices=[("", "Choose a reason…"), *RejectReason.choices],
        required=False,
    )
    reason = forms.CharField(
        label="Note for marketing",
        required=False,
        max_length=400,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="The lead goes back to marketing with the reason and this note.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        label = dict(RejectReason.choices).get(data.get("choice") or "", "")
        note = (data.get("reason") or "").strip()
        if not label and not note:
            raise forms.ValidationError("Say why the lead is not ready for sales.")
        data["reason"] = f"{label}: {note}" if label and note else label or note
        return data


class RatingForm(forms.Form):
    """The rep's verdict on a lead's quality, which the reports compare with its score."""

    rating = forms.ChoiceField(
        label="This lead is", choices=Rating.choices, widget=forms.RadioSelect
    )
    reason = forms.CharField(
        label="Reason",
        required=False,
        max_length=500,
        help_text="Required for “not a fit”.",
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("rating") == Rating.NOT_FIT and not data.get("reason"):
            self.add_error("reason", "Say why the lead is not a fit.")
        return data


class TimelineFilterForm(forms.Form):
    """Which activities the timeline shows, and from where (keyset cursor)."""

    type = forms.ChoiceField(
        label="Show",
        required=False,
        choices=[("", "All activity"), *ActivityType.choices],
    )
    before = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_before(self) -> tuple[datetime, int] | None:
        value = self.cleaned_data["before"]
        if not value:
            return None
        cursor = parse_cursor(value)
        if cursor is None:
            raise forms.ValidationError("This page of the timeline does not exist.")
        return cursor

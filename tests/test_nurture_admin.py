"""Nurturing in the admin: sequences with steps (templates checked on save), statistics,
manual and bulk enrollment, and who may use it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from leads.models import Band, Stage
from leads.stages import stage_change_record
from nurturing.due_steps import enrollments_process_due
from nurturing.enrollment import enrollment_start
from nurturing.models import (
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    ExitReason,
    Message,
    MessageStatus,
    Sequence,
    Step,
    Suppression,
)
from nurturing.sending import messages_resume_stalled
from nurturing.tasks import send_message
from tests.admin_forms import changeform_data
from tests.factories import LeadFactory
from tests.test_nurture_sending import email_sequence
from workspace.bulk import leads_enroll

pytestmark = pytest.mark.django_db


def sequence_post(**overrides) -> dict:
    """A new sequence with one email step, as the add form posts it."""
    data = {
        "name": "Warm: case studies",
        "description": "",
        "status": "active",
        "priority": "20",
        "auto_enroll": "on",
        "bands": ["warm"],
        "stages": ["new", "mql"],
        "exit_stages": ["sql", "customer"],
        "exit_on_track_change": "on",
        "exit_on_reply": "on",
        "steps-TOTAL_FORMS": "1",
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
        "steps-0-position": "1",
        "steps-0-kind": "email",
        "steps-0-delay_days": "0",
        "steps-0-delay_hours": "2",
        "steps-0-subject": "How {{ company_name }} could save a day a week",
        "steps-0-body_text": "Hi {{ first_name }},\nhttps://hotlist.example/cases/fleet",
        "steps-0-body_html": "",
        "steps-0-window_weekdays": ["0", "1", "2", "3", "4"],
        "steps-0-window_start_hour": "9",
        "steps-0-window_end_hour": "17",
        "steps-0-window_zone": "lead",
    }
    data.update(overrides)
    return data


def test_marketer_creates_a_sequence_with_a_step(client, marketer):
    client.force_login(marketer)

    response = client.post(reverse("admin:nurturing_sequence_add"), sequence_post())

    assert response.status_code == 302, response.context["adminform"].form.errors
    sequence = Sequence.objects.get()
    assert (sequence.bands, sequence.stages, sequence.exit_stages) == (
        ["warm"],
        ["new", "mql"],
        ["sql", "customer"],
    )
    step = sequence.steps.get()
    assert (step.window_weekdays, step.window_start_hour, step.delay) == (
        [0, 1, 2, 3, 4],
        9,
        dt.timedelta(hours=2),
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("steps-0-subject", "Hi {{ first_name|nosuchfilter }}"),
        ("steps-0-body_text", "{% if first_name %}never closed"),
        ("steps-0-body_html", "{% include 'base.html' %}"),
    ],
)
def test_a_template_error_is_refused_with_a_field_error(client, marketer, field, value):
    client.force_login(marketer)

    response = client.post(reverse("admin:nurturing_sequence_add"), sequence_post(**{field: value}))

    assert response.status_code == 200
    [inline] = response.context["inline_admin_formsets"]
    errors = inline.formset.forms[0].errors
    assert field.removeprefix("steps-0-") in errors
    assert not Sequence.objects.exists()
    assert not Step.objects.exists()


def test_bad_criteria_are_refused(client, marketer):
    client.force_login(marketer)

    response = client.post(
        reverse("admin:nurturing_sequence_add"),
        sequence_post(min_score="50", max_score="10", **{"steps-0-window_end_hour": "8"}),
    )

    assert response.status_code == 200
    assert "max_score" in response.context["adminform"].form.errors
    assert "window_end_hour" in response.context["inline_admin_formsets"][0].formset.forms[0].errors
    assert not Sequence.objects.exists()


def test_the_change_page_saves_unchanged(client, marketer):
    sequence = email_sequence()
    client.force_login(marketer)
    page = client.get(reverse("admin:nurturing_sequence_change", args=[sequence.pk]))
    assert page.status_code == 200
    assert reverse("admin:nurturing_sequence_stats", args=[sequence.pk]) in page.content.decode()

    response = client.post(
        reverse("admin:nurturing_sequence_change", args=[sequence.pk]), changeform_data(page)
    )

    assert response.status_code == 302
    assert sequence.steps.count() == 2


def test_statistics_per_sequence_and_step(client, marketer):
    # Given a sequence whose step 1 went to three leads: one opened and clicked, one
    # bounced, one unsubscribed; and one lead that reached MQL after enrolling
    sequence = email_sequence()
    step = sequence.steps.get(position=1)
    now = timezone.now()
    leads = [LeadFactory() for _ in range(3)]
    outcomes = [
        {"opened_at": now, "clicked_at": now, "replied_at": now},
        {"status": MessageStatus.BOUNCED, "bounced_at": now},
        {"unsubscribed_at": now},
    ]
    for lead, outcome in zip(leads, outcomes, strict=True):
        enrollment, _ = enrollment_start(lead=lead, sequence=sequence, now=now)
        Message.objects.create(
            enrollment=enrollment,
            step=step,
            lead=lead,
            **{"status": MessageStatus.SENT, "sent_at": now, **outcome},
        )
    stage_change_record(
        lead=leads[0], from_stage=Stage.NEW, to_stage=Stage.MQL, at=now + dt.timedelta(hours=1)
    )
    client.force_login(marketer)

    listing = client.get(reverse("admin:nurturing_sequence_changelist"))
    stats = client.get(reverse("admin:nurturing_sequence_stats", args=[sequence.pk]))

    [row] = listing.context["cl"].result_list
    assert (row.n_enrolled, row.n_active, row.n_sent, row.n_delivered, row.n_opened) == (
        3,
        3,
        3,
        2,
        1,
    )
    assert (row.n_clicked, row.n_replied, row.n_bounced, row.n_unsubscribed) == (1, 1, 1, 1)
    assert (row.n_mql, row.n_sql) == (1, 0)
    assert stats.status_code == 200
    [first, second] = stats.context["rows"]
    assert (first["sent"], first["delivered"], first["opened"], first["mql"]) == (3, 2, 1, 1)
    assert (second["sent"], second["mql"]) == (0, 0)


def test_manual_enrollment_from_the_enrollment_admin(client, marketer):
    sequence = email_sequence()
    lead = LeadFactory()
    client.force_login(marketer)
    url = reverse("admin:nurturing_enrollment_add")

    response = client.post(url, {"lead": lead.pk, "sequence": sequence.pk})
    again = client.post(url, {"lead": lead.pk, "sequence": sequence.pk})

    assert response.status_code == 302
    enrollment = Enrollment.objects.get()
    assert (enrollment.source, enrollment.enrolled_by, enrollment.status) == (
        EnrollmentSource.MANUAL,
        marketer,
        EnrollmentStatus.ACTIVE,
    )
    assert again.status_code == 200
    assert "lead" in again.context["adminform"].form.errors
    assert Enrollment.objects.count() == 1


def test_an_unsubscribed_lead_cannot_be_enrolled_by_hand(client, marketer):
    sequence = email_sequence()
    lead = LeadFactory()
    Suppression.objects.create(email=lead.email, reason="unsubscribed")
    client.force_login(marketer)

    response = client.post(
        reverse("admin:nurturing_enrollment_add"), {"lead": lead.pk, "sequence": sequence.pk}
    )

    assert response.status_code == 200
    assert "unsubscribed" in str(response.context["adminform"].form.errors["lead"])
    assert not Enrollment.objects.exists()


def test_a_paused_sequence_refuses_enrollment_by_hand_as_the_workspace_does(client, marketer, rep):
    # Given a paused sequence and a lead the rep owns
    sequence = email_sequence(status="paused")
    lead = LeadFactory(owner=rep)
    client.force_login(marketer)

    # When a marketer enrolls the lead in the admin, and the rep from the workspace
    response = client.post(
        reverse("admin:nurturing_enrollment_add"), {"lead": lead.pk, "sequence": sequence.pk}
    )
    outcome = leads_enroll(lead_ids=[lead.pk], sequence=sequence, by=rep)

    # Then both give the reason of enrollment_check, and nothing was enrolled
    errors = response.context["adminform"].form.errors["sequence"]
    assert response.status_code == 200
    assert errors == [f"“{sequence}” is paused."]
    assert outcome.refused == [(str(lead), f"“{sequence}” is paused.")]
    assert not Enrollment.objects.exists()


def test_bulk_enrollment_with_the_lead_picker(client, marketer):
    sequence = email_sequence()
    leads = [LeadFactory() for _ in range(3)]
    enrollment_start(lead=leads[0], sequence=sequence)
    url = reverse("admin:nurturing_sequence_enroll", args=[sequence.pk])
    client.force_login(marketer)

    page = client.get(url)
    response = client.post(url, {"leads": [lead.pk for lead in leads]})

    assert page.status_code == 200
    assert "admin-autocomplete" in page.content.decode()
    assert response.status_code == 302
    assert Enrollment.objects.active().filter(sequence=sequence).count() == 3
    bad = client.post(url, {"leads": ["999999"]})
    assert bad.status_code == 400
    assert "leads" in bad.context["form"].errors


def test_the_enroll_matching_action_enrolls_every_matching_lead(client, marketer):
    sequence = email_sequence(bands=[Band.WARM], auto_enroll=False)
    warm = [LeadFactory(band=Band.WARM) for _ in range(2)]
    LeadFactory(band=Band.COLD)
    client.force_login(marketer)

    response = client.post(
        reverse("admin:nurturing_sequence_changelist"),
        {"action": "enroll_matching", "_selected_action": [sequence.pk]},
    )

    assert response.status_code == 302
    enrolled = set(Enrollment.objects.values_list("lead", flat=True))
    assert enrolled == {lead.pk for lead in warm}


def test_ending_enrollments_by_hand(client, marketer):
    sequence = email_sequence()
    enrollment, _ = enrollment_start(lead=LeadFactory(), sequence=sequence)
    client.force_login(marketer)

    client.post(
        reverse("admin:nurturing_enrollment_changelist"),
        {"action": "end_selected", "_selected_action": [enrollment.pk]},
    )

    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == (
        EnrollmentStatus.EXITED,
        ExitReason.MANUAL,
    )


@pytest.mark.parametrize(
    "name",
    [
        "admin:nurturing_sequence_changelist",
        "admin:nurturing_enrollment_changelist",
        "admin:nurturing_message_changelist",
        "admin:nurturing_suppression_changelist",
    ],
)
def test_admin_pages_render_for_a_marketer(client, marketer, name):
    sequence = email_sequence()
    enrollment_start(lead=LeadFactory(), sequence=sequence)
    client.force_login(marketer)

    assert client.get(reverse(name)).status_code == 200
    assert client.get(reverse(name), {"q": "a"}).status_code == 200


@pytest.mark.parametrize("persona", ["rep", "outsider"])
def test_people_without_the_marketer_role_cannot_enroll_or_edit(client, request, persona):
    user = request.getfixturevalue(persona)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    sequence = email_sequence()
    lead = LeadFactory()
    client.force_login(user)

    enroll_one = {"lead": lead.pk, "sequence": sequence.pk}
    enroll_page = reverse("admin:nurturing_sequence_enroll", args=[sequence.pk])
    pages = [
        client.get(reverse("admin:nurturing_sequence_changelist")),
        client.post(reverse("admin:nurturing_enrollment_add"), enroll_one),
        client.post(enroll_page, {"leads": [lead.pk]}),
    ]

    assert [p.status_code for p in pages[:2]] == [403, 403]
    assert pages[2].status_code == 302
    assert pages[2]["Location"] == reverse("admin:index")
    assert not Enrollment.objects.exists()


def test_every_nurturing_change_page_renders(client, admin_user):
    sequence = email_sequence()
    lead = LeadFactory()
    enrollment, _ = enrollment_start(lead=lead, sequence=sequence)
    message = Message.objects.create(
        enrollment=enrollment, step=sequence.steps.first(), lead=lead, to_email=lead.email
    )
    suppression = Suppression.objects.create(email="gone@example.com", reason="bounced")
    client.force_login(admin_user)

    for obj in (sequence, enrollment, message, suppression):
        meta = obj._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.context["original"] == obj


# --- Pausing and resuming ---------------------------------------------------------------------


MONDAY = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC)


def sequence_action(client, action: str, sequence: Sequence, capture) -> None:
    with capture(execute=True):
        response = client.post(
            reverse("admin:nurturing_sequence_changelist"),
            {"action": action, "_selected_action": [sequence.pk]},
        )
    assert response.status_code == 302


def sequence_status_form(client, sequence: Sequence, status: str, capture) -> None:
    url = reverse("admin:nurturing_sequence_change", args=[sequence.pk])
    data = {**changeform_data(client.get(url)), "status": status}
    with capture(execute=True):
        response = client.post(url, data)
    assert response.status_code == 302


def queued_first_step(sequence: Sequence) -> Message:
    """An enrolled lead whose first email is queued, its task message not delivered yet."""
    enrollment_start(lead=LeadFactory(first_name="Ada"), sequence=sequence, now=MONDAY)
    enrollments_process_due(now=MONDAY)  # its on-commit send request is never run
    return Message.objects.get(status=MessageStatus.QUEUED)


@pytest.mark.parametrize("surface", ["action", "change form"])
def test_a_paused_sequence_holds_its_queued_email_and_steps_until_resumed(
    client, marketer, surface, django_capture_on_commit_callbacks
):
    # Given a sequence with an email queued and a second step due three days later
    sequence = email_sequence()
    message = queued_first_step(sequence)
    client.force_login(marketer)

    # When the marketer pauses it in the admin
    if surface == "action":
        sequence_action(client, "pause", sequence, django_capture_on_commit_callbacks)
    else:
        sequence_status_form(client, sequence, "paused", django_capture_on_commit_callbacks)

    # Then neither the queued email, nor the stalled-message sweep, nor the next step sends
    with django_capture_on_commit_callbacks(execute=True):
        send_message.delay(message.pk)
        messages_resume_stalled(now=MONDAY + dt.timedelta(days=4))
        enrollments_process_due(now=MONDAY + dt.timedelta(days=4))
    assert mail.outbox == []
    message.refresh_from_db()
    assert (message.status, message.claimed_at, message.attempts) == (MessageStatus.QUEUED, None, 0)
    assert Sequence.objects.get(pk=sequence.pk).status == "paused"
    assert Enrollment.objects.get().next_position == 2

    # When the marketer resumes it
    if surface == "action":
        sequence_action(client, "resume", sequence, django_capture_on_commit_callbacks)
    else:
        sequence_status_form(client, sequence, "active", django_capture_on_commit_callbacks)

    # Then the held email goes out at once, and the step that fell due at beat's next pass
    assert [m.subject for m in mail.outbox] == ["Step 1 for Ada"]
    with django_capture_on_commit_callbacks(execute=True):
        enrollments_process_due(now=MONDAY + dt.timedelta(days=4))
    assert [m.subject for m in mail.outbox] == ["Step 1 for Ada", "Step 2 for Ada"]


def test_pausing_a_paused_sequence_or_resuming_an_active_one_changes_nothing(
    client, marketer, django_capture_on_commit_callbacks
):
    paused = email_sequence("Paused", status="paused")
    active = email_sequence("Active")
    client.force_login(marketer)

    sequence_action(client, "pause", paused, django_capture_on_commit_callbacks)
    sequence_action(client, "resume", active, django_capture_on_commit_callbacks)

    statuses = dict(Sequence.objects.values_list("name", "status"))
    assert statuses == {"Paused": "paused", "Active": "active"}

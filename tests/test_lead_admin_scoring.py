"""Scoring through the lead admin: field edits rescore fit, managers adjust scores by hand."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from leads.models import Lead
from scoring.models import EntryKind, ScoreEntry
from scoring.verification import scores_verify
from tests.admin_forms import changeform_data
from tests.factories import LeadFactory, active_model, fit_rule


@pytest.fixture
def model(db):
    model = active_model()
    fit_rule(model, 20, "seniority", "equals", "director")
    return model


@pytest.fixture
def staff_manager(manager):
    manager.is_staff = True
    manager.save(update_fields=["is_staff"])
    return manager


def adjust(client, leads, **data):
    return client.post(
        reverse("admin:leads_lead_changelist"),
        {"action": "adjust_score", "_selected_action": [lead.pk for lead in leads], **data},
    )


def test_editing_a_leads_title_in_the_admin_rescores_its_fit(
    client, admin_user, model, django_capture_on_commit_callbacks
):
    # Given an individual contributor scored at 0
    lead = LeadFactory(seniority="individual")
    client.force_login(admin_user)
    url = reverse("admin:leads_lead_change", args=[lead.pk])
    data = changeform_data(client.get(url))
    data["seniority"] = "director"

    # When an admin promotes them in the admin
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, data)

    # Then the fit rule counts at once
    assert response.status_code == 302
    lead.refresh_from_db()
    assert (lead.score, lead.fit_score) == (20, 20)
    assert list(scores_verify()) == []


def test_manager_adjusts_scores_in_bulk_with_a_reason(client, staff_manager, rep, model):
    # Given two leads of the manager's team
    leads = [LeadFactory(owner=rep), LeadFactory(owner=rep)]
    client.force_login(staff_manager)

    # When the manager adds 15 points to both with a reason
    response = adjust(client, leads, apply="1", points="15", reason="Met them at the fair")

    # Then each lead's ledger shows the adjustment, by the manager, with the reason
    assert response.status_code == 302
    for lead in Lead.objects.filter(pk__in=[lead.pk for lead in leads]):
        entry = ScoreEntry.objects.get(lead=lead, kind=EntryKind.MANUAL)
        assert (entry.points, entry.by) == (15, staff_manager)
        assert "Met them at the fair" in entry.reason
        assert lead.score == 15
    assert list(scores_verify()) == []


def test_admin_adjustment_names_each_lead_it_left_as_the_leads_list_does(
    client, staff_manager, rep
):
    # Given a lead of the manager's team and no scoring model to adjust its score in
    lead = LeadFactory(owner=rep, first_name="Ada", last_name="Byron")
    client.force_login(staff_manager)

    # When the manager adjusts it in the admin
    response = adjust(client, [lead], apply="1", points="15", reason="Met them at the fair")

    # Then the admin names the lead and why, in the words of the list's bulk action
    assert response.status_code == 302
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert shown == ["0 leads adjusted; 1 could not: Ada Byron (no scoring model applies)."]
    assert not ScoreEntry.objects.filter(kind=EntryKind.MANUAL).exists()


def test_adjustment_without_a_reason_is_refused_and_changes_nothing(
    client, staff_manager, rep, model
):
    lead = LeadFactory(owner=rep)
    client.force_login(staff_manager)

    response = adjust(client, [lead], apply="1", points="15", reason="")

    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not ScoreEntry.objects.filter(kind=EntryKind.MANUAL).exists()


def test_marketer_cannot_adjust_scores_by_hand(client, marketer, model):
    lead = LeadFactory()
    client.force_login(marketer)

    response = adjust(client, [lead], apply="1", points="15", reason="Because")

    assert not ScoreEntry.objects.filter(kind=EntryKind.MANUAL).exists()
    assert response.status_code in (200, 302)
    assert Lead.objects.get(pk=lead.pk).score == 0

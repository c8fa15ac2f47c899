"""The deal pipeline in the admin: admins and marketers edit the stages and the lost
reasons; deals saved there go through ``leads.deals`` like on every other surface."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from crm.models import Role
from leads.deals import deal_create, deal_pipeline_ensure
from leads.models import Deal, DealStage, DealStatus, Lead, LostReason, Stage
from tests.admin_forms import changeform_data
from tests.conftest import make_user
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def stages():
    return deal_pipeline_ensure()


def staff_client(user) -> Client:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


def test_a_marketer_sets_up_stages_and_lost_reasons(marketer, stages):
    client = staff_client(marketer)

    stage = client.post(
        reverse("admin:leads_dealstage_add"),
        {"name": "Contract", "position": 4, "probability": 90, "rot_days": 7},
    )
    reason = client.post(
        reverse("admin:leads_lostreason_add"), {"name": "Went quiet", "position": 9, "active": "on"}
    )
    retired = client.post(
        reverse(
            "admin:leads_lostreason_change", args=[LostReason.objects.get(name="Bad timing").pk]
        ),
        {"name": "Bad timing", "position": 4},
    )

    assert (stage.status_code, reason.status_code, retired.status_code) == (302, 302, 302)
    assert DealStage.objects.values_list("name", "probability", "rot_days").last() == (
        "Contract",
        90,
        7,
    )
    assert LostReason.objects.get(name="Went quiet").active
    assert not LostReason.objects.get(name="Bad timing").active


@pytest.mark.parametrize(("probability", "rot_days"), [(101, 7), (50, 0)])
def test_a_stage_with_a_bad_probability_or_limit_is_a_form_error(
    marketer, stages, probability, rot_days
):
    response = staff_client(marketer).post(
        reverse("admin:leads_dealstage_add"),
        {"name": "Odd", "position": 4, "probability": probability, "rot_days": rot_days},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not DealStage.objects.filter(name="Odd").exists()


@pytest.mark.parametrize("role", ["rep", "manager"])
def test_sales_roles_do_not_change_the_pipeline(request, stages, role):
    client = staff_client(request.getfixturevalue(role))
    stage = stages[0]

    changed = client.post(
        reverse("admin:leads_dealstage_change", args=[stage.pk]),
        {"name": "Mine", "position": 1, "probability": 99},
    )
    added = client.post(reverse("admin:leads_lostreason_add"), {"name": "Mine", "position": 1})

    assert changed.status_code == 403
    assert added.status_code == 403
    assert DealStage.objects.get(pk=stage.pk).probability == 20
    assert not LostReason.objects.filter(name="Mine").exists()


def deal_change(client: Client, deal: Deal, **fields) -> object:
    url = reverse("admin:leads_deal_change", args=[deal.pk])
    data = changeform_data(client.get(url))
    return client.post(url, {**data, **fields})


def test_winning_a_deal_in_the_admin_makes_the_lead_a_customer(admin_user, rep, stages):
    lead = LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)
    deal = deal_create(lead=lead, by=rep, name="Pilot")

    response = deal_change(staff_client(admin_user), deal, status=DealStatus.WON)

    assert response.status_code == 302
    assert Deal.objects.get().status == DealStatus.WON
    assert Deal.objects.get().closed_at is not None
    assert Lead.objects.get(pk=lead.pk).stage == Stage.CUSTOMER


def test_the_admin_refuses_a_reason_off_the_pick_list_and_a_disqualified_win(
    admin_user, rep, stages
):
    client = staff_client(admin_user)
    lead = LeadFactory(owner=rep, stage=Stage.DISQUALIFIED, disqualification_reason="No budget")
    deal = deal_create(lead=lead, by=rep, name="Pilot")

    lost = deal_change(client, deal, status=DealStatus.LOST, lost_reason="Aliens")
    won = deal_change(client, deal, status=DealStatus.WON)

    assert "lost_reason" in lost.context["adminform"].form.errors
    assert "status" in won.context["adminform"].form.errors
    assert Deal.objects.get().status == DealStatus.OPEN
    assert Lead.objects.get(pk=lead.pk).stage == Stage.DISQUALIFIED


def test_a_manager_cannot_give_a_deal_outside_the_team_in_the_admin(manager, rep, stages):
    stranger = make_user("stranger", Role.REP)
    deal = deal_create(lead=LeadFactory(owner=rep), by=rep, name="Pilot")

    response = deal_change(staff_client(manager), deal, owner=stranger.pk)

    assert response.status_code == 200
    assert "owner" in response.context["adminform"].form.errors
    assert Deal.objects.get().owner == rep

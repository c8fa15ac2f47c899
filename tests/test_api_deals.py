"""Deals through the API: the pipeline's fields, checked like on the lead page, and a
deal's closing through ``leads.deals`` (won makes a customer, lost takes a reason from
the pick-list); the pipeline's stages and lost reasons to read."""

from __future__ import annotations

import pytest

from leads.deals import deal_create, deal_pipeline_ensure
from leads.models import Deal, DealStatus, Lead, ProductLine, Stage, StageChange
from tests.api_client import error_of, ids, token_client
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db
DEALS = "/api/v1/deals/"


@pytest.fixture
def stages():
    return deal_pipeline_ensure()


@pytest.fixture
def api(rep):
    return token_client(rep)


@pytest.fixture
def lead(rep) -> Lead:
    return LeadFactory(owner=rep, stage=Stage.OPPORTUNITY)


def test_a_deal_created_through_the_api_has_the_pipelines_fields(api, rep, lead, stages):
    ProductLine.objects.create(name="Fleet", slug="fleet")

    response = api.post(
        DEALS,
        {
            "lead": lead.pk,
            "name": "Fleet pilot",
            "amount": "5000",
            "currency": "usd",
            "stage": stages[1].pk,
            "expected_close": "2030-06-30",
            "product_line": "fleet",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in ("stage", "probability", "win_probability", "owner")} == {
        "stage": stages[1].pk,
        "probability": None,
        "win_probability": 50,
        "owner": rep.pk,
    }
    assert (body["currency"], body["expected_close"], body["product_line"]) == (
        "USD",
        "2030-06-30",
        "fleet",
    )
    assert body["stage_changed_at"] is not None


def test_a_deal_left_without_a_stage_starts_in_the_first(api, lead, stages):
    response = api.post(DEALS, {"lead": lead.pk, "name": "Pilot"}, format="json")

    assert response.json()["stage"] == stages[0].pk


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"probability": 101}, "probability"),
        ({"probability": -1}, "probability"),
        ({"stage": 999999}, "stage"),
        ({"product_line": "nope"}, "product_line"),
        ({"product_line": ""}, "product_line"),
        ({"expected_close": "soon"}, "expected_close"),
        ({"status": "lost"}, "lost_reason"),
        ({"status": "lost", "lost_reason": "Aliens"}, "lost_reason"),
        ({"lost_reason": "Price too high"}, "lost_reason"),
    ],
)
def test_bad_pipeline_fields_are_field_errors(api, lead, stages, payload, field):
    response = api.post(DEALS, {"lead": lead.pk, "name": "Pilot", **payload}, format="json")

    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    assert not Deal.objects.exists()


def test_a_rep_cannot_give_a_deal_to_someone_else(api, other_rep, lead, stages):
    response = api.post(
        DEALS, {"lead": lead.pk, "name": "Pilot", "owner": other_rep.pk}, format="json"
    )

    assert response.status_code == 400
    assert "owner" in error_of(response)["fields"]


def test_winning_through_the_api_makes_the_lead_a_customer(api, rep, lead, stages):
    deal = deal_create(lead=lead, by=rep, name="Pilot")

    response = api.patch(f"{DEALS}{deal.pk}/", {"status": "won"}, format="json")

    assert response.status_code == 200
    assert response.json()["closed_at"] is not None
    assert Lead.objects.get(pk=lead.pk).stage == Stage.CUSTOMER
    assert StageChange.objects.get(lead=lead).by == rep


def test_creating_a_won_deal_makes_the_lead_a_customer_too(api, lead, stages):
    response = api.post(
        DEALS,
        {"lead": lead.pk, "name": "Signed", "status": "won", "closed_at": "2026-01-31T10:00:00Z"},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["closed_at"] == "2026-01-31T10:00:00Z"
    assert Lead.objects.get(pk=lead.pk).stage == Stage.CUSTOMER


def test_winning_a_disqualified_leads_deal_is_a_409_and_changes_nothing(api, rep, stages):
    lead = LeadFactory(owner=rep, stage=Stage.DISQUALIFIED, disqualification_reason="No budget")
    deal = deal_create(lead=lead, by=rep, name="Pilot")

    response = api.patch(f"{DEALS}{deal.pk}/", {"status": "won", "name": "X"}, format="json")

    assert response.status_code == 409
    assert "recycle it" in error_of(response)["message"]
    assert Deal.objects.values_list("name", "status").get() == ("Pilot", DealStatus.OPEN)


def test_losing_through_the_api_takes_the_pick_lists_spelling(api, rep, lead, stages):
    deal = deal_create(lead=lead, by=rep, name="Pilot")

    lost = api.patch(
        f"{DEALS}{deal.pk}/", {"status": "lost", "lost_reason": "no DECISION"}, format="json"
    )
    renamed = api.patch(f"{DEALS}{deal.pk}/", {"lost_reason": "Bad timing"}, format="json")
    reopened = api.patch(f"{DEALS}{deal.pk}/", {"status": "open"}, format="json")

    assert (lost.status_code, lost.json()["lost_reason"]) == (200, "No decision")
    assert renamed.json()["lost_reason"] == "Bad timing"
    assert (reopened.json()["status"], reopened.json()["lost_reason"]) == ("open", "")
    assert reopened.json()["closed_at"] is None
    assert Lead.objects.get(pk=lead.pk).stage == Stage.OPPORTUNITY


def test_moving_a_deal_to_another_stage_through_the_api(api, rep, lead, stages):
    deal = deal_create(lead=lead, by=rep, name="Pilot")
    before = Deal.objects.get().stage_changed_at

    response = api.patch(f"{DEALS}{deal.pk}/", {"stage": stages[2].pk}, format="json")

    assert response.json()["win_probability"] == 75
    assert Deal.objects.get().stage_changed_at > before


def test_deals_filter_by_stage_and_owner(api, rep, other_rep, stages):
    mine = deal_create(lead=LeadFactory(owner=rep), by=rep, name="Mine", stage=stages[1])
    deal_create(lead=LeadFactory(owner=rep), by=rep, name="Other stage", stage=stages[0])

    assert ids(api.get(DEALS, {"stage": stages[1].pk})) == [mine.pk]
    assert len(ids(api.get(DEALS, {"owner": rep.pk}))) == 2
    assert ids(api.get(DEALS, {"owner": other_rep.pk})) == []


def test_stages_and_lost_reasons_are_read_by_everyone_with_a_role(rep, marketer, stages):
    for user in (rep, marketer):
        client = token_client(user)
        listed = client.get("/api/v1/deal-stages/")
        reasons = client.get("/api/v1/lost-reasons/")

        assert [s["name"] for s in listed.json()] == ["Qualification", "Proposal", "Negotiation"]
        assert [s["probability"] for s in listed.json()] == [20, 50, 75]
        assert "Price too high" in [r["name"] for r in reasons.json()]
    assert token_client(rep).post("/api/v1/deal-stages/", {"name": "X"}).status_code == 405

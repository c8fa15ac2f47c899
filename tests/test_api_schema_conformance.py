"""What a schemathesis run over the OpenAPI schema found, each as a regression test
through the API: answers missing a documented field, valid requests refused, invalid
ones accepted, and paths the schema did not describe."""

from __future__ import annotations

import pytest

from tests.api_client import error_of, token_client
from tests.factories import ActivityFactory, CompanyFactory, LeadFactory


@pytest.fixture
def schema(client):
    return client.get("/api/schema/", HTTP_ACCEPT="application/json").json()


def test_a_lead_without_a_company_answers_company_name_null_on_a_partial_update(rep):
    lead = LeadFactory(owner=rep, company=None)

    response = token_client(rep).patch(f"/api/v1/leads/{lead.pk}/", {"city": "Kiel"}, "json")

    assert response.status_code == 200, response.content
    assert response.json()["company_name"] is None


def test_a_date_filter_with_an_offset_beyond_the_databases_answers(rep):
    ActivityFactory(lead=LeadFactory(owner=rep))

    response = token_client(rep).get(
        "/api/v1/activities/", {"occurred_after": "2001-07-03T10:06:44-20:40"}
    )

    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 1


def test_an_owner_filter_too_long_for_an_id_answers_400(rep):
    response = token_client(rep).get("/api/v1/leads/", {"owner": "9" * 30})

    assert response.status_code == 400
    assert "owner" in error_of(response)["fields"]


@pytest.mark.parametrize("value", ["null", "0", "-1", "ten"])
def test_a_page_size_that_is_not_a_whole_number_from_1_answers_400(rep, value):
    response = token_client(rep).get("/api/v1/leads/", {"page_size": value})

    assert response.status_code == 400
    assert "page_size" in error_of(response)["fields"]


def test_an_empty_page_size_is_the_default_and_a_large_one_is_capped(rep):
    client = token_client(rep)

    assert client.get("/api/v1/leads/", {"page_size": ""}).status_code == 200
    assert client.get("/api/v1/leads/", {"page_size": "100000"}).status_code == 200


def test_a_boolean_filter_that_is_neither_true_nor_false_answers_400(rep):
    response = token_client(rep).get("/api/v1/tasks/", {"open": "-58800"})

    assert response.status_code == 400
    assert error_of(response)["fields"] == {"open": ["Give true or false."]}


def test_a_number_for_a_text_field_answers_400_and_changes_nothing(rep):
    company = CompanyFactory(city="Kiel")
    client = token_client(rep)

    token = client.post("/api/v1/tokens/", {"name": 0}, format="json")
    city = client.patch(f"/api/v1/companies/{company.pk}/", {"city": 0}, format="json")

    assert error_of(token)["fields"] == {"name": ["Give text, in quotes."]}
    assert error_of(city)["fields"] == {"city": ["Give text, in quotes."]}
    company.refresh_from_db()
    assert company.city == "Kiel"


def test_a_number_for_an_activitys_url_in_a_batch_answers_400(rep):
    lead = LeadFactory(owner=rep)

    response = token_client(rep).post(
        "/api/v1/activities/bulk/",
        {"activities": [{"lead": lead.pk, "type": "page_view", "url": 12}]},
        format="json",
    )

    assert response.status_code == 400
    assert "activities.0.url" in error_of(response)["fields"]


def test_an_object_for_a_list_field_answers_400(rep):
    lead = LeadFactory(owner=rep)

    response = token_client(rep).patch(
        f"/api/v1/leads/{lead.pk}/", {"product_interests": {}}, format="json"
    )

    assert error_of(response)["fields"] == {"product_interests": ["Give a list."]}


def test_a_currency_of_letters_beyond_a_to_z_answers_400(rep):
    lead = LeadFactory(owner=rep)

    response = token_client(rep).post(
        "/api/v1/deals/", {"lead": lead.pk, "name": "Fleet", "currency": "ÄÖÜ"}, format="json"
    )

    assert error_of(response)["fields"] == {
        "currency": ["Use a three-letter currency code, e.g. EUR."]
    }


def test_an_api_address_with_a_line_break_answers_404_in_the_error_shape(rep):
    response = token_client(rep).get("/api/v1/scoring-models/a%0Ab/rules/")

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_schema_describes_the_tracking_calls_and_the_form_endpoint(schema):
    paths = schema["paths"]
    for call in ["identify", "track", "page", "screen", "group", "alias", "batch"]:
        operation = paths[f"/v1/{call}"]["post"]
        assert operation["security"] == [{"writeKey": []}]
        assert {"200", "400", "401", "429"} <= set(operation["responses"])
    form = paths["/f/{key}/"]["post"]
    assert form["security"] == []
    assert {"202", "303", "400", "404", "413", "415", "429"} <= set(form["responses"])
    assert schema["components"]["securitySchemes"]["writeKey"]["scheme"] == "basic"


def test_schema_states_what_requests_may_hold(schema):
    components, paths = schema["components"]["schemas"], schema["paths"]
    lead_list = {p["name"]: p for p in paths["/api/v1/leads/"]["get"]["parameters"]}
    key = paths["/api/v1/leads/"]["post"]["parameters"][0]

    assert components["LeadRequest"]["additionalProperties"] is False
    assert components["Lead"]["properties"]["company_name"]["nullable"] is True
    assert lead_list["page_size"]["schema"]["minimum"] == 1
    assert all(parameter["allowEmptyValue"] for parameter in lead_list.values())
    assert lead_list["owner"]["schema"]["pattern"]
    assert (key["name"], key["schema"]["maxLength"]) == ("Idempotency-Key", 255)
    activity_list = {p["name"]: p for p in paths["/api/v1/activities/"]["get"]["parameters"]}
    assert activity_list["lead"]["schema"]["minimum"] == 1

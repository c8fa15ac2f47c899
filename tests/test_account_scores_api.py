"""Account scores through the REST API: read-only fields of a company, the same for
everyone who reads companies, sortable, described by the schema; nothing to an outsider."""

from __future__ import annotations

import pytest

from leads.models import Activity, ActivityType, ProductLine
from scoring.lead_scoring import leads_score
from scoring.models import AccountScore
from tests.api_client import token_client
from tests.factories import CompanyFactory, LeadFactory, active_model, fit_rule, page_rule

pytestmark = pytest.mark.django_db
PRICING = "https://hotlist.example/pricing"


@pytest.fixture
def accounts(rep, other_rep):
    """Two companies scored in two models; the hotter one's engagement is another rep's."""
    main = active_model(name="Main", priority=200, engaged_from=10, surge_points=0)
    fit_rule(main, 30, "job_title", "contains", "head")
    page_rule(main, 20, "/pricing")
    side = active_model(name="Side", is_default=False, priority=50, surge_points=0)
    fleet = ProductLine.objects.create(name="Fleet", slug="fleet")
    side.segment_product_lines.add(fleet)
    hot, cold, unscored = CompanyFactory(name="Hot"), CompanyFactory(name="Cold"), CompanyFactory()
    hidden = LeadFactory(owner=other_rep, company=hot, job_title="Head of IT")
    hidden.product_interests.add(fleet)
    Activity.objects.create(lead=hidden, type=ActivityType.PAGE_VIEW, url=PRICING)
    LeadFactory(owner=rep, company=hot, job_title="Clerk")
    LeadFactory(owner=rep, company=cold, job_title="Clerk")
    leads_score(lead_ids=[*hot.leads.values_list("pk", flat=True), cold.leads.get().pk])
    return main, side, hot, cold, unscored


def test_company_answers_its_account_scores_main_model_first(rep, accounts):
    main, side, hot, _, _ = accounts

    body = token_client(rep).get(f"/api/v1/companies/{hot.pk}/").json()

    assert body["account_score"] == 50  # 30 fit + 20 engagement, though the rep sees neither
    assert [row["model_name"] for row in body["account_scores"]] == ["Main", "Side"]
    assert body["account_scores"][1]["model"] == side.pk
    row = body["account_scores"][0]
    assert row["model"] == main.pk
    assert (row["band"], row["best_fit"], row["engagement"]) == ("warm", 30.0, 20.0)
    assert (row["engaged_contacts"], row["conversion_probability"]) == (1, None)
    stored = AccountScore.objects.get(company=hot, model=main)
    assert row["score"] == stored.score


def test_company_list_answers_and_sorts_by_account_score_in_few_queries(
    rep, accounts, django_assert_max_num_queries
):
    _, _, hot, cold, unscored = accounts
    client = token_client(rep)

    with django_assert_max_num_queries(8):
        rows = client.get("/api/v1/companies/", {"ordering": "-account_score"}).json()["results"]

    scores = {row["id"]: row["account_score"] for row in rows}
    assert scores[hot.pk] == 50
    assert scores[cold.pk] == 0
    assert scores[unscored.pk] is None
    ascending = client.get("/api/v1/companies/", {"ordering": "account_score"}).json()["results"]
    ranked = [row["id"] for row in ascending if row["account_score"] is not None]
    assert ranked == [cold.pk, hot.pk]


def test_account_score_cannot_be_written_through_the_api(marketer, accounts):
    _, _, hot, _, _ = accounts

    response = token_client(marketer).patch(
        f"/api/v1/companies/{hot.pk}/",
        {"city": "Delft", "account_score": 99, "account_scores": []},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["account_score"] == 50
    assert sorted(
        AccountScore.objects.filter(model__name="Main").values_list("score", flat=True)
    ) == [0, 50]


def test_outsider_reads_no_account_score(outsider, accounts):
    _, _, hot, _, _ = accounts

    listed = token_client(outsider).get("/api/v1/companies/")
    shown = token_client(outsider).get(f"/api/v1/companies/{hot.pk}/")
    anonymous = token_client(None).get(f"/api/v1/companies/{hot.pk}/")

    for response in (listed, shown, anonymous):
        assert response.status_code in (401, 403, 404)
        assert b"account_score" not in response.content


def test_schema_describes_the_account_scores_as_read_only(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    company = schema["components"]["schemas"]["Company"]["properties"]

    assert company["account_score"]["readOnly"] is True
    assert company["account_score"]["nullable"] is True
    assert company["account_scores"]["readOnly"] is True
    rows = schema["components"]["schemas"]["AccountScore"]["properties"]
    assert rows["conversion_probability"]["nullable"] is True
    assert all(field.get("readOnly") for field in rows.values())

"""Leads through the API: create, update, filters, search, ordering, pages, score, transitions."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leads.activities import activities_record
from leads.models import Activity, CustomFieldDefinition, Lead, ProductLine, StageChange
from tests.api_client import error_of, ids, token_client
from tests.factories import CompanyFactory, LeadFactory, active_model, fit_rule, page_rule

LEADS = "/api/v1/leads/"


@pytest.fixture
def api(rep):
    return token_client(rep)


def test_rep_creates_a_lead_that_is_theirs_and_scored(api, rep, django_capture_on_commit_callbacks):
    # Given a live model that rewards directors
    fit_rule(active_model(), 20, "seniority", "equals", "director")
    company = CompanyFactory(name="Acme")
    ProductLine.objects.create(name="Fleet", slug="fleet")

    # When a rep posts a lead
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            LEADS,
            {
                "email": "  Ada@Example.COM ",
                "first_name": "Ada",
                "seniority": "director",
                "company": company.pk,
                "product_interests": ["fleet"],
            },
            format="json",
        )

    # Then it is stored normalized, owned by the rep, and scored after commit
    assert response.status_code == 201, response.content
    body = response.json()
    lead = Lead.objects.get(pk=body["id"])
    assert lead.email == body["email"] == "ada@example.com"
    assert lead.owner == rep
    assert body["company_name"] == "Acme"
    assert list(lead.product_interests.values_list("slug", flat=True)) == ["fleet"]
    assert lead.score == 20


def test_invalid_lead_gets_field_errors_and_nothing_is_stored(api):
    LeadFactory(email="taken@example.com")
    CustomFieldDefinition.objects.create(key="fleet_size", label="Fleet", field_type="integer")

    response = api.post(
        LEADS,
        {
            "email": "TAKEN@example.com",
            "seniority": "emperor",
            "product_interests": ["nope"],
            "custom_fields": {"fleet_size": "many"},
        },
        format="json",
    )

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"email", "seniority", "product_interests", "custom_fields"}
    assert "exists already" in error["fields"]["email"][0]
    assert Lead.objects.count() == 1


def test_rep_cannot_assign_a_lead_to_someone_else(api, other_rep):
    response = api.post(LEADS, {"email": "a@example.com", "owner": other_rep.pk}, format="json")

    assert response.status_code == 400
    assert "owner" in error_of(response)["fields"]
    assert not Lead.objects.exists()


def test_update_changes_the_profile_and_rescores_fit(api, rep, django_capture_on_commit_callbacks):
    fit_rule(active_model(), 30, "job_title", "contains", "CTO")
    lead = LeadFactory(owner=rep, job_title="Intern")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(f"{LEADS}{lead.pk}/", {"job_title": "CTO"}, format="json")

    assert response.status_code == 200, response.content
    lead.refresh_from_db()
    assert lead.job_title == "CTO"
    assert lead.score == 30


def test_update_does_not_overwrite_scores_written_meanwhile(api, rep):
    # Given a lead read by the API while the scoring worker writes its score
    lead = LeadFactory(owner=rep, job_title="Intern")
    Lead.objects.filter(pk=lead.pk).update(score=77)

    # When the profile is changed through a stale copy of the row
    api.patch(f"{LEADS}{lead.pk}/", {"job_title": "CTO"}, format="json")

    # Then the score written meanwhile stays
    lead.refresh_from_db()
    assert (lead.job_title, lead.score) == ("CTO", 77)


def test_stage_and_score_cannot_be_written(api, rep):
    lead = LeadFactory(owner=rep)

    api.patch(f"{LEADS}{lead.pk}/", {"stage": "customer", "score": 999}, format="json")

    lead.refresh_from_db()
    assert (lead.stage, lead.score) == ("new", 0)


def test_leads_cannot_be_deleted(api, rep):
    lead = LeadFactory(owner=rep)

    response = api.delete(f"{LEADS}{lead.pk}/")

    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert Lead.objects.filter(pk=lead.pk).exists()


# --- Filters, search, ordering, pages ---------------------------------------------------


@pytest.fixture
def spread(rep, other_rep):
    """Leads that differ in each filtered field."""
    fleet = ProductLine.objects.create(name="Fleet", slug="fleet")
    hot = LeadFactory(
        owner=rep,
        stage="mql",
        band="hot",
        grade="A",
        quadrant="hot",
        score=90,
        source="event",
        last_name="Zed",
        company=CompanyFactory(name="Hotco"),
        last_activity_at=timezone.now() - dt.timedelta(days=2),
    )
    hot.product_interests.add(fleet)
    warm = LeadFactory(owner=rep, band="warm", grade="B", score=40, last_name="Alpha")
    pool = LeadFactory(owner=None, score=10, last_name="Mid", email="pool@unique.example")
    hidden = LeadFactory(owner=other_rep, band="hot", score=95)
    return {"hot": hot, "warm": warm, "pool": pool, "hidden": hidden}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["hot", "warm", "pool"]),
        ("stage=mql", ["hot"]),
        ("owner=me", ["hot", "warm"]),
        ("owner=unassigned", ["pool"]),
        ("band=hot", ["hot"]),
        ("grade=B", ["warm"]),
        ("quadrant=hot", ["hot"]),
        ("score_min=40", ["hot", "warm"]),
        ("score_max=40", ["warm", "pool"]),
        ("score_min=20&score_max=95", ["hot", "warm"]),
        ("source=event", ["hot"]),
        ("product_interest=fleet", ["hot"]),
        ("search=hotco", ["hot"]),
        ("search=alpha", ["warm"]),
        ("search=pool@unique", ["pool"]),
        ("q=hotco", ["hot"]),
        ("q=pool@unique", ["pool"]),
        ("activity=none", ["warm", "pool"]),
        ("activity=7", ["hot"]),
        ("ordering=last_name", ["warm", "pool", "hot"]),
        ("ordering=score", ["pool", "warm", "hot"]),
        ("ordering=-score", ["hot", "warm", "pool"]),
    ],
)
def test_lead_filters_search_and_ordering(api, spread, query, expected):
    response = api.get(f"{LEADS}?{query}")

    by_pk = {lead.pk: name for name, lead in spread.items()}
    assert [by_pk[pk] for pk in ids(response)] == expected


def test_owner_filter_by_id_stays_within_view(api, spread, other_rep, rep):
    assert ids(api.get(f"{LEADS}?owner={other_rep.pk}")) == []
    assert sorted(ids(api.get(f"{LEADS}?owner={rep.pk}"))) == sorted(
        [spread["hot"].pk, spread["warm"].pk]
    )


def test_updated_since_filter(api, spread):
    old = timezone.now() - dt.timedelta(days=3)
    Lead.objects.filter(pk=spread["warm"].pk).update(updated_at=old)
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()

    response = api.get(LEADS, {"updated_since": since})

    assert spread["warm"].pk not in ids(response)
    assert spread["hot"].pk in ids(response)


@pytest.mark.parametrize(
    "query",
    ["owner=somebody", "band=boiling", "score_min=lots", "activity=2", "score_max=5&score_min=9"],
)
def test_bad_filter_values_are_field_errors(api, spread, query):
    response = api.get(f"{LEADS}?{query}")

    assert response.status_code == 400
    assert query.split("=")[0] in error_of(response)["fields"]


def test_a_reversed_score_range_is_refused_on_its_upper_end(api, spread):
    response = api.get(f"{LEADS}?score_min=50&score_max=10")

    assert error_of(response)["fields"] == {"score_max": ["Make this at least the lower score."]}


def test_cursor_pages_cover_every_lead_once_in_score_order(api, rep):
    # Given more leads than a page, several with the same score
    made = [LeadFactory(owner=rep, score=score) for score in [5, 9, 9, 9, 1, 7, 9]]

    # When the pages are followed to the end
    seen, url = [], f"{LEADS}?page_size=3"
    while url:
        page = api.get(url)
        assert page.status_code == 200
        assert len(page.json()["results"]) <= 3
        seen += [(row["score"], row["id"]) for row in page.json()["results"]]
        url = page.json()["next"]

    # Then each lead came once, hottest first and newest first among equals
    assert seen == sorted(((lead.score, lead.pk) for lead in made), reverse=True)


def follow(api, url: str, link: str = "next") -> list[dict]:
    """Every row of every page from ``url``, following ``link`` to the end."""
    rows: list[dict] = []
    for _ in range(100):  # a cursor that never ends fails here instead of hanging
        page = api.get(url)
        assert page.status_code == 200, page.content
        rows += page.json()["results"]
        url = page.json()[link]
        if not url:
            return rows
    raise AssertionError(f"The {link} links did not end.")


def test_pages_go_to_the_end_when_more_than_a_thousand_leads_share_a_score(api, rep):
    # Given 1,201 leads of one score, the most a cursor could step over before
    # (the same next link came back forever), and two others around them
    Lead.objects.bulk_create(
        [Lead(email=f"same{n}@x.example", owner=rep, score=40) for n in range(1_201)]
    )
    hot, cold = LeadFactory(owner=rep, score=90), LeadFactory(owner=rep, score=3)

    # When the pages of 500 are followed
    rows = follow(api, f"{LEADS}?page_size=500")

    # Then they end, and every lead came once, hottest first, newest first among equals
    expected = sorted(Lead.objects.values_list("score", "pk"), reverse=True)
    assert [(row["score"], row["id"]) for row in rows] == expected
    assert (rows[0]["id"], rows[-1]["id"]) == (hot.pk, cold.pk)


def test_previous_links_walk_back_over_ties_to_the_first_page(api, rep):
    # Given leads sorted by last name, many sharing one, changed a microsecond apart
    at = timezone.now()
    for n in range(9):
        lead = LeadFactory(owner=rep, last_name="Meier" if n % 3 else f"Name{n}")
        Lead.objects.filter(pk=lead.pk).update(updated_at=at + dt.timedelta(microseconds=n % 4))
    for ordering in ("last_name", "-updated_at"):
        forward = follow(api, f"{LEADS}?page_size=2&ordering={ordering}")
        assert len({row["id"] for row in forward}) == 9

        # When the last page's previous links are followed back to the first page
        page = api.get(f"{LEADS}?page_size=2&ordering={ordering}")
        while page.json()["next"]:
            page = api.get(page.json()["next"])
        walked = page.json()["results"]
        while page.json()["previous"]:
            page = api.get(page.json()["previous"])
            walked = page.json()["results"] + walked

        # Then they give the same rows in the same order, none twice
        assert [row["id"] for row in walked] == [row["id"] for row in forward]


def test_bad_cursor_is_a_400_on_the_cursor_parameter(api):
    response = api.get(f"{LEADS}?cursor=garbage")
    # A cursor of another shape (DRF's own, of one field's position) is refused too
    old = api.get(f"{LEADS}?cursor=cD01Nw%3D%3D")

    assert old.status_code == 400
    assert response.status_code == 400
    assert error_of(response)["fields"] == {
        "cursor": ["This cursor is not valid; start from the first page."]
    }


def test_unknown_api_path_is_a_404_in_the_error_shape(api):
    response = api.put("/api/v1/scoring-models/-3/rules/7/", {}, format="json")

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_ids_too_large_for_the_database_are_refused_not_crashed(api):
    huge = 2**70
    listed = api.get(f"/api/v1/activities/?lead={huge}")
    created = api.post("/api/v1/activities/", {"lead": huge, "type": "note"}, format="json")

    assert listed.status_code == 400
    assert "lead" in error_of(listed)["fields"]
    assert created.status_code == 400
    assert "lead" in error_of(created)["fields"]


def _count_list_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def test_lead_list_queries_do_not_grow_with_rows(rep, django_assert_max_num_queries):
    fleet = ProductLine.objects.create(name="Fleet", slug="fleet")
    client = token_client(rep)

    def add(n: int) -> None:
        for _ in range(n):
            LeadFactory(owner=rep).product_interests.add(fleet)

    add(2)
    few = _count_list_queries(client, LEADS)
    add(20)
    with django_assert_max_num_queries(few):
        response = client.get(LEADS)
    assert len(response.json()["results"]) == 22
    assert few <= 8


# --- Score and transitions --------------------------------------------------------------


def test_score_explains_the_points_and_gives_the_history(
    api, rep, django_capture_on_commit_callbacks
):
    model = active_model()
    fit_rule(model, 20, "seniority", "equals", "director")
    page_rule(model, 25, "/pricing")
    lead = LeadFactory(owner=rep, seniority="director")
    with django_capture_on_commit_callbacks(execute=True):
        activities_record(lead=lead, activities=[Activity(type="page_view", url="/pricing")])
    lead.refresh_from_db()

    response = api.get(f"{LEADS}{lead.pk}/score/")

    assert response.status_code == 200
    body = response.json()
    assert body["lead_id"] == lead.pk
    assert body["score"] == lead.score == 45
    part = body["models"][0]
    assert part["model"]["id"] == model.pk
    assert sorted(line["points"] for line in part["positive"]) == [20, 25]
    assert part["history"][-1]["score"] == lead.score


def test_transition_moves_the_lead_and_records_who(api, rep):
    lead = LeadFactory(owner=rep)

    response = api.post(
        f"{LEADS}{lead.pk}/transition/", {"stage": "sql", "reason": "Called"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["stage"] == "sql"
    change = StageChange.objects.get(lead=lead)
    assert (change.from_stage, change.to_stage, change.by, change.reason) == (
        "new",
        "sql",
        rep,
        "Called",
    )


def test_transition_the_lifecycle_refuses_is_a_409(api, rep):
    lead = LeadFactory(owner=rep, stage="customer")

    response = api.post(f"{LEADS}{lead.pk}/transition/", {"stage": "mql"}, format="json")

    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "conflict"
    assert "cannot move from Customer to MQL" in error["message"]
    lead.refresh_from_db()
    assert lead.stage == "customer"
    assert not StageChange.objects.exists()


def test_disqualifying_needs_a_reason(api, rep):
    lead = LeadFactory(owner=rep)

    response = api.post(f"{LEADS}{lead.pk}/transition/", {"stage": "disqualified"}, format="json")

    assert response.status_code == 409
    assert "why" in error_of(response)["message"]


def test_transition_to_an_unknown_stage_is_a_field_error(api, rep):
    lead = LeadFactory(owner=rep)

    response = api.post(f"{LEADS}{lead.pk}/transition/", {"stage": "won"}, format="json")

    assert response.status_code == 400
    assert "stage" in error_of(response)["fields"]

"""Merging companies through the API: the merge, its preview, the old id redirecting to
the survivor, the undo, bad input, and who may merge."""

from __future__ import annotations

import pytest

from crm.models import Role, Team
from leads.models import Company, CompanyAlias, CompanyMerge, Lead
from tests.api_client import error_of, token_client
from tests.conftest import make_user
from tests.factories import CompanyFactory, LeadFactory

MERGES = "/api/v1/company-merges/"
COMPANIES = "/api/v1/companies/"


@pytest.fixture
def south_rep(db):
    return make_user("south-rep", Role.REP, team=Team.objects.create(name="South"))


@pytest.fixture
def twins(rep):
    """One company twice, each carrying a lead of the manager's team."""
    a = CompanyFactory(name="Initech", domain="initech.example", industry="software")
    b = CompanyFactory(name="Initech Inc.", domain="", industry="finance", city="Austin")
    LeadFactory(owner=rep, company=a)
    LeadFactory(owner=rep, company=b)
    return a, b


def state(*companies: Company) -> tuple:
    ids = [c.pk for c in companies]
    return (
        sorted(Company.objects.filter(pk__in=ids).values_list("pk", "name", "industry", "city")),
        sorted(Lead.objects.filter(company__in=ids).values_list("pk", "company_id")),
        CompanyMerge.objects.count(),
    )


def test_marketer_merges_through_the_api_choosing_a_field(marketer, twins):
    a, b = twins
    api = token_client(marketer)

    response = api.post(
        MERGES,
        {"survivor": a.pk, "others": [b.pk], "fields": {"industry": b.pk}},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["survivor"], body["merged_ids"], body["by"]) == (a.pk, [b.pk], marketer.pk)
    assert body["fields"]["industry"] == {"from": b.pk, "before": "software", "after": "finance"}
    assert body["fields"]["city"]["after"] == "Austin"
    assert body["moved"] == {"leads.lead": 1, "aliases": 0}
    survivor = Company.objects.get(pk=a.pk)
    assert (survivor.name, survivor.industry, survivor.city) == ("Initech", "finance", "Austin")
    assert survivor.leads.count() == 2
    assert not Company.objects.filter(pk=b.pk).exists()
    assert CompanyAlias.objects.get(alias_id=b.pk).company_id == a.pk
    assert api.get(f"{MERGES}{body['id']}/").json()["survivor"] == a.pk


def test_a_merged_companys_id_redirects_to_the_survivor(marketer, twins):
    a, b = twins
    api = token_client(marketer)
    api.post(MERGES, {"survivor": a.pk, "others": [b.pk]}, format="json")

    read = api.get(f"{COMPANIES}{b.pk}/")
    assert (read.status_code, read["Location"]) == (301, f"{COMPANIES}{a.pk}/")
    assert api.get(read["Location"]).json()["id"] == a.pk
    write = api.patch(f"{COMPANIES}{b.pk}/?x=1", {"city": "Berlin"}, format="json")
    assert (write.status_code, write["Location"]) == (308, f"{COMPANIES}{a.pk}/?x=1")
    assert api.get(f"{COMPANIES}999999/").status_code == 404


def test_preview_lists_the_fields_that_differ_and_the_default_choice(admin_user, twins):
    a, b = twins

    response = token_client(admin_user).get(
        f"{MERGES}preview/", {"survivor": a.pk, "others": str(b.pk)}
    )

    assert response.status_code == 200, response.content
    conflicts = {row["field"]: row for row in response.json()["conflicts"]}
    assert conflicts["industry"]["values"] == {str(a.pk): "software", str(b.pk): "finance"}
    assert conflicts["industry"]["default"] == a.pk
    assert conflicts["city"]["default"] == b.pk
    assert "country" not in conflicts
    assert Company.objects.filter(pk=b.pk).exists()


def test_undo_through_the_api_brings_the_merged_company_back_once(marketer, twins):
    a, b = twins
    api = token_client(marketer)
    before = state(a, b)
    merge_id = api.post(
        MERGES, {"survivor": a.pk, "others": [b.pk], "fields": {"name": b.pk}}, format="json"
    ).json()["id"]
    assert [m["id"] for m in api.get(MERGES).json()["results"]] == [merge_id]

    response = api.post(f"{MERGES}{merge_id}/undo/")

    assert response.status_code == 200, response.content
    assert response.json()["undone_at"] is not None
    assert state(a, b)[:2] == before[:2]
    assert api.get(f"{COMPANIES}{b.pk}/").status_code == 200
    again = api.post(f"{MERGES}{merge_id}/undo/")
    assert again.status_code == 409
    assert "undone already" in error_of(again)["message"]


def test_bad_merge_requests_answer_400_with_the_field_and_change_nothing(admin_user, twins):
    a, b = twins
    api = token_client(admin_user)
    before = state(a, b)
    for body, field in [
        ({"survivor": a.pk, "others": [a.pk]}, "others"),
        ({"survivor": a.pk, "others": [b.pk, a.pk]}, "others"),
        ({"survivor": a.pk, "others": []}, "others"),
        ({"survivor": a.pk, "others": b.pk}, "others"),
        ({"survivor": 999999, "others": [b.pk]}, "survivor"),
        ({"survivor": a.pk, "others": [b.pk, 999999]}, "others"),
        ({"survivor": a.pk, "others": [b.pk], "fields": {"score": b.pk}}, "fields.score"),
        ({"survivor": a.pk, "others": [b.pk], "fields": {"name": 999999}}, "fields.name"),
        ({"survivor": a.pk, "others": [b.pk], "extra": 1}, "extra"),
        ({"others": [b.pk]}, "survivor"),
        ({"survivor": "Initech", "others": [b.pk]}, "survivor"),
    ]:
        response = api.post(MERGES, body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert field in error_of(response)["fields"], (body, error_of(response))
    assert state(a, b) == before


def test_unknown_ids_are_named_in_the_message(admin_user, twins):
    a, _ = twins

    response = token_client(admin_user).post(
        MERGES, {"survivor": a.pk, "others": [424242]}, format="json"
    )

    assert error_of(response)["fields"] == {"others": ["There is no company 424242."]}


def test_a_bad_preview_answers_400_and_an_already_merged_company_409(admin_user, twins):
    a, b = twins
    c = CompanyFactory(name="Initech Europe")
    api = token_client(admin_user)
    for query, field in [
        ({"survivor": a.pk, "others": f"{b.pk},{a.pk}"}, "others"),
        ({"survivor": a.pk, "others": "b,c"}, "others"),
        ({"survivor": a.pk}, "others"),
        ({"survivor": 999999, "others": str(b.pk)}, "survivor"),
    ]:
        response = api.get(f"{MERGES}preview/", query)
        assert response.status_code == 400, (query, response.content)
        assert field in error_of(response)["fields"]
    api.post(MERGES, {"survivor": a.pk, "others": [b.pk]}, format="json")

    again = api.post(MERGES, {"survivor": c.pk, "others": [b.pk]}, format="json")

    assert again.status_code == 409
    assert f"merged into company {a.pk}" in error_of(again)["message"]
    assert Company.objects.filter(pk=c.pk).exists()


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("admin_user", 201),
        ("marketer", 201),
        ("manager", 201),
        ("rep", 403),
        ("outsider", 403),
    ],
)
def test_who_may_merge_companies_through_the_api(request, persona, status, twins):
    a, b = twins
    before = state(a, b)

    response = token_client(request.getfixturevalue(persona)).post(
        MERGES, {"survivor": a.pk, "others": [b.pk]}, format="json"
    )

    assert response.status_code == status, response.content
    if status != 201:
        assert state(a, b) == before


def test_a_manager_cannot_merge_a_company_carrying_another_teams_lead(manager, twins, south_rep):
    a, b = twins
    LeadFactory(owner=south_rep, company=b)
    before = state(a, b)
    api = token_client(manager)

    merged = api.post(MERGES, {"survivor": a.pk, "others": [b.pk]}, format="json")
    previewed = api.get(f"{MERGES}preview/", {"survivor": a.pk, "others": str(b.pk)})

    assert merged.status_code == previewed.status_code == 403
    assert "every lead" in error_of(merged)["message"]
    assert state(a, b) == before


def test_reps_neither_list_nor_undo_company_merges_and_managers_list_their_own(
    marketer, manager, rep, twins, south_rep
):
    a, b = twins
    south = [CompanyFactory(name=f"Southwind {n}") for n in range(2)]
    for company in south:
        LeadFactory(owner=south_rep, company=company)
    marketing = token_client(marketer)
    own = marketing.post(MERGES, {"survivor": a.pk, "others": [b.pk]}, format="json").json()
    far = marketing.post(
        MERGES, {"survivor": south[0].pk, "others": [south[1].pk]}, format="json"
    ).json()
    api = token_client(rep)

    assert api.get(MERGES).status_code == 403
    assert api.post(f"{MERGES}{own['id']}/undo/").status_code == 403
    managing = token_client(manager)
    assert [m["id"] for m in managing.get(MERGES).json()["results"]] == [own["id"]]
    assert managing.post(f"{MERGES}{far['id']}/undo/").status_code == 404
    assert CompanyMerge.objects.filter(undone_at__isnull=False).count() == 0


def test_the_schema_describes_the_company_merges(client):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]

    create = paths["/api/v1/company-merges/"]["post"]
    assert {"201", "400", "403", "409"} <= set(create["responses"])
    assert "/api/v1/company-merges/preview/" in paths
    assert "409" in paths["/api/v1/company-merges/{id}/undo/"]["post"]["responses"]


def test_the_schema_types_a_merge_as_the_api_answers_it(client, marketer, twins):
    a, b = twins
    answer = (
        token_client(marketer)
        .post(MERGES, {"survivor": a.pk, "others": [b.pk]}, format="json")
        .json()
    )
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    properties = schema["components"]["schemas"]["CompanyMerge"]["properties"]

    assert answer["merged_ids"] == [b.pk]
    assert properties["merged_ids"]["type"] == "array"
    assert answer["undone_by"] is None
    assert properties["undone_by"]["nullable"] is True
    assert properties["fields"]["type"] == "object"

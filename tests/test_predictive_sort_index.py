"""The lists sorted by the predictive score read their page in the order of the score
rows' index (``leadscore_predictive_idx``): the leads list, both ways, and the lead API.

On a few test rows the planner would rather read the table whole; with sorting and
plain scans priced out, what is left shows whether the page's query can be served by
the index in its order at all (a query that sorts by a subquery cannot)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from scoring.models import LeadScore, ScoringModel
from tests.factories import LeadFactory, active_model

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the plan is PostgreSQL's"),
]

INDEX = "leadscore_predictive_idx"


@pytest.fixture
def scored(admin_user):
    model = ScoringModel.objects.filter(is_default=True).first() or active_model()
    for n in range(30):
        lead = LeadFactory(owner=None)
        LeadScore.objects.create(
            lead=lead, model=model, is_primary=True, predictive_score=n * 3 if n % 4 else None
        )


def page_query(statements: list[str]) -> str:
    [sql] = [
        sql
        for sql in statements
        if "ORDER BY" in sql and 'primary_score."predictive_score" IS NOT NULL' in sql
    ]
    return sql


def plan_of(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def captured(get) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = get()
    assert response.status_code == 200
    return [query["sql"] for query in queries.captured_queries]


@pytest.mark.parametrize("sort", ["-predictive", "predictive"])
def test_the_lists_predictive_sort_reads_its_page_from_the_index(admin_user, scored, sort):
    client = Client()
    client.force_login(admin_user)

    sql = page_query(captured(lambda: client.get(f"/leads/?sort={sort}&cols=predictive")))

    plan = plan_of(sql)
    assert INDEX in plan
    assert "Sort" not in plan


@pytest.mark.parametrize("ordering", ["-predictive_score", "predictive_score"])
def test_the_apis_predictive_ordering_reads_its_first_page_from_the_index(
    admin_user, scored, ordering
):
    client = APIClient()
    client.force_authenticate(admin_user)

    sql = page_query(captured(lambda: client.get(f"/api/v1/leads/?ordering={ordering}")))

    plan = plan_of(sql)
    assert INDEX in plan
    assert "Sort" not in plan

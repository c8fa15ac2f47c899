"""The score explanation through HTTP: the lead page and its JSON, with access control."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from leads.activities import activities_record
from leads.models import Activity, Lead
from scoring.models import ScoreEntry
from scoring.rescore_jobs import model_rescore_in_process
from tests.factories import LeadFactory, active_model, fit_rule, page_rule


@pytest.fixture
def scored_lead(db, rep, django_capture_on_commit_callbacks):
    model = active_model(decay_half_life_days=30)
    fit_rule(model, 20, "seniority", "equals", "director")
    page_rule(model, 25, "/pricing")
    page_rule(model, -10, "/careers")
    lead = LeadFactory(owner=rep, seniority="director")
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        activities_record(
            lead=lead,
            activities=[
                Activity(type="page_view", url="/pricing", occurred_at=now - dt.timedelta(days=30)),
                Activity(type="page_view", url="/careers", occurred_at=now),
            ],
        )
    lead.refresh_from_db()
    return lead


def test_owner_reads_why_the_lead_is_hot_as_json(client, rep, scored_lead):
    # Given the lead's owner, signed in
    client.force_login(rep)

    # When they ask for the score explanation
    response = client.get(reverse("lead-score-json", args=[scored_lead.pk]))

    # Then the points are grouped by rule, positive and negative, with the decay applied
    assert response.status_code == 200
    body = response.json()
    part = body["models"][0]
    assert body["score"] == scored_lead.score == 20 + round(25 * 0.5) - 10
    assert [line["reason"] for line in part["positive"]] == [
        "+20 when seniority is Director",
        "+25 when a page view URL contains /pricing",
    ]
    assert part["negative"][0]["points"] == -10
    assert part["decay_applied"] == pytest.approx(12.5, abs=0.1)
    assert part["history"][-1]["score"] == scored_lead.score
    # 30 days ago only the pricing visit counted; fit points count from when they were scored
    assert part["history"][0]["score"] == 25


def test_lead_page_shows_the_rules_behind_the_score(client, rep, scored_lead):
    client.force_login(rep)

    response = client.get(reverse("lead-detail", args=[scored_lead.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "+25 when a page view URL contains /pricing" in page
    assert "-10 when a page view URL contains /careers" in page


@pytest.mark.parametrize("persona", ["other_team_rep", "outsider"])
def test_people_who_cannot_see_the_lead_get_404(client, scored_lead, persona, outsider):
    from crm.models import Role, Team
    from tests.conftest import make_user

    user = outsider
    if persona == "other_team_rep":
        user = make_user("far", Role.REP, team=Team.objects.create(name="South"))
    client.force_login(user)
    entries = ScoreEntry.objects.count()

    for name in ("lead-score-json", "lead-detail"):
        response = client.get(reverse(name, args=[scored_lead.pk]))
        assert response.status_code == 404
    assert ScoreEntry.objects.count() == entries
    assert Lead.objects.get(pk=scored_lead.pk).score == scored_lead.score


def _scans(plan: dict) -> list[dict]:
    """Every node of an EXPLAIN plan that reads a table or an index."""
    nodes = [plan] if "Scan" in plan["Node Type"] else []
    for child in plan.get("Plans", []):
        nodes += _scans(child)
    return nodes


@pytest.mark.postgres
def test_the_lead_pages_read_of_a_long_ledger_is_the_ledger_index_alone(client, rep, scored_lead):
    """The explanation and the score history read every entry of the lead: a hot lead
    holds thousands, spread over the whole ledger. The columns they read are all in the
    (lead, model, at) index, so PostgreSQL answers from its pages alone (an index-only
    scan), not from a heap page an entry; only each line's reason is fetched by id."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # A rule change leaves a reversal and a new award in the ledger
    rule = scored_lead.score_entries.filter(reason__icontains="pricing").first().rule
    rule.points = 30
    rule.save()
    model_rescore_in_process(model=rule.model, reason="points")
    assert ScoreEntry.objects.filter(lead=scored_lead, reversal_of__isnull=False).exists()
    client.force_login(rep)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("lead-score-json", args=[scored_lead.pk]))
    assert response.status_code == 200
    lines = response.json()["models"][0]["positive"]
    assert [line["points"] for line in lines if line["rule_id"] == rule.pk] == [30]

    ledger = [
        q["sql"]
        for q in queries.captured_queries
        if 'FROM "scoring_scoreentry"' in q["sql"] and '"reversal_of_id"' in q["sql"]
    ]
    assert len(ledger) == 1, "the explanation and the history share one read of the ledger"
    with connection.cursor() as cursor:
        # Whatever the planner would choose on a table this small: can the index answer?
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("EXPLAIN (FORMAT JSON) " + ledger[0])
        (plan,) = cursor.fetchone()[0]
    scans = _scans(plan["Plan"])
    assert [(s["Node Type"], s["Index Name"]) for s in scans] == [
        ("Index Only Scan", "entry_lead_ledger_idx")
    ]

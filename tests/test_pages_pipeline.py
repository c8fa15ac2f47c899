"""The pipeline at /pipeline/: columns by stage, counts and deal totals, moving cards."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from leads.deals import deal_save
from leads.models import Deal, Lead, StageChange
from tests.factories import LeadFactory
from workspace.views import pipeline as pipeline_view

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def column(body: str, stage: str) -> str:
    """The HTML of one column of the board."""
    start = body.index(f'data-stage="{stage}" data-label=')
    end = body.find("</section>", start)
    return body[start:end]


def cards_in(body: str, stage: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'id="card-(\d+)"', column(body, stage))]


def test_columns_show_counts_open_deal_totals_and_hottest_cards(rep):
    # Given leads in three stages, with open and closed deals
    cold_sql = LeadFactory(owner=rep, stage="sql", score=10)
    hot_sql = LeadFactory(owner=rep, stage="sql", score=90)
    LeadFactory(owner=rep, stage="mql", score=5)
    lost = LeadFactory(owner=rep, stage="disqualified", disqualification_reason="No budget")
    deal_save(deal=Deal(lead=hot_sql, name="Big", amount=Decimal("1200")))
    deal_save(deal=Deal(lead=cold_sql, name="Small", amount=Decimal("300")))
    deal_save(
        deal=Deal(
            lead=cold_sql, name="Won", amount=Decimal("999"), status="won", closed_at=timezone.now()
        )
    )

    # When the rep opens the pipeline
    response = client_for(rep).get("/pipeline/")

    # Then each column counts its leads and sums its open deals, hottest card first
    body = response.content.decode()
    assert response.status_code == 200
    assert cards_in(body, "sql") == [hot_sql.pk, cold_sql.pk]
    assert 'class="count">2</span>' in column(body, "sql")
    assert "Open deals: 1,500" in column(body, "sql")
    assert "Open deals: 0" in column(body, "mql")
    assert cards_in(body, "disqualified") == [lost.pk]
    assert body.index('data-stage="customer"') < body.index('data-stage="disqualified"')


def test_a_column_shows_its_top_cards_and_links_to_the_rest(rep, monkeypatch):
    monkeypatch.setattr(pipeline_view, "CARDS_PER_COLUMN", 2)
    leads = [LeadFactory(owner=rep, stage="mql", score=n) for n in range(4)]

    body = client_for(rep).get("/pipeline/?band=cold").content.decode()

    assert cards_in(body, "mql") == [leads[3].pk, leads[2].pk]
    assert 'href="/leads/?stage=mql&amp;band=cold"' in body
    assert "All 4 in MQL" in body


@pytest.mark.parametrize(
    ("persona", "sees_rep_lead", "sees_other_lead"),
    [
        ("rep", True, False),
        ("other_rep", False, True),
        ("manager", True, True),
        ("marketer", True, True),
        ("admin_user", True, True),
        ("outsider", False, False),
    ],
)
def test_each_role_sees_its_own_board(
    request, rep, other_rep, persona, sees_rep_lead, sees_other_lead
):
    mine = LeadFactory(owner=rep, stage="mql")
    theirs = LeadFactory(owner=other_rep, stage="mql")

    body = client_for(request.getfixturevalue(persona)).get("/pipeline/").content.decode()

    assert (f'id="card-{mine.pk}"' in body) is sees_rep_lead
    assert (f'id="card-{theirs.pk}"' in body) is sees_other_lead


def test_marketer_reads_the_board_without_move_forms(marketer, rep):
    LeadFactory(owner=rep, stage="mql")

    body = client_for(marketer).get("/pipeline/").content.decode()

    assert 'class="move-form"' not in body
    assert 'draggable="true"' not in body


def test_anonymous_visitor_is_sent_to_log_in():
    assert Client().get("/pipeline/")["Location"].startswith("/accounts/login/")
    assert Client().post("/pipeline/move/", {"lead": 1, "stage": "sql"}).status_code == 302


def test_moving_a_card_changes_the_stage_through_the_lifecycle(rep):
    lead = LeadFactory(owner=rep, stage="mql")

    response = client_for(rep).post("/pipeline/move/", {"lead": lead.pk, "stage": "sql"})

    assert response.status_code == 302
    assert response["Location"] == "/pipeline/"
    assert Lead.objects.get(pk=lead.pk).stage == "sql"
    change = StageChange.objects.get(lead=lead)
    assert (change.from_stage, change.to_stage, change.by) == ("mql", "sql", rep)


def test_a_refused_move_says_why_and_leaves_the_card(rep):
    lead = LeadFactory(owner=rep, stage="customer", first_name="Cee", last_name="Ustomer")

    response = client_for(rep).post("/pipeline/move/", {"lead": lead.pk, "stage": "mql"})

    body = response.content.decode()
    assert response.status_code == 400
    assert "Cee Ustomer stays in Customer: A lead cannot move from Customer to MQL." in body
    assert cards_in(body, "customer") == [lead.pk]
    assert Lead.objects.get(pk=lead.pk).stage == "customer"
    assert not StageChange.objects.filter(lead=lead).exists()


def test_disqualifying_from_the_board_needs_a_reason(rep):
    lead = LeadFactory(owner=rep, stage="mql")
    client = client_for(rep)

    refused = client.post("/pipeline/move/", {"lead": lead.pk, "stage": "disqualified"})
    moved = client.post(
        "/pipeline/move/", {"lead": lead.pk, "stage": "disqualified", "reason": "Student"}
    )

    assert refused.status_code == 400
    assert "Say why the lead is disqualified." in refused.content.decode()
    assert moved.status_code == 302
    assert Lead.objects.get(pk=lead.pk).disqualification_reason == "Student"


def test_htmx_move_swaps_the_board_with_the_outcome(rep):
    lead = LeadFactory(owner=rep, stage="mql")

    response = client_for(rep).post(
        "/pipeline/move/?owner=me", {"lead": lead.pk, "stage": "sql"}, HTTP_HX_REQUEST="true"
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert "moved to SQL." in body
    assert cards_in(body, "sql") == [lead.pk]


@pytest.mark.parametrize("persona", ["rep", "outsider"])
def test_a_lead_outside_the_users_view_is_a_404(request, other_rep, persona):
    lead = LeadFactory(owner=other_rep, stage="mql")

    response = client_for(request.getfixturevalue(persona)).post(
        "/pipeline/move/", {"lead": lead.pk, "stage": "sql"}
    )

    assert response.status_code == 404
    assert Lead.objects.get(pk=lead.pk).stage == "mql"


@pytest.mark.parametrize("persona", ["rep", "marketer"])
def test_who_may_not_act_on_a_visible_lead_cannot_move_it(request, persona):
    pool = LeadFactory(owner=None, stage="mql")

    response = client_for(request.getfixturevalue(persona)).post(
        "/pipeline/move/", {"lead": pool.pk, "stage": "sql"}
    )

    assert response.status_code == 400
    assert Lead.objects.get(pk=pool.pk).stage == "mql"


def test_manager_moves_a_team_members_lead(manager, other_rep):
    lead = LeadFactory(owner=other_rep, stage="sql")

    client_for(manager).post("/pipeline/move/", {"lead": lead.pk, "stage": "opportunity"})

    assert Lead.objects.get(pk=lead.pk).stage == "opportunity"


@pytest.mark.parametrize(
    "data", [{}, {"lead": "x", "stage": "sql"}, {"lead": "1", "stage": "nowhere"}]
)
def test_bad_move_input_is_a_400(rep, data):
    response = client_for(rep).post("/pipeline/move/", data)

    assert response.status_code == 400
    assert "Choose a lead and a stage" in response.content.decode()


def test_move_needs_the_csrf_token(rep):
    lead = LeadFactory(owner=rep, stage="mql")
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)

    response = client.post("/pipeline/move/", {"lead": lead.pk, "stage": "sql"})

    assert response.status_code == 403
    assert Lead.objects.get(pk=lead.pk).stage == "mql"


def test_card_names_are_escaped(rep):
    LeadFactory(owner=rep, stage="mql", first_name="<script>alert(1)</script>", last_name="")

    body = client_for(rep).get("/pipeline/").content.decode()

    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


@pytest.mark.parametrize("per_stage", [1, 6])
def test_board_runs_a_fixed_number_of_queries(
    manager, rep, django_assert_max_num_queries, per_stage
):
    for stage in ["new", "mql", "sql", "opportunity", "customer", "recycled"]:
        for _ in range(per_stage):
            lead = LeadFactory(owner=rep, stage=stage)
            deal_save(deal=Deal(lead=lead, name="Deal", amount=100))
    client = client_for(manager)

    with django_assert_max_num_queries(20):
        assert client.get("/pipeline/").status_code == 200


def _counts(body: str) -> dict[str, int]:
    found = {}
    for stage in ("new", "mql", "sql", "opportunity", "customer", "disqualified", "recycled"):
        shown = re.search(r'class="count">([\d,]+)</span>', column(body, stage))
        found[stage] = int(shown[1].replace(",", "")) if shown else 0
    return found


@pytest.mark.parametrize(
    "query",
    [
        "",
        "owner=me",
        "owner=unassigned",
        "band=hot",
        "band=hot&owner=me",
        "grade=A",
        "source=event",
        "q=Zed",
        "band=nonsense",
    ],
)
@pytest.mark.parametrize("who", ["rep", "manager", "admin_user"])
def test_column_counts_equal_the_lists_for_each_filter(request, who, query, rep, other_rep):
    """The counts are read from the rank when every filter is on it, from the leads
    otherwise: each column counts what the list's filters find for its stage, whoever
    asks and whatever the filters (an invalid one is left out of both)."""
    from django.http import QueryDict
    from django.test import RequestFactory

    from leads.permissions import teammates_of
    from workspace.filters import LeadListFilter

    person = request.getfixturevalue(who)
    for owner in {rep, other_rep, person, None}:
        for stage, band, grade, source in (
            ("new", "hot", "A", "event"),
            ("sql", "hot", "B", "website"),
            ("sql", "cold", "A", "event"),
            ("disqualified", "warm", "C", "website"),
        ):
            lead = LeadFactory(
                owner=owner,
                stage=stage,
                band=band,
                grade=grade,
                source=source,
                last_name="Zed" if band == "hot" else "Ash",
                disqualification_reason="No budget" if stage == "disqualified" else "",
            )
            deal_save(deal=Deal(lead=lead, name="Deal", amount=Decimal(100 + lead.pk)))

    body = client_for(person).get(f"/pipeline/?{query}").content.decode()
    board = _counts(body)

    asked = RequestFactory().get("/leads/")
    asked.user = person
    filters = LeadListFilter(QueryDict(query), request=asked, people=list(teammates_of(person)))
    listed = {stage: filters.qs.filter(rank__stage=stage).count() for stage in board}
    assert board == listed
    assert sum(board.values()) > 0
    for stage in board:
        total = sum(
            Deal.objects.filter(lead__in=filters.qs.filter(rank__stage=stage)).values_list(
                "amount", flat=True
            )
        )
        assert f"Open deals: {total:,.0f}" in column(body, stage)


@pytest.mark.parametrize("query", ["", "owner=me", "owner=unassigned"])
def test_someone_who_sees_no_lead_counts_none_even_their_own(outsider, query):
    LeadFactory(owner=outsider, stage="sql")
    LeadFactory(owner=None, stage="sql")

    body = client_for(outsider).get(f"/pipeline/?{query}").content.decode()

    assert set(_counts(body).values()) == {0}

"""The score trend over the last seven days: its definition, the nightly snapshots it
compares with, and where it shows (leads list, Next up, lead page, API)."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leads.models import Lead
from scoring.models import ScoreSnapshot
from scoring.snapshots import scores_snapshot, trend_day
from scoring.tasks import decay_scores
from scoring.trend import Trend, score_trend
from tests.api_client import token_client
from tests.factories import LeadFactory

# --- The definition (no database) -----------------------------------------------------


@pytest.mark.parametrize(
    ("now", "before", "expected"),
    [
        (45, 40, Trend.RISING),  # 5 points: the floor for small scores
        (44, 40, Trend.STEADY),
        (35, 40, Trend.FALLING),
        (36, 40, Trend.STEADY),
        (5, 0, Trend.RISING),  # from nothing
        (0, 0, Trend.STEADY),
        (220, 200, Trend.RISING),  # 10 % of 200 is 20
        (219, 200, Trend.STEADY),
        (180, 200, Trend.FALLING),
        (181, 200, Trend.STEADY),
        (-15, -20, Trend.RISING),  # negative scores move by the same margin
        (-25, -20, Trend.FALLING),
        (70, None, Trend.NEW),  # no score seven days ago
        (0, None, Trend.NEW),
    ],
)
def test_the_trend_compares_the_score_now_with_seven_days_ago(now, before, expected):
    assert score_trend(now, before) == expected


# --- The nightly snapshots ------------------------------------------------------------

NIGHT = dt.datetime(2030, 3, 10, 2, 0, tzinfo=dt.UTC)


def set_score(lead: Lead, score: int) -> None:
    # As the scoring engine writes it: the lead row, its rank following.
    Lead.objects.filter(pk=lead.pk).update(score=score)


def snapshots(lead: Lead) -> list[tuple[dt.date, int]]:
    return list(ScoreSnapshot.objects.filter(lead=lead).order_by("day").values_list("day", "score"))


@pytest.mark.django_db
def test_a_snapshot_is_written_for_every_lead_then_only_where_the_score_changed():
    moving, still = LeadFactory(score=10), LeadFactory(score=30)

    assert scores_snapshot(now=NIGHT) == 2
    set_score(moving, 25)
    assert scores_snapshot(now=NIGHT + dt.timedelta(days=1)) == 1
    assert scores_snapshot(now=NIGHT + dt.timedelta(days=2)) == 0

    day = NIGHT.date()
    assert snapshots(moving) == [(day, 10), (day + dt.timedelta(days=1), 25)]
    assert snapshots(still) == [(day, 30)]


@pytest.mark.django_db
def test_a_second_snapshot_on_the_same_day_corrects_that_days_row():
    lead = LeadFactory(score=10)
    scores_snapshot(now=NIGHT)
    set_score(lead, 12)

    scores_snapshot(now=NIGHT + dt.timedelta(hours=3))

    assert snapshots(lead) == [(NIGHT.date(), 12)]


@pytest.mark.django_db
def test_rows_no_trend_reads_are_pruned_and_the_one_it_reads_is_kept():
    lead = LeadFactory(score=0)
    for n in range(12):
        set_score(lead, n * 10)
        scores_snapshot(now=NIGHT + dt.timedelta(days=n))
    last_night = NIGHT + dt.timedelta(days=11)

    kept = snapshots(lead)

    # The day the trend reads (eleven nights on, seven days back: the fourth night) and
    # every row after it.
    assert kept[0] == (trend_day(last_night), 40)
    assert [score for _, score in kept] == [40, 50, 60, 70, 80, 90, 100, 110]


@pytest.mark.django_db
def test_the_nightly_decay_job_takes_the_snapshot_and_the_command_does_too():
    lead = LeadFactory(score=33)

    decay_scores()

    assert [score for _, score in snapshots(lead)] == [33]
    set_score(lead, 44)
    out = io.StringIO()
    call_command("scores_snapshot", stdout=out)
    assert "1 score snapshot(s) written." in out.getvalue()
    assert [score for _, score in snapshots(lead)] == [44]  # the same day's row, corrected


# --- Where it shows -------------------------------------------------------------------


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def trends(rep):
    """Leads of the rep scoring, at the snapshot eight days ago and today: 30 then 58,
    41 then 40, 70 then 50, and one created since (no snapshot), 20."""
    then_now = {"Rosa": (30, 58), "Stan": (41, 40), "Fay": (70, 50)}
    leads = {
        name: LeadFactory(owner=rep, score=then, first_name=name)
        for name, (then, _) in then_now.items()
    }
    scores_snapshot(now=timezone.now() - dt.timedelta(days=8))
    for name, (_, now) in then_now.items():
        set_score(leads[name], now)
    leads["Nina"] = LeadFactory(owner=rep, score=20, first_name="Nina")
    for lead in leads.values():
        lead.refresh_from_db()
    return {
        "rising": leads["Rosa"],
        "steady": leads["Stan"],
        "falling": leads["Fay"],
        "new": leads["Nina"],
    }


TREND_CELL = re.compile(
    r'<span class="trend trend-(\w+)" title="([^"]+)" data-trend="\w+">'
    r'<span aria-hidden="true">(.)</span><span class="visually-hidden"> Score trend: ([^<]+)</span>'
)


def trends_shown(body: str) -> list[tuple[str, str, str, str]]:
    return TREND_CELL.findall(body)


@pytest.mark.django_db
def test_the_leads_list_shows_each_rows_trend_as_an_arrow_with_words(rep, trends):
    response = client_for(rep).get("/leads/?sort=name")

    assert response.status_code == 200
    # Sorted by name: Fay, Nina, Rosa, Stan.
    assert trends_shown(response.content.decode()) == [
        ("falling", "Falling: 70 7 days ago", "↓", "Falling: 70 7 days ago"),
        ("new", "New: no score 7 days ago", "\N{EN DASH}", "New: no score 7 days ago"),
        ("rising", "Rising: 30 7 days ago", "↑", "Rising: 30 7 days ago"),
        ("steady", "Steady: 41 7 days ago", "→", "Steady: 41 7 days ago"),
    ]


@pytest.mark.django_db
def test_the_lead_page_explains_the_trend_in_words(rep, trends):
    from tests.factories import active_model

    model = active_model()
    lead = trends["rising"]
    lead.scores.create(model=model, score=58, is_primary=True)

    body = client_for(rep).get(f"/leads/{lead.pk}/").content.decode()

    assert "Trend over 7 days" in body
    assert "Rising: 30 7 days ago, 58 now." in body
    assert trends_shown(body)[0][0] == "rising"


@pytest.mark.django_db
def test_next_up_shows_the_trend_of_the_current_lead_and_the_queue(rep, trends):
    Lead.objects.filter(pk=trends["falling"].pk).update(band="hot")
    Lead.objects.filter(pk=trends["rising"].pk).update(band="hot")

    body = client_for(rep).get("/next/").content.decode()

    shown = {trend for trend, *_ in trends_shown(body)}
    assert shown == {"rising", "falling"}
    assert "Score trend: Rising: 30 7 days ago" in body


@pytest.mark.django_db
def test_the_api_gives_each_lead_its_score_trend_read_only(rep, trends):
    api = token_client(rep)

    listed = api.get("/api/v1/leads/?ordering=-score").json()["results"]
    lead = trends["rising"]
    one = api.get(f"/api/v1/leads/{lead.pk}/").json()
    changed = api.patch(
        f"/api/v1/leads/{lead.pk}/", {"city": "Bonn", "score_trend": "falling"}, format="json"
    )

    assert {row["first_name"]: row["score_trend"] for row in listed} == {
        "Rosa": "rising",
        "Stan": "steady",
        "Fay": "falling",
        "Nina": "new",
    }
    assert one["score_trend"] == "rising"
    # Read-only: ignored on a write, and the answer still says what the history gives.
    assert changed.status_code == 200, changed.content
    assert changed.json()["score_trend"] == "rising"
    assert changed.json()["city"] == "Bonn"


@pytest.mark.django_db
def test_the_api_explanation_and_schema_carry_the_trend(rep, trends):
    api = token_client(rep)
    lead = trends["falling"]

    explained = api.get(f"/api/v1/leads/{lead.pk}/score/").json()
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    assert (explained["trend"], explained["score_before"]) == ("falling", 70)
    field = schema["components"]["schemas"]["Lead"]["properties"]["score_trend"]
    assert field["readOnly"] is True
    assert "rising" in str(schema["components"]["schemas"])


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_list_reads_every_rows_trend_in_its_one_page_query(rep):
    client = client_for(rep)

    def page_queries(rows: int) -> list[str]:
        leads = [LeadFactory(owner=rep, score=n) for n in range(rows)]
        scores_snapshot(now=timezone.now() - dt.timedelta(days=8))
        Lead.objects.filter(pk__in=[lead.pk for lead in leads]).update(score=100)
        client.get("/leads/")
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/leads/")
        shown = len(trends_shown(response.content.decode()))
        assert shown == min(Lead.objects.count(), 25)  # a page
        return [query["sql"] for query in queries]

    few = page_queries(2)
    many = page_queries(38)  # 40 rows in all

    assert len(many) == len(few)
    reads = [sql for sql in many if "scoring_scoresnapshot" in sql]
    assert len(reads) == 1  # the page's own query, a subquery per row

"""The lead's rank: the narrow row the lists sort and filter by, kept by the database.

Whatever writes a lead (the ORM, a queryset update, real-time scoring, a set-based
rescore, the nightly decay, an owner's deletion) leaves its rank equal to its own
owner, stage and score columns; the lists read through it in the order the scores give.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from crm.models import User
from leads.models import INBOUND_TYPES, Activity, ActivityType, Lead, LeadRank, Stage
from leads.stages import lead_move_to_stage
from scoring.decay import scores_decay
from scoring.lead_scoring import leads_score
from tests.factories import ActivityFactory, LeadFactory, active_model, fit_rule, page_rule

RANK_COLUMNS = ("owner_id", "stage", "score", "band", "grade", "quadrant")


def ranks() -> dict[int, tuple]:
    return {row[0]: row[1:] for row in LeadRank.objects.values_list("lead_id", *RANK_COLUMNS)}


def leads() -> dict[int, tuple]:
    return {row[0]: row[1:] for row in Lead.objects.values_list("id", *RANK_COLUMNS)}


def assert_ranks_follow_leads() -> None:
    assert ranks() == leads()


def test_every_way_of_writing_a_lead_keeps_its_rank(db, rep, other_rep):
    one = LeadFactory()
    Lead.objects.bulk_create([Lead(email=f"bulk{n}@example.com") for n in range(3)])
    assert len(ranks()) == 4
    assert_ranks_follow_leads()

    one.owner = rep
    one.save()
    Lead.objects.filter(email__startswith="bulk").update(owner=other_rep, score=42, band="warm")
    lead_move_to_stage(lead_id=one.pk, stage=Stage.MQL)
    assert_ranks_follow_leads()
    assert LeadRank.objects.get(lead=one).stage == Stage.MQL
    assert set(LeadRank.objects.filter(score=42).values_list("owner_id", flat=True)) == {
        other_rep.pk
    }

    User.objects.filter(pk=other_rep.pk).delete()  # the leads' SET_NULL clears the copy
    assert_ranks_follow_leads()
    assert LeadRank.objects.filter(owner__isnull=True).count() == 3

    Lead.objects.filter(email__startswith="bulk").delete()
    one.delete()
    assert not LeadRank.objects.exists()


def test_real_time_scoring_and_the_decay_move_the_rank_with_the_score(db):
    model = active_model(decay_half_life_days=7, hot_from=40, warm_from=10)
    page_rule(model, 30, "/pricing")
    fit_rule(model, 20, "job_title", "contains", "Head")
    lead = LeadFactory()
    now = timezone.now()
    ActivityFactory(lead=lead, occurred_at=now)

    leads_score(lead_ids=[lead.pk], now=now)
    rank = LeadRank.objects.get(lead=lead)
    assert (rank.score, rank.band) == (50, "hot")
    assert_ranks_follow_leads()

    scores_decay(now=now + dt.timedelta(days=14))  # 30 points halved twice: 7.5
    rank.refresh_from_db()
    assert (rank.score, rank.band) == (28, "warm")
    assert_ranks_follow_leads()


@pytest.mark.postgres
def test_a_set_based_rescore_moves_the_rank_with_the_score(db, settings):
    from scoring.rescore_jobs import rescore_job_run, rescore_job_start

    model = active_model()
    page_rule(model, 15, "/pricing")
    hot = LeadFactory.create_batch(3)
    cold = LeadFactory.create_batch(2)
    for lead in hot:
        ActivityFactory(lead=lead)
    Activity.objects.update(scored_at=timezone.now())

    job = rescore_job_start(model=model, reason="test")
    rescore_job_run(job_id=job.pk, in_process=True)

    assert {pk: rank[2] for pk, rank in ranks().items()} == {
        **{lead.pk: 15 for lead in hot},
        **{lead.pk: 0 for lead in cold},
    }
    assert_ranks_follow_leads()


@pytest.mark.postgres
def test_no_index_holds_a_score_so_a_score_write_stays_heap_only(db):
    # What scoring writes on each table: in no index there (key, INCLUDE or predicate
    # columns alike), and free space left on each page.
    written_by_scoring = {
        "leads_lead": {"score", "band", "grade", "quadrant", "fit_score", "engagement_score"},
        "scoring_leadscore": {
            "score",
            "band",
            "grade",
            "quadrant",
            "fit",
            "adjustment",
            "engagement",
            "engagement_at",
            "last_engaged_at",
            "decay_version",
            "updated_at",
        },
    }
    for table, columns in written_by_scoring.items():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s::regclass",
                [table],
            )
            indexes = cursor.fetchall()
            cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [table])
            [options] = cursor.fetchone()
        assert indexes
        holding = [
            (name, column)
            for name, definition in indexes
            for column in columns
            if re.search(rf"\b{column}\b", definition)
        ]
        assert holding == [], table
        assert any(option.startswith("fillfactor=") for option in options or []), table

    model = active_model()
    page_rule(model, 10, "/pricing")  # 10 points a visit: no surge (which is indexed)
    scored = LeadFactory.create_batch(10)
    for lead in scored:
        ActivityFactory(lead=lead)
    leads_score(lead_ids=[lead.pk for lead in scored])  # creates the score rows
    for lead in scored:
        ActivityFactory(lead=lead)
    tables = ("leads_lead", "scoring_leadscore")
    before = _updates(tables)
    leads_score(lead_ids=[lead.pk for lead in scored])
    after = _updates(tables)

    assert LeadRank.objects.filter(score=20).count() == 10
    # The score rows, a few dozen to a page, all find room beside themselves. Whether a
    # wide lead row does depends on its page's free space, which the table's fillfactor
    # leaves and pruning between transactions gives back (not within this one).
    for table in tables:
        written = after[table][0] - before[table][0]
        heap_only = after[table][1] - before[table][1]
        assert written >= 10, table
        assert heap_only == written if table == "scoring_leadscore" else heap_only > 0, table


def _updates(tables: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Rows each table updated in this transaction so far, and how many of them in place."""
    counts = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(
                "SELECT pg_stat_get_xact_tuples_updated(%s::regclass), "
                "pg_stat_get_xact_tuples_hot_updated(%s::regclass)",
                [table, table],
            )
            counts[table] = cursor.fetchone()
    return counts


def test_the_list_and_the_api_sort_and_filter_through_the_rank(db, rep, admin_user):
    scores = [5, 90, 40, 40, 70]
    made = [
        LeadFactory(
            score=score, band="hot" if score >= 70 else "cold", owner=rep if n % 2 else None
        )
        for n, score in enumerate(scores)
    ]
    assert_ranks_follow_leads()
    hottest_first = [lead.pk for lead in sorted(made, key=lambda lead: (-lead.score, -lead.pk))]

    client = Client()
    client.force_login(admin_user)
    page = client.get("/leads/").content.decode()
    positions = [page.index(f"/leads/{pk}/") for pk in hottest_first]
    assert positions == sorted(positions)
    coldest = client.get("/leads/?sort=score").content.decode()
    positions = [coldest.index(f"/leads/{pk}/") for pk in reversed(hottest_first)]
    assert positions == sorted(positions)

    client.force_login(rep)
    mine_hot = client.get("/leads/?owner=me&band=hot").content.decode()
    assert [pk for pk in hottest_first if f"/leads/{pk}/" in mine_hot] == [
        lead.pk for lead in made if lead.owner == rep and lead.band == "hot"
    ]

    api = Client()
    api.force_login(admin_user)
    listed = api.get("/api/v1/leads/?page_size=2").json()
    ids = [row["id"] for row in listed["results"]]
    following = api.get(listed["next"]).json()
    ids += [row["id"] for row in following["results"]]
    ids += [row["id"] for row in api.get(following["next"]).json()["results"]]
    assert ids == hottest_first
    ascending = api.get("/api/v1/leads/?ordering=score").json()["results"]
    assert [row["id"] for row in ascending] == list(reversed(hottest_first))
    between = api.get("/api/v1/leads/?score_min=40&score_max=70").json()["results"]
    assert [row["id"] for row in between] == [
        pk for pk in hottest_first if 40 <= Lead.objects.get(pk=pk).score <= 70
    ]


def latest_inbound() -> dict[int, dt.datetime | None]:
    """Each lead's latest inbound activity, from the activities (an email reply a person
    logged is theirs)."""
    latest: dict[int, dt.datetime | None] = dict.fromkeys(Lead.objects.values_list("id", flat=True))
    for activity in Activity.objects.filter(type__in=INBOUND_TYPES):
        if activity.type == ActivityType.EMAIL_REPLY and activity.created_by_id is not None:
            continue
        known = latest[activity.lead_id]
        latest[activity.lead_id] = (
            max(known, activity.occurred_at) if known else activity.occurred_at
        )
    return latest


def kept_inbound() -> dict[int, dt.datetime | None]:
    return dict(LeadRank.objects.values_list("lead_id", "inbound_at"))


def test_every_way_of_writing_activities_keeps_the_leads_latest_inbound_time(db, rep):
    one, two = LeadFactory(), LeadFactory()
    now = timezone.now()

    def ago(hours: int) -> dt.datetime:
        return now - dt.timedelta(hours=hours)

    ActivityFactory(lead=one, type=ActivityType.PAGE_VIEW, occurred_at=ago(1))
    assert kept_inbound()[one.pk] is None
    demo = ActivityFactory(lead=one, type=ActivityType.DEMO_REQUEST, occurred_at=ago(5))
    assert kept_inbound() == latest_inbound() == {one.pk: ago(5), two.pk: None}
    # A reply a rep logged is their touch; one the lead sent is inbound.
    ActivityFactory(lead=one, type=ActivityType.EMAIL_REPLY, occurred_at=ago(2), created_by=rep)
    assert kept_inbound()[one.pk] == ago(5)
    Activity.objects.bulk_create(
        [
            Activity(lead=one, type=ActivityType.FORM_SUBMISSION, occurred_at=ago(3)),
            Activity(lead=one, type=ActivityType.TRIAL_SIGNUP, occurred_at=ago(30)),
            Activity(lead=two, type=ActivityType.EMAIL_REPLY, occurred_at=ago(4)),
        ]
    )
    assert kept_inbound() == latest_inbound() == {one.pk: ago(3), two.pk: ago(4)}

    # Moved to another lead (as a merge moves them), retyped, re-dated, deleted
    Activity.objects.filter(lead=one, type=ActivityType.FORM_SUBMISSION).update(lead=two)
    assert kept_inbound() == latest_inbound() == {one.pk: ago(5), two.pk: ago(3)}
    Activity.objects.filter(pk=demo.pk).update(type=ActivityType.PAGE_VIEW)
    assert kept_inbound() == latest_inbound() == {one.pk: ago(30), two.pk: ago(3)}
    Activity.objects.filter(lead=one, type=ActivityType.TRIAL_SIGNUP).update(occurred_at=ago(1))
    assert kept_inbound()[one.pk] == ago(1)
    Activity.objects.filter(lead=two, type=ActivityType.FORM_SUBMISSION).delete()
    Activity.objects.filter(lead=one, type=ActivityType.TRIAL_SIGNUP).delete()
    assert kept_inbound() == latest_inbound() == {one.pk: None, two.pk: ago(4)}

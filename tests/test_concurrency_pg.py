"""Races that only a real PostgreSQL server can show."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from leads.activities import activities_record
from leads.models import (
    Activity,
    ActivityType,
    Lead,
    LeadRank,
    Stage,
    StageChange,
    StageTransitionError,
)
from leads.stages import lead_move_to_stage
from tests.factories import LeadFactory


def race(*jobs) -> list[object]:
    """Run each job in its own thread and connection, released together; their outcomes."""
    barrier = threading.Barrier(len(jobs))
    outcomes: list[object] = [None] * len(jobs)

    def run(index: int, job) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[index] = job()
        except Exception as exc:
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_email_in_two_cases_at_once_makes_one_lead():
    # Given two requests creating the same person, spelled differently
    def create(email: str):
        def job() -> Lead:
            with transaction.atomic():
                return Lead.objects.create(email=email)

        return job

    # When both insert at the same moment
    outcomes = race(create("Ada@Example.com"), create("ada@EXAMPLE.COM"))

    # Then one lead exists and the other insert hit the unique constraint
    assert sorted(type(o).__name__ for o in outcomes) == ["IntegrityError", "Lead"]
    assert any(isinstance(o, IntegrityError) for o in outcomes)
    assert list(Lead.objects.values_list("email", flat=True)) == ["ada@example.com"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_moves_from_the_same_stage_record_one_change():
    # Given an MQL lead that two people act on at once
    lead = LeadFactory(stage=Stage.MQL)

    def move(stage: Stage, reason: str):
        return lambda: lead_move_to_stage(lead_id=lead.pk, stage=stage, reason=reason)

    # When one promotes it to SQL while the other disqualifies it
    outcomes = race(move(Stage.SQL, "Call booked"), move(Stage.DISQUALIFIED, "Competitor"))

    # Then each move saw the other's result under the row lock: the history is a chain
    history = list(StageChange.objects.filter(lead=lead).order_by("at", "id"))
    lead.refresh_from_db()
    assert history[0].from_stage == Stage.MQL
    assert all(a.to_stage == b.from_stage for a, b in itertools.pairwise(history))
    assert history[-1].to_stage == lead.stage
    assert len(history) == sum(isinstance(o, StageChange) for o in outcomes)
    assert all(isinstance(o, StageChange | StageTransitionError) for o in outcomes)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_recording_an_activity_waits_for_a_scoring_of_its_lead_before_writing_the_rank():
    # Given a lead whose scoring holds its row, as lead_score does before it writes the
    # lead's score and, through its trigger, the lead's rank
    lead = LeadFactory()
    recorded: list[object] = []

    def record() -> None:
        try:
            activity = Activity(type=ActivityType.FORM_SUBMISSION, occurred_at=timezone.now())
            recorded.append(activities_record(lead=lead, activities=[activity]))
        except Exception as exc:
            recorded.append(exc)
        finally:
            connection.close()

    with transaction.atomic():
        list(Lead.objects.select_for_update(of=("self",)).filter(pk=lead.pk))
        # When an inbound activity of the lead is recorded meanwhile
        recorder = threading.Thread(target=record)
        recorder.start()
        deadline = time.monotonic() + 10
        while not waiting_on_a_lock() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert waiting_on_a_lock()
        # Then the recording waits for the lead before it writes the rank (the other way
        # round, the scoring's write of the rank waited for it: a deadlock)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM leads_leadrank WHERE lead_id = %s FOR UPDATE NOWAIT", [lead.pk]
            )
    recorder.join(timeout=10)
    ((activity,),) = recorded
    assert LeadRank.objects.get(lead=lead).inbound_at == activity.occurred_at


def waiting_on_a_lock() -> bool:
    """Whether another connection waits for a lock (read afresh: within a transaction,
    the activity statistics are a snapshot taken at their first read)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] > 0

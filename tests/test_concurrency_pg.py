"""Races that only a real PostgreSQL server can show."""

from __future__ import annotations

import itertools
import threading

import pytest
from django.db import IntegrityError, connection, transaction

from leads.models import Lead, Stage, StageChange, StageTransitionError
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

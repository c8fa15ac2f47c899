"""Merges racing other writers, on a real PostgreSQL server."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import IntegrityError, connection, transaction

from leads.activities import activities_record
from leads.merge_participants import (
    MergeParticipant,
    merge_participant_register,
    merge_participant_unregister,
)
from leads.merging import MergeError, lead_alias_target, leads_merge
from leads.models import Activity, ActivityType, Lead, LeadMerge
from scoring.verification import scores_verify
from tests.factories import ActivityFactory, LeadFactory
from tests.test_concurrency_pg import race


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_merges_claiming_one_lead_merge_it_once():
    # Given a lead with history that two people merge into different survivors at once
    first, contested, second = LeadFactory(), LeadFactory(), LeadFactory()
    ActivityFactory.create_batch(3, lead=contested)

    outcomes = race(
        lambda: leads_merge(survivor_id=first.pk, others=[contested.pk]),
        lambda: leads_merge(survivor_id=second.pk, others=[contested.pk]),
    )

    # Then one merge won and the other found the lead gone, having changed nothing
    winners = [o for o in outcomes if isinstance(o, LeadMerge)]
    assert len(winners) == 1, outcomes
    assert sum(isinstance(o, MergeError) for o in outcomes) == 1
    survivor = winners[0].survivor_id
    assert lead_alias_target(contested.pk) == survivor
    assert Activity.objects.filter(lead_id=survivor).count() == 3
    assert LeadMerge.objects.count() == 1
    assert list(scores_verify()) == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_activity_stored_while_its_lead_is_merged_is_never_lost():
    # Given a lead being merged while its tracking sends an event
    survivor, merged = LeadFactory(), LeadFactory()

    def record() -> Activity:
        with transaction.atomic():
            lead = Lead.objects.get(pk=merged.pk)
            return activities_record(
                lead=lead, activities=[Activity(type=ActivityType.PAGE_VIEW, url="https://x/")]
            )[0]

    outcomes = race(lambda: leads_merge(survivor_id=survivor.pk, others=[merged.pk]), record)

    # Then the merge happened, and the event is on the survivor, or was refused whole
    # (its lead was gone when it was checked) for its sender to retry: never deleted with
    # the merged lead
    assert isinstance(outcomes[0], LeadMerge), outcomes
    stored = outcomes[1]
    if isinstance(stored, Activity):
        assert Activity.objects.get(pk=stored.pk).lead_id == survivor.pk
    else:
        assert isinstance(stored, Exception)
        assert not Activity.objects.exists()
    assert not Lead.objects.filter(pk=merged.pk).exists()


@pytest.fixture
def paused_merge():
    """A merge that stops after moving the rows and before deleting the merged leads,
    until told to go on: a participant of its own, registered for the test."""
    moved, go = threading.Event(), threading.Event()

    def pause(**kwargs):
        moved.set()
        go.wait(timeout=10)
        time.sleep(0.5)  # a write let in now has time to commit before the deletion
        return {}

    def nothing(**kwargs):
        return None

    merge_participant_register(
        MergeParticipant(name="test-pause", move=pause, restore=nothing, settle=nothing)
    )
    yield moved, go
    merge_participant_unregister("test-pause")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_activity_written_between_the_move_and_the_deletion_waits_and_is_refused(paused_merge):
    # Given a merge that has moved the merged lead's rows and not yet deleted it
    moved, go = paused_merge
    survivor, merged = LeadFactory(), LeadFactory()
    outcome: list[object] = []

    def write_note() -> None:
        moved.wait(timeout=10)
        go.set()
        try:
            with transaction.atomic():
                activity = Activity.objects.create(lead_id=merged.pk, type="call")
            outcome.append(activity)  # committed
        except IntegrityError as exc:
            outcome.append(exc)
        finally:
            connection.close()

    writer = threading.Thread(target=write_note)
    writer.start()
    try:
        merge = leads_merge(survivor_id=survivor.pk, others=[merged.pk])
    finally:
        writer.join(timeout=30)

    # Then the write's foreign key check waited for the merge and refused it (its lead
    # is gone): it was not committed only to be deleted with the merged lead
    assert merge.merged_ids == [merged.pk]
    assert len(outcome) == 1
    assert isinstance(outcome[0], IntegrityError), outcome
    assert not Activity.objects.exists()

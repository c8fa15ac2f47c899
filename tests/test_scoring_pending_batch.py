"""A burst of events is scored in batches: the first task takes the waiting leads along."""

from django.utils import timezone

from leads.models import Activity
from scoring.models import ScoreEntry
from scoring.tasks import score_lead
from scoring.verification import scores_verify
from tests.factories import LeadFactory, active_model, fit_rule, page_rule


def test_first_task_of_a_burst_scores_every_waiting_lead(db):
    # Given three leads whose new activities wait unscored (their tasks still queued)
    page_rule(active_model(), 25, "/pricing")
    leads = [LeadFactory() for _ in range(3)]
    Activity.objects.bulk_create(
        Activity(lead=lead, type="page_view", url="/pricing", occurred_at=timezone.now())
        for lead in leads
    )

    # When the first queued task runs
    score_lead(leads[0].pk, pending_only=True)

    # Then all three leads are scored and the outbox is empty
    assert not Activity.objects.unscored().exists()
    assert sorted(ScoreEntry.objects.values_list("lead_id", flat=True)) == sorted(
        lead.pk for lead in leads
    )
    assert list(scores_verify()) == []


def test_tasks_queued_behind_a_batch_find_nothing_left_and_write_nothing(db):
    page_rule(active_model(), 25, "/pricing")
    first, second = LeadFactory(), LeadFactory()
    Activity.objects.bulk_create(
        Activity(lead=lead, type="page_view", url="/pricing", occurred_at=timezone.now())
        for lead in (first, second)
    )
    score_lead(first.pk, pending_only=True)
    entries = ScoreEntry.objects.count()

    # When the second lead's own task runs after the batch
    score_lead(second.pk, pending_only=True)

    # Then it writes nothing more
    assert ScoreEntry.objects.count() == entries
    second.refresh_from_db()
    assert second.score == 25


def test_profile_changes_still_rescore_a_lead_without_pending_activities(db):
    model = active_model()
    page_rule(model, 25, "/pricing")
    lead = LeadFactory(seniority="individual")
    score_lead(lead.pk)
    fit_rule(model, 20, "seniority", "equals", "director")
    lead.seniority = "director"
    lead.save()

    # A pending-only task has nothing to do; the profile task rescores the fit
    score_lead(lead.pk, pending_only=True)
    lead.refresh_from_db()
    assert lead.score == 0
    score_lead(lead.pk)
    lead.refresh_from_db()
    assert lead.score == 20


def test_events_stored_while_a_drain_is_queued_queue_no_more_tasks(
    db, django_capture_on_commit_callbacks
):
    # Given a drain already queued (its marker is set) and a scoring model
    from django.core.cache import cache

    from leads.activities import activities_record
    from scoring.outbox import DRAIN_KEY, pending_drain

    page_rule(active_model(), 25, "/pricing")
    leads = [LeadFactory() for _ in range(3)]
    cache.add(DRAIN_KEY, leads[0].pk)

    # When three events arrive
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for lead in leads:
            activities_record(lead=lead, activities=[Activity(type="page_view", url="/pricing")])

    # Then no task ran for them (they wait for the queued drain) …
    assert len(callbacks) == 3
    assert Activity.objects.unscored().count() == 3

    # … and that one drain scores them all and clears the marker
    assert pending_drain(lead_id=leads[0].pk) == 3
    assert not Activity.objects.unscored().exists()
    assert cache.get(DRAIN_KEY) is None


def test_an_event_after_the_drain_started_queues_the_next_one(
    db, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    from leads.activities import activities_record
    from scoring.outbox import DRAIN_KEY

    page_rule(active_model(), 25, "/pricing")
    lead = LeadFactory()

    # With no drain queued, an event queues one, which runs (eagerly) and clears its marker
    with django_capture_on_commit_callbacks(execute=True):
        activities_record(lead=lead, activities=[Activity(type="page_view", url="/pricing")])

    assert not Activity.objects.unscored().exists()
    assert cache.get(DRAIN_KEY) is None
    lead.refresh_from_db()
    assert lead.score == 25

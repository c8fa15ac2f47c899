"""Segment exits through the set-based rescore (PostgreSQL)."""

import pytest

from leads.activities import activities_record
from leads.models import Activity, ProductLine
from scoring.models import LeadScore, RescoreJob
from scoring.rescore_jobs import rescore_job_run
from scoring.verification import scores_verify
from tests.factories import LeadFactory, active_model, page_rule

pytestmark = pytest.mark.postgres


def test_lead_that_leaves_the_only_segment_scoring_it_drops_to_zero(
    db, django_capture_on_commit_callbacks
):
    # Given a product-line model (no default model) that scores a lead at 25
    analytics = ProductLine.objects.create(name="Analytics", slug="analytics")
    model = active_model(name="Analytics", is_default=False)
    model.segment_product_lines.add(analytics)
    page_rule(model, 25, "/pricing")
    lead = LeadFactory()
    lead.product_interests.add(analytics)
    with django_capture_on_commit_callbacks(execute=True):
        activities_record(lead=lead, activities=[Activity(type="page_view", url="/pricing")])
    lead.refresh_from_db()
    assert lead.score == 25

    # When the lead loses interest and the model is rescored set-based
    lead.product_interests.clear()
    job = RescoreJob.objects.create(model=model, reason="test")
    rescore_job_run(job_id=job.pk)

    # Then it carries no score in that model, shows zero, and the ledger agrees
    lead.refresh_from_db()
    assert not LeadScore.objects.filter(lead=lead).exists()
    assert (lead.score, lead.band) == (0, "cold")
    assert list(scores_verify()) == []


@pytest.mark.django_db(transaction=True)
def test_a_one_rule_rescore_visits_only_the_leads_the_rule_can_touch():
    import threading

    from django.db import OperationalError, connection, transaction

    from leads.models import Lead
    from scoring.lead_scoring import leads_score
    from scoring.models import Rule, RuleKind

    # Given +15 per webinar and +5 per page view, a lead with a webinar and one without
    model = active_model()
    webinar = Rule.objects.create(
        model=model,
        name="Webinar",
        kind=RuleKind.ENGAGEMENT,
        points=15,
        activity_type="webinar_attendance",
    )
    page_rule(model, 5, "/")
    attendee, reader = LeadFactory(), LeadFactory()
    Activity.objects.create(lead=attendee, type="webinar_attendance")
    Activity.objects.create(lead=reader, type="page_view", url="/blog")
    leads_score(lead_ids=[attendee.pk, reader.pk])
    assert Lead.objects.get(pk=attendee.pk).score == 15

    # And another session holding the reader's row (a rep editing it, say)
    locked, release = threading.Event(), threading.Event()

    def hold_reader() -> None:
        try:
            with transaction.atomic():
                Lead.objects.select_for_update().get(pk=reader.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_reader)
    holder.start()
    assert locked.wait(timeout=10)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")

        # When the webinar rule's points change, its rescore neither waits for the reader
        webinar.points = 25
        webinar.save()
        job = RescoreJob.objects.create(model=model, rule=webinar, reason="points")
        rescore_job_run(job_id=job.pk)
        assert Lead.objects.get(pk=attendee.pk).score == 25

        # But a full rescore of the model has to lock every lead, the reader too
        full = RescoreJob.objects.create(model=model, reason="everything")
        with pytest.raises(OperationalError, match="lock timeout"):
            rescore_job_run(job_id=full.pk)
    finally:
        release.set()
        holder.join(timeout=10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    assert list(scores_verify()) == []

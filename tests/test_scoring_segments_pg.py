"""Segment exits through the set-based rescore (PostgreSQL)."""

import pytest

from leads.models import Activity, ProductLine
from leads.services import activities_record
from scoring.models import LeadScore, RescoreJob
from scoring.services import rescore_job_run, scores_verify
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

"""The base score and the caps in the set-based rescore and the nightly decay
(PostgreSQL): the same scores as the per-lead path, range after range."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from leads.models import Activity, Lead
from scoring.decay import scores_decay
from scoring.lead_scoring import leads_score
from scoring.models import LeadScore, RescoreJob, RescoreStatus
from scoring.rescore_jobs import rescore_job_run
from scoring.verification import scores_verify
from tests.factories import LeadFactory, active_model, fit_rule, page_rule

pytestmark = pytest.mark.postgres


def shown() -> dict[int, tuple]:
    return {
        lead.pk: (
            lead.score,
            lead.fit_score,
            round(lead.engagement_score, 6),
            lead.band,
            lead.grade,
            lead.quadrant,
        )
        for lead in Lead.objects.order_by("pk")
    }


def test_set_based_rescore_and_decay_apply_the_base_score_and_the_caps(db, settings):
    # Given a model with a base score of -10, fit capped at 25 and engagement at 40, a
    # maximum of 50, and leads from no points to far past every cap, over several ranges
    settings.SCORING_RESCORE_RANGE = 4
    model = active_model(
        base_score=-10,
        fit_cap=25,
        engagement_cap=40,
        max_points=50,
        hot_from=45,
        warm_from=20,
        grade_a_from=25,
        grade_b_from=15,
        grade_c_from=5,
        engaged_from=30,
        surge_points=0,
    )
    fit_rule(model, 20, "country", "equals", "DE")
    fit_rule(model, 15, "seniority", "equals", "director")
    page_rule(model, 15, "/pricing")
    page_rule(model, -20, "/careers")
    now = timezone.now()
    leads = []
    for i in range(14):
        lead = LeadFactory(
            country="DE" if i % 2 else "FR", seniority="director" if i % 3 else "manager"
        )
        visits = [Activity(lead=lead, type="page_view", url="/pricing") for _ in range(i % 5)]
        if i % 7 == 3:
            visits.append(Activity(lead=lead, type="page_view", url="/careers"))
        for n, visit in enumerate(visits):
            visit.occurred_at = now - timedelta(hours=n + 1)
        Activity.objects.bulk_create(visits)
        leads.append(lead)

    # When the model is rescored set-based, range by range
    job = RescoreJob.objects.create(model=model, reason="test")
    rescore_job_run(job_id=job.pk, in_process=True)
    assert RescoreJob.objects.get(pk=job.pk).status == RescoreStatus.DONE
    assert RescoreJob.objects.get(pk=job.pk).ranges > 1
    set_based = shown()

    # Then every lead is what the formula gives: -10 + min(fit, 25) + min(eng, 40), at most 50
    for i, lead in enumerate(leads):
        fit = (20 if i % 2 else 0) + (15 if i % 3 else 0)
        engagement = 15 * (i % 5) - (20 if i % 7 == 3 else 0)
        expected = min(-10 + min(fit, 25) + min(engagement, 40), 50)
        assert set_based[lead.pk][:3] == (expected, min(fit, 25), min(engagement, 40)), i
    assert {row[0] for row in set_based.values()} >= {50, -10}
    assert list(scores_verify()) == []

    # And the per-lead path and the nightly decay give the same, row for row
    LeadScore.objects.all().delete()
    leads_score(lead_ids=[lead.pk for lead in leads])
    assert shown() == set_based
    Lead.objects.update(score=0, fit_score=0, engagement_score=0, band="cold", quadrant="cold")
    scores_decay()
    assert shown() == set_based

"""Opens and clicks a scanner made (marked ``scored: false`` by nurturing) earn nothing,
through the real-time path and the set-based rescore alike."""

from __future__ import annotations

import pytest
from django.utils import timezone

from leads.activities import activities_record
from leads.models import Activity, ActivityType
from scoring.models import Rule
from scoring.rescore_jobs import rescore_job_start
from scoring.rules import ActivityFact, RuleSpec, activity_matches
from scoring.verification import scores_verify
from tests.factories import LeadFactory, active_model


def fact(type_: str, **properties) -> ActivityFact:
    return ActivityFact(id=1, type=type_, occurred_at=timezone.now(), properties=properties)


def open_rule() -> RuleSpec:
    return RuleSpec(id=1, kind="engagement", points=5, description="", activity_type="email_open")


def test_only_opens_and_clicks_marked_unscored_are_passed_over():
    rule = open_rule()
    assert activity_matches(rule, fact("email_open"))
    assert activity_matches(rule, fact("email_open", scored=True))
    assert not activity_matches(rule, fact("email_open", scored=False))
    page = RuleSpec(id=2, kind="engagement", points=5, description="", activity_type="page_view")
    assert activity_matches(page, fact("page_view", scored=False))


@pytest.mark.django_db
def test_a_scanner_open_earns_nothing_in_real_time_or_in_a_rescore(
    django_capture_on_commit_callbacks,
):
    # Given a model paying 5 points an email open, and a lead opening twice: once by a
    # person, once by a link scanner
    model = active_model()
    Rule.objects.create(
        model=model, name="open", kind="engagement", points=5, activity_type="email_open"
    )
    lead = LeadFactory()
    now = timezone.now()
    opens = [
        Activity(type=ActivityType.EMAIL_OPEN, occurred_at=now, properties={}),
        Activity(type=ActivityType.EMAIL_OPEN, occurred_at=now, properties={"scored": False}),
    ]

    # When both are recorded and scored on commit
    with django_capture_on_commit_callbacks(execute=True):
        activities_record(lead=lead, activities=opens)
    lead.refresh_from_db()

    # Then only the person's open counts, and a full rescore agrees
    assert lead.score == 5
    with django_capture_on_commit_callbacks(execute=True):
        rescore_job_start(model=model, reason="test")
    lead.refresh_from_db()
    assert lead.score == 5
    assert list(scores_verify()) == []

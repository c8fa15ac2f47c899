import pytest
from django.db import IntegrityError

from leads.models import Lead, Stage, StageChange, StageTransitionError
from leads.stages import lead_move_to_stage
from tests.factories import LeadFactory


def test_email_is_normalized_and_unique_case_insensitively(db):
    LeadFactory(email="  Ada@Example.COM ")
    assert Lead.objects.get().email == "ada@example.com"
    with pytest.raises(IntegrityError):
        Lead.objects.create(email="ada@example.com")


def test_allowed_move_records_history(db, rep):
    lead = LeadFactory()
    change = lead_move_to_stage(lead_id=lead.pk, stage=Stage.MQL, by=rep, reason="Called back")
    lead.refresh_from_db()
    assert lead.stage == Stage.MQL
    assert (change.from_stage, change.to_stage, change.by, change.reason) == (
        Stage.NEW,
        Stage.MQL,
        rep,
        "Called back",
    )


def test_refused_move_changes_nothing(db):
    lead = LeadFactory(stage=Stage.CUSTOMER)
    with pytest.raises(StageTransitionError):
        lead_move_to_stage(lead_id=lead.pk, stage=Stage.MQL)
    lead.refresh_from_db()
    assert lead.stage == Stage.CUSTOMER
    assert not StageChange.objects.exists()

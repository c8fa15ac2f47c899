"""A lead's stage moves only along the lifecycle, and every move leaves a trace."""

from __future__ import annotations

import itertools

import pytest
from django.utils import timezone

from leads.deals import deal_save
from leads.models import (
    ALLOWED_TRANSITIONS,
    Deal,
    Lead,
    Stage,
    StageChange,
    StageTransitionError,
)
from leads.signals import lead_stage_changed
from leads.stages import lead_move_to_stage, lead_move_to_stage_locked
from tests.factories import LeadFactory

MATRIX = list(itertools.product(Stage, Stage))
ALLOWED = [(a, b) for a, b in MATRIX if b in ALLOWED_TRANSITIONS[a]]
REFUSED = [(a, b) for a, b in MATRIX if b not in ALLOWED_TRANSITIONS[a]]


def _ids(pairs: list[tuple[Stage, Stage]]) -> list[str]:
    return [f"{a.value}->{b.value}" for a, b in pairs]


def lead_in(stage: Stage) -> Lead:
    reason = "No budget this year" if stage == Stage.DISQUALIFIED else ""
    return LeadFactory(stage=stage, disqualification_reason=reason)


def won_deal(lead: Lead) -> Deal:
    """What lets a lead become a customer (``leads.deals.deal_win`` moves it itself)."""
    return deal_save(deal=Deal(lead=lead, name="Won", status="won", closed_at=timezone.now()))


@pytest.fixture
def stage_signals():
    """Every ``lead_stage_changed`` sent while the test runs, as keyword dicts."""
    received: list[dict] = []

    def receiver(sender, **kwargs) -> None:
        received.append({"sender": sender, **kwargs})

    lead_stage_changed.connect(receiver, weak=False)
    yield received
    lead_stage_changed.disconnect(receiver)


def test_matrix_covers_every_stage_pair():
    assert set(ALLOWED_TRANSITIONS) == set(Stage)
    assert len(ALLOWED) + len(REFUSED) == len(Stage) ** 2
    assert all(a != b for a, b in ALLOWED), "no stage may move to itself"


@pytest.mark.parametrize(("from_stage", "to_stage"), ALLOWED, ids=_ids(ALLOWED))
def test_allowed_move_updates_lead_and_records_one_stage_change(
    db, rep, stage_signals, from_stage, to_stage
):
    # Given a lead in from_stage (with a won deal, which a customer needs)
    lead = lead_in(from_stage)
    if to_stage == Stage.CUSTOMER:
        won_deal(lead)

    # When a rep moves it along the lifecycle
    change = lead_move_to_stage(lead_id=lead.pk, stage=to_stage, by=rep, reason="Spoke on phone")

    # Then the lead is in to_stage and exactly one history row says who, when and why
    lead.refresh_from_db()
    assert lead.stage == to_stage
    history = list(StageChange.objects.filter(lead=lead))
    assert history == [change]
    assert (change.from_stage, change.to_stage, change.by, change.reason) == (
        from_stage,
        to_stage,
        rep,
        "Spoke on phone",
    )
    assert change.at == lead.stage_changed_at
    assert not change.by_system
    assert len(stage_signals) == 1


@pytest.mark.parametrize(("from_stage", "to_stage"), REFUSED, ids=_ids(REFUSED))
def test_refused_move_raises_and_writes_nothing(db, rep, stage_signals, from_stage, to_stage):
    # Given a lead in from_stage
    lead = lead_in(from_stage)
    before = Lead.objects.values().get(pk=lead.pk)

    # When a move the lifecycle does not allow is asked for, with a reason
    with pytest.raises(StageTransitionError):
        lead_move_to_stage(lead_id=lead.pk, stage=to_stage, by=rep, reason="Spoke on phone")

    # Then the row, its history and the signal are untouched
    assert Lead.objects.values().get(pk=lead.pk) == before
    assert not StageChange.objects.exists()
    assert stage_signals == []


def test_refused_move_leaves_the_in_memory_lead_unchanged(db):
    lead = lead_in(Stage.CUSTOMER)

    with pytest.raises(StageTransitionError):
        lead_move_to_stage_locked(lead=lead, stage=Stage.NEW)

    assert lead.stage == Stage.CUSTOMER


def test_system_move_is_recorded_without_a_user(db):
    lead = lead_in(Stage.NEW)

    change = lead_move_to_stage(lead_id=lead.pk, stage=Stage.MQL)

    change.refresh_from_db()
    assert change.by is None
    assert change.by_system
    assert change.reason == ""


@pytest.mark.parametrize("reason", ["", "   "])
def test_disqualifying_without_a_reason_is_refused(db, rep, stage_signals, reason):
    lead = lead_in(Stage.SQL)

    with pytest.raises(StageTransitionError, match="why"):
        lead_move_to_stage(lead_id=lead.pk, stage=Stage.DISQUALIFIED, by=rep, reason=reason)

    lead.refresh_from_db()
    assert (lead.stage, lead.disqualification_reason) == (Stage.SQL, "")
    assert not StageChange.objects.exists()
    assert stage_signals == []


def test_disqualifying_stores_the_trimmed_reason_on_lead_and_history(db, rep):
    lead = lead_in(Stage.MQL)

    change = lead_move_to_stage(
        lead_id=lead.pk, stage=Stage.DISQUALIFIED, by=rep, reason="  Student project  "
    )

    lead.refresh_from_db()
    assert lead.disqualification_reason == "Student project"
    assert change.reason == "Student project"


def test_leaving_disqualified_clears_the_reason(db, rep):
    lead = lead_in(Stage.DISQUALIFIED)

    lead_move_to_stage(lead_id=lead.pk, stage=Stage.RECYCLED, by=rep, reason="Budget approved")

    lead.refresh_from_db()
    assert lead.stage == Stage.RECYCLED
    assert lead.disqualification_reason == ""


def test_moving_to_an_unknown_stage_is_refused(db):
    lead = lead_in(Stage.NEW)

    with pytest.raises(ValueError, match="lost"):
        lead_move_to_stage(lead_id=lead.pk, stage="lost")

    lead.refresh_from_db()
    assert lead.stage == Stage.NEW
    assert not StageChange.objects.exists()


def test_moving_an_unknown_lead_raises_does_not_exist(db):
    with pytest.raises(Lead.DoesNotExist):
        lead_move_to_stage(lead_id=404, stage=Stage.MQL)


def test_stage_changed_signal_fires_once_per_move_with_lead_and_change(db, rep, stage_signals):
    # Given a new lead with a won deal
    lead = lead_in(Stage.NEW)
    won_deal(lead)

    # When it walks the whole funnel
    changes = [
        lead_move_to_stage(lead_id=lead.pk, stage=stage, by=rep)
        for stage in (Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER)
    ]

    # Then one signal per move, each carrying the lead and its history row, in order
    assert [s["change"] for s in stage_signals] == changes
    assert all(s["sender"] is Lead and s["lead"].pk == lead.pk for s in stage_signals)
    assert [c.to_stage for c in StageChange.objects.filter(lead=lead).order_by("at", "id")] == [
        Stage.MQL,
        Stage.SQL,
        Stage.OPPORTUNITY,
        Stage.CUSTOMER,
    ]

"""Merging duplicate leads keeps everything, records the merge, and undoes it exactly."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from leads.activities import activities_record
from leads.handoff_models import HandOff, LeadRating, Notification
from leads.merging import (
    MOVED_MODELS,
    MergeError,
    lead_alias_target,
    lead_merge_undo,
    lead_survivor_pick,
    leads_merge,
)
from leads.models import (
    Activity,
    ActivityType,
    Company,
    Deal,
    DuplicatePair,
    Lead,
    LeadAlias,
    LeadMerge,
    LeadRank,
    Note,
    PairStatus,
    ProductLine,
    Stage,
    StageChange,
    Task,
    TrackingIdentity,
)
from leads.stages import lead_move_to_stage
from nurturing.models import Enrollment, EnrollmentStatus, ExitReason, Message, Sequence, Step
from scoring.adjustments import leads_adjust_score
from scoring.lead_scoring import lead_score
from scoring.models import LeadScore, ScoreEntry
from scoring.verification import scores_verify
from tests.factories import LeadFactory, active_model, fit_rule, page_rule

LEAD_STATE_SKIP = {"updated_at", "engagement_at", "engagement_score"}


def snapshot(lead_ids: list[int]) -> dict[str, Any]:
    """Everything about these leads a merge and its undo touch, comparable."""
    leads = {
        lead.pk: {
            f.attname: getattr(lead, f.attname)
            for f in Lead._meta.concrete_fields
            if f.attname not in LEAD_STATE_SKIP
        }
        | {
            "engagement": round(lead.engagement_score, 2),
            "interests": sorted(lead.product_interests.values_list("pk", flat=True)),
        }
        for lead in Lead.objects.filter(pk__in=lead_ids)
    }
    rows = {
        model._meta.label: sorted(
            model._default_manager.filter(lead_id__in=lead_ids).values_list("pk", "lead_id")
        )
        for model in (*MOVED_MODELS, Enrollment, Message)
    }
    ranks = sorted(LeadRank.objects.filter(lead_id__in=lead_ids).values_list("lead_id", "score"))
    scores = sorted(
        LeadScore.objects.filter(lead_id__in=lead_ids).values_list("lead_id", "model_id", "score")
    )
    return {"leads": leads, "rows": rows, "ranks": ranks, "scores": scores}


def visit(lead: Lead, url: str, *, days_ago: float = 0) -> Activity:
    at = timezone.now() - dt.timedelta(days=days_ago)
    return activities_record(
        lead=lead, activities=[Activity(type=ActivityType.PAGE_VIEW, url=url, occurred_at=at)]
    )[0]


@pytest.fixture
def model(db):
    model = active_model()
    fit_rule(model, 20, "seniority", "equals", "director")
    fit_rule(model, 10, "country", "equals", "DE")
    page_rule(model, 5, "/pricing")
    page_rule(model, 30, "/demo", max_per_lead=1)
    return model


@pytest.fixture
def rich_pair(model, rep, manager, django_capture_on_commit_callbacks):
    """Two records of one person, each with a history of its own, both scored."""
    crm = ProductLine.objects.create(name="CRM", slug="crm")
    mail = ProductLine.objects.create(name="Mail", slug="mail")
    old = LeadFactory(
        first_name="Ada",
        last_name="Lovelace",
        email="ada@analytical.example",
        phone="",
        seniority="director",
        country="DE",
        job_title="CTO",
        owner=rep,
        custom_fields={"shoe": "38"},
    )
    old.product_interests.add(crm)
    new = LeadFactory(
        first_name="Ada",
        last_name="King",
        email="ada.king@analytical.example",
        phone="+49 30 1234567",
        seniority="manager",
        country="GB",
        job_title="Chief Technology Officer",
        owner=manager,
        custom_fields={"shoe": "39", "pet": "cat"},
    )
    new.product_interests.add(crm, mail)
    with django_capture_on_commit_callbacks(execute=True):
        visit(old, "https://x.example/pricing", days_ago=3)
        visit(old, "https://x.example/demo", days_ago=2)
        visit(new, "https://x.example/demo", days_ago=1)
        visit(new, "https://x.example/pricing")
    lead_move_to_stage(lead_id=new.pk, stage=Stage.MQL, by=manager, reason="Asked for a call")
    Deal.objects.create(lead=new, name="Pilot", amount=1000)
    Task.objects.create(lead=new, title="Call back", assignee=manager, due_at=timezone.now())
    Note.objects.create(lead=new, author=manager, body="Prefers mornings")
    Note.objects.create(lead=old, author=rep, body="Met at the fair")
    TrackingIdentity.objects.create(lead=new, kind="anonymous_id", value="device-1")
    Notification.objects.create(user=manager, kind="task", title="Call Ada", lead=new)
    LeadRating.objects.create(lead=old, by=rep, rating="good")
    LeadRating.objects.create(lead=new, by=rep, rating="not_fit", reason="Too small")
    LeadRating.objects.create(lead=new, by=manager, rating="good")
    leads_adjust_score(lead_ids=[new.pk], points=7, reason="Fair", by=manager)
    for lead in (old, new):
        lead_score(lead_id=lead.pk)
    assert list(scores_verify()) == []
    return Lead.objects.get(pk=old.pk), Lead.objects.get(pk=new.pk)


def test_merge_moves_every_row_to_the_survivor_and_keeps_the_others_ids_as_aliases(
    rich_pair, manager
):
    # Given two records of one person, each with activities, history, deals and more
    old, new = rich_pair
    moved_before = {
        model._meta.label: set(model._default_manager.filter(lead=new).values_list("pk", flat=True))
        for model in MOVED_MODELS
    }

    # When the newer is merged into the older
    merge = leads_merge(survivor_id=old.pk, others=[new.pk], fields={}, by=manager)

    # Then every row of the newer is the older's now, the newer row is gone and its id
    # names the survivor
    assert not Lead.objects.filter(pk=new.pk).exists()
    assert not LeadRank.objects.filter(lead_id=new.pk).exists()
    for label, ids in moved_before.items():
        model = next(m for m in MOVED_MODELS if m._meta.label == label)
        on_survivor = set(model._default_manager.filter(lead=old).values_list("pk", flat=True))
        if model is LeadRating:
            continue
        assert ids <= on_survivor, label
    assert Note.objects.filter(lead=old).count() == 2
    assert StageChange.objects.filter(lead=old, to_stage=Stage.MQL).exists()
    assert TrackingIdentity.objects.get(value="device-1").lead_id == old.pk
    assert lead_alias_target(new.pk) == old.pk
    assert LeadAlias.objects.get(alias_id=new.pk).merge == merge
    # One rating per person: the survivor's own is kept, the manager's moved
    assert sorted(LeadRating.objects.filter(lead=old).values_list("by__username", "rating")) == [
        ("manager", "good"),
        ("rep1", "good"),
    ]
    # The survivor took the interests it lacked and the custom fields it lacked
    old.refresh_from_db()
    assert sorted(old.product_interests.values_list("slug", flat=True)) == ["crm", "mail"]
    assert old.custom_fields == {"shoe": "38", "pet": "cat"}
    # Filled fields stay the survivor's; an empty one takes the other's value
    assert (old.email, old.job_title, old.phone) == (
        "ada@analytical.example",
        "CTO",
        "+49 30 1234567",
    )
    # Report facts follow the moved history and deals
    assert old.furthest_step >= 1
    assert old.first_activity_at is not None


def test_survivor_is_rescored_once_and_its_score_is_what_verification_expects(rich_pair, manager):
    # Given two scored records, both holding the fit award for a director in Germany
    old, new = rich_pair
    assert old.score > 0
    assert new.score > 0

    # When they are merged
    leads_merge(survivor_id=old.pk, others=[new.pk], fields={}, by=manager)

    # Then the score counts each fit rule once, the /demo visit once (its cap is one per
    # lead), both /pricing visits, and the manual adjustment; the check finds nothing wrong
    old.refresh_from_db()
    assert list(scores_verify()) == []
    fit = 20 + 10
    assert old.fit_score == fit + 7
    assert LeadScore.objects.filter(lead=old).count() == 1
    assert not LeadScore.objects.filter(lead_id=new.pk).exists()
    # Every entry of the merged lead is on the survivor now, none lost
    assert not ScoreEntry.objects.filter(lead_id=new.pk).exists()


def test_merge_with_conflicting_fields_then_undo_restores_everything(rich_pair, manager):
    # Given two records that disagree on name, email, title, seniority, country, owner
    old, new = rich_pair
    before = snapshot([old.pk, new.pk])
    entries_before = ScoreEntry.objects.count()

    # When the newer's last name, email, seniority and owner win
    merge = leads_merge(
        survivor_id=old.pk,
        others=[new.pk],
        fields={"last_name": new.pk, "email": new.pk, "seniority": new.pk, "owner": new.pk},
        by=manager,
    )
    survivor = Lead.objects.get(pk=old.pk)
    assert (survivor.last_name, survivor.email, survivor.seniority, survivor.owner_id) == (
        "King",
        "ada.king@analytical.example",
        "manager",
        manager.pk,
    )
    assert merge.fields["email"] == {
        "from": new.pk,
        "before": "ada@analytical.example",
        "after": "ada.king@analytical.example",
    }
    assert list(scores_verify()) == []
    # The director award is the other's seniority no more: the fit dropped
    assert survivor.fit_score == 10 + 7

    # And the merge is undone
    lead_merge_undo(merge_id=merge.pk, by=manager)

    # Then both leads are back with their ids, fields, rows and scores
    assert snapshot([old.pk, new.pk]) == before
    assert not LeadAlias.objects.exists()
    assert LeadMerge.objects.get(pk=merge.pk).undone_at is not None
    assert list(scores_verify()) == []
    # The ledger only grew: reversals, never edits or deletions
    assert ScoreEntry.objects.count() > entries_before


def test_undo_keeps_a_field_changed_since_the_merge_and_says_so(rich_pair, manager):
    # Given a merge in which the other's job title won, changed by hand afterwards
    old, new = rich_pair
    merge = leads_merge(
        survivor_id=old.pk, others=[new.pk], fields={"job_title": new.pk}, by=manager
    )
    Lead.objects.filter(pk=old.pk).update(job_title="Founder")

    # When the merge is undone
    merge = lead_merge_undo(merge_id=merge.pk, by=manager)

    # Then the later change is kept, and the record says it was
    assert Lead.objects.get(pk=old.pk).job_title == "Founder"
    assert merge.fields["job_title"]["kept"] is True
    assert Lead.objects.get(pk=new.pk).job_title == "Chief Technology Officer"


def test_an_activity_logged_on_the_survivor_after_the_merge_stays_there_on_undo(
    rich_pair, manager, django_capture_on_commit_callbacks
):
    old, new = rich_pair
    merge = leads_merge(survivor_id=old.pk, others=[new.pk], fields={}, by=manager)
    with django_capture_on_commit_callbacks(execute=True):
        later = visit(Lead.objects.get(pk=old.pk), "https://x.example/pricing")

    lead_merge_undo(merge_id=merge.pk, by=manager)

    assert Activity.objects.get(pk=later.pk).lead_id == old.pk
    assert list(scores_verify()) == []


def test_merging_three_leads_and_merges_of_one_survivor_undo_latest_first(model, manager):
    a, b, c = LeadFactory(), LeadFactory(), LeadFactory()
    first = leads_merge(survivor_id=a.pk, others=[b.pk], fields={}, by=manager)
    second = leads_merge(survivor_id=a.pk, others=[c.pk], fields={}, by=manager)

    with pytest.raises(MergeError, match="later merge"):
        lead_merge_undo(merge_id=first.pk, by=manager)

    lead_merge_undo(merge_id=second.pk, by=manager)
    lead_merge_undo(merge_id=first.pk, by=manager)
    assert Lead.objects.filter(pk__in=[a.pk, b.pk, c.pk]).count() == 3
    with pytest.raises(MergeError, match="undone already"):
        lead_merge_undo(merge_id=first.pk, by=manager)


def test_a_survivor_merged_away_passes_its_aliases_on_and_comes_back_with_them(model, manager):
    # Given b merged into a, then a merged into c
    a, b, c = LeadFactory(), LeadFactory(), LeadFactory()
    first = leads_merge(survivor_id=a.pk, others=[b.pk], fields={}, by=manager)
    second = leads_merge(survivor_id=c.pk, others=[a.pk], fields={}, by=manager)

    # Then both old ids name c, and the first merge cannot be undone while a is gone
    assert (lead_alias_target(a.pk), lead_alias_target(b.pk)) == (c.pk, c.pk)
    with pytest.raises(MergeError, match="is gone"):
        lead_merge_undo(merge_id=first.pk, by=manager)

    # When the second merge is undone, b names a again and the first can be undone
    lead_merge_undo(merge_id=second.pk, by=manager)
    assert (lead_alias_target(a.pk), lead_alias_target(b.pk)) == (None, a.pk)
    lead_merge_undo(merge_id=first.pk, by=manager)
    assert lead_alias_target(b.pk) is None
    assert Lead.objects.filter(pk__in=[a.pk, b.pk, c.pk]).count() == 3


def test_merge_refuses_bad_requests_and_changes_nothing(model, manager):
    a, b = LeadFactory(), LeadFactory()
    before = snapshot([a.pk, b.pk])
    for kwargs, message in [
        ({"others": []}, "at least one"),
        ({"others": [a.pk]}, "into itself"),
        ({"others": [b.pk, 999999]}, "No lead 999999"),
        ({"others": [b.pk], "fields": {"score": b.pk}}, "does not choose: score"),
        ({"others": [b.pk], "fields": {"email": 424242}}, "merged lead"),
    ]:
        with pytest.raises(MergeError, match=message):
            leads_merge(survivor_id=a.pk, by=manager, **kwargs)
    assert snapshot([a.pk, b.pk]) == before
    assert not LeadMerge.objects.exists()


def test_the_most_complete_record_survives_and_the_oldest_among_equals(db):
    now = timezone.now()
    sparse_old = LeadFactory(job_title="", phone="", created_at=now - dt.timedelta(days=9))
    full_new = LeadFactory(job_title="CEO", phone="+4930123456", created_at=now)
    assert lead_survivor_pick([sparse_old, full_new]) == full_new

    twin_new = LeadFactory(job_title="CEO", phone="+4930123457", created_at=now)
    twin_old = LeadFactory(
        job_title="CEO", phone="+4930123458", created_at=now - dt.timedelta(days=1)
    )
    assert lead_survivor_pick([twin_new, twin_old]) == twin_old
    with pytest.raises(MergeError):
        lead_survivor_pick([])


def test_enrollments_move_and_a_sequence_walked_twice_ends_once_then_resumes_on_undo(
    model, manager
):
    # Given both records walking the same sequence, and the other one another sequence
    welcome = Sequence.objects.create(name="Welcome", status="active")
    Step.objects.create(sequence=welcome, position=1, subject="Hi", body_text="Hello")
    webinar = Sequence.objects.create(name="Webinar", status="active")
    a, b = LeadFactory(), LeadFactory()
    now = timezone.now()
    own = Enrollment.objects.create(lead=a, sequence=welcome, next_due_at=now)
    twin = Enrollment.objects.create(lead=b, sequence=welcome, next_due_at=now)
    other = Enrollment.objects.create(lead=b, sequence=webinar, next_due_at=now)
    queued = Message.objects.create(enrollment=twin, step=welcome.steps.get(), lead=b)

    # When b is merged into a
    merge = leads_merge(survivor_id=a.pk, others=[b.pk], fields={}, by=manager)

    # Then a walks each sequence once: the twin enrollment ended, its queued email cancelled
    assert set(Enrollment.objects.filter(lead=a).values_list("pk", flat=True)) == {
        own.pk,
        twin.pk,
        other.pk,
    }
    twin.refresh_from_db()
    assert (twin.status, twin.exit_reason) == (EnrollmentStatus.EXITED, ExitReason.MERGED)
    queued.refresh_from_db()
    assert (queued.lead_id, queued.status) == (a.pk, "cancelled")
    assert Enrollment.objects.active().filter(lead=a, sequence=welcome).count() == 1

    # And the undo puts b's enrollments back as they were
    lead_merge_undo(merge_id=merge.pk, by=manager)
    twin.refresh_from_db()
    queued.refresh_from_db()
    assert (twin.lead_id, twin.status, twin.exit_reason, twin.ended_at) == (
        b.pk,
        EnrollmentStatus.ACTIVE,
        "",
        None,
    )
    assert (queued.lead_id, queued.status) == (b.pk, "queued")
    assert Enrollment.objects.get(pk=other.pk).lead_id == b.pk


def test_merge_answers_the_pairs_of_the_merged_leads_and_hands_on_the_others(model, manager):
    a, b, c = LeadFactory(), LeadFactory(), LeadFactory()
    ab = DuplicatePair.objects.create(lead_a=a, lead_b=b, reasons=[{"kind": "email"}], score=1)
    bc = DuplicatePair.objects.create(lead_a=b, lead_b=c, reasons=[{"kind": "phone"}], score=0.9)

    merge = leads_merge(survivor_id=a.pk, others=[b.pk], fields={}, by=manager)

    ab.refresh_from_db()
    bc.refresh_from_db()
    assert (ab.status, ab.merge, ab.decided_by) == (PairStatus.MERGED, merge, manager)
    assert (bc.lead_a_id, bc.lead_b_id, bc.status) == (a.pk, c.pk, PairStatus.OPEN)
    lead_merge_undo(merge_id=merge.pk, by=manager)
    ab.refresh_from_db()
    assert ab.status == PairStatus.OPEN


def test_undo_refuses_when_the_merged_address_is_taken_meanwhile(model, manager):
    a, b = LeadFactory(), LeadFactory(email="taken@x.example")
    merge = leads_merge(survivor_id=a.pk, others=[b.pk], fields={}, by=manager)
    LeadFactory(email="taken@x.example")

    with pytest.raises(MergeError, match=r"taken@x\.example"):
        lead_merge_undo(merge_id=merge.pk, by=manager)
    assert not Lead.objects.filter(pk=b.pk).exists()
    assert LeadMerge.objects.get(pk=merge.pk).undone_at is None


def test_merged_company_reference_survives_a_deleted_company_on_undo(model, manager):
    a, b = LeadFactory(), LeadFactory()
    company = b.company
    merge = leads_merge(survivor_id=a.pk, others=[b.pk], fields={}, by=manager)
    Company.objects.filter(pk=company.pk).delete()

    lead_merge_undo(merge_id=merge.pk, by=manager)

    assert Lead.objects.get(pk=b.pk).company_id is None


def test_undo_takes_back_the_stage_move_and_hand_off_of_the_merges_rescore(threshold_pair, manager):
    # Given two records that are an MQL only together
    a, b = threshold_pair
    before = snapshot([a.pk, b.pk])
    history_before = sorted(StageChange.objects.values_list("pk", "lead_id"))

    # When they are merged, the rescore moves the survivor to MQL and opens a hand-off
    merge = leads_merge(survivor_id=a.pk, others=[b.pk], fields={}, by=manager)
    survivor = Lead.objects.get(pk=a.pk)
    assert (survivor.stage, survivor.score) == (Stage.MQL, 40)
    change = StageChange.objects.filter(lead=survivor).latest("pk")
    assert (change.to_stage, change.by_id) == (Stage.MQL, None)
    assert HandOff.objects.filter(stage_change=change, status="pending").exists()
    assert merge.moved["stage_moves"]["from"] == Stage.NEW
    assert merge.moved["stage_moves"]["changes"] == [change.pk]

    # And the merge is undone with nothing done to the lead since
    merge = lead_merge_undo(merge_id=merge.pk, by=manager)

    # Then the move the merge caused is gone with its hand-off: both leads are as before
    assert snapshot([a.pk, b.pk]) == before
    assert sorted(StageChange.objects.values_list("pk", "lead_id")) == history_before
    assert not HandOff.objects.filter(lead_id__in=[a.pk, b.pk]).exists()
    assert merge.moved["stage_moves"]["undone"] is True
    assert list(scores_verify()) == []


def test_undo_keeps_a_stage_someone_moved_since_the_merge_and_says_so(threshold_pair, manager):
    # Given a merge that made the survivor an MQL, then a manager moved it on to SQL
    a, b = threshold_pair
    merge = leads_merge(survivor_id=a.pk, others=[b.pk], fields={}, by=manager)
    lead_move_to_stage(lead_id=a.pk, stage=Stage.SQL, by=manager, reason="Qualified by phone")

    # When the merge is undone
    merge = lead_merge_undo(merge_id=merge.pk, by=manager)

    # Then the person's move stands, with the history that led to it, and the record
    # says the stage was kept
    survivor = Lead.objects.get(pk=a.pk)
    assert survivor.stage == Stage.SQL
    assert list(
        StageChange.objects.filter(lead=survivor).order_by("pk").values_list("to_stage", flat=True)
    ) == [Stage.MQL, Stage.SQL]
    assert merge.moved["stage_moves"]["kept"] is True
    assert Lead.objects.get(pk=b.pk).stage == Stage.NEW


def test_undo_keeps_a_stage_whose_hand_off_was_answered(threshold_pair, manager, rep):
    a, b = threshold_pair
    merge = leads_merge(survivor_id=a.pk, others=[b.pk], fields={}, by=manager)
    HandOff.objects.filter(lead_id=a.pk).update(
        status="accepted", owner=rep, accepted_at=timezone.now()
    )

    merge = lead_merge_undo(merge_id=merge.pk, by=manager)

    assert Lead.objects.get(pk=a.pk).stage == Stage.MQL
    assert HandOff.objects.filter(lead_id=a.pk, status="accepted").exists()
    assert merge.moved["stage_moves"]["kept"] is True

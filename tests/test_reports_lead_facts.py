"""The lead's report facts: its furthest funnel step and its deal outcome stay what its
stage history and deals give, whichever way a stage or a deal is written, and the
reports count by them."""

from __future__ import annotations

import datetime as dt
import importlib
import threading
import time
from decimal import Decimal
from io import StringIO
from types import SimpleNamespace

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from crm.models import User
from leads.activities import activities_record
from leads.deals import deal_save, deals_delete
from leads.models import (
    Activity,
    ActivityType,
    Deal,
    DealOutcome,
    DealStatus,
    Lead,
    Stage,
    StageChange,
    furthest_step_of,
)
from leads.stages import lead_move_to_stage, stage_change_record, stage_changes_delete
from reports.queries.funnel import funnel_by_cohort
from reports.queries.key_figures import key_figures
from reports.queries.rule_effectiveness import rule_rows
from reports.rollups import stale_lead_facts
from reports.scope import scope_for
from scoring.lead_scoring import lead_score
from scoring.models import LeadScore
from scoring.rescore_jobs import rescore_job_run, rescore_job_start
from tests.admin_forms import changeform_data
from tests.api_client import token_client
from tests.factories import LeadFactory, active_model, fit_rule, page_rule
from workspace.bulk import leads_move_to_stage

backfill_migration = importlib.import_module("leads.migrations.0012_lead_report_facts")

NONE, LOST, WON = DealOutcome.NONE, DealOutcome.LOST, DealOutcome.WON


def facts(lead: Lead) -> tuple[int, int]:
    """The facts stored on the lead's row."""
    return Lead.objects.values_list("furthest_step", "deal_outcome").get(pk=lead.pk)


def worked_out(lead: Lead) -> tuple[int, int]:
    """The facts its stage, history and deals give, worked out in Python."""
    stage = Lead.objects.values_list("stage", flat=True).get(pk=lead.pk)
    changes = StageChange.objects.filter(lead=lead).values_list("from_stage", "to_stage")
    statuses = Deal.objects.filter(lead=lead).values_list("status", flat=True)
    return furthest_step_of(stage, changes), DealOutcome.of(statuses)


def assert_kept(lead: Lead, expected: tuple[int, int]) -> None:
    """The stored facts are ``expected``, what the history gives, and the SQL check agrees."""
    assert facts(lead) == expected
    assert worked_out(lead) == expected
    assert not Lead.objects.stale_facts().exists()


def open_deal(lead: Lead, **fields) -> Deal:
    return deal_save(deal=Deal(lead=lead, name="Pilot", amount=Decimal("1000"), **fields))


def closed(status: str) -> dict:
    return {"status": status, "closed_at": timezone.now()}


# --- Stage writes ----------------------------------------------------------------------


def test_service_moves_raise_the_step_and_an_exit_keeps_the_credit(db, rep):
    # Given a new lead
    lead = LeadFactory(owner=rep)
    assert_kept(lead, (0, NONE))

    # When it goes to MQL, then SQL, is disqualified, recycled and qualifies as MQL again
    path = [
        (Stage.MQL, 1),
        (Stage.SQL, 2),
        (Stage.DISQUALIFIED, 2),
        (Stage.RECYCLED, 2),
        (Stage.MQL, 2),
    ]
    for stage, step in path:
        lead_move_to_stage(lead_id=lead.pk, stage=stage, by=rep, reason="Checked")

        # Then the furthest step follows the furthest stage it ever reached
        assert_kept(lead, (step, NONE))


def test_a_lead_created_past_new_counts_its_first_stage_after_leaving_it(db, rep):
    # Given a lead created as an SQL (an import), without a history
    lead = LeadFactory(owner=rep, stage=Stage.SQL)
    assert_kept(lead, (2, NONE))

    # When it is disqualified
    lead_move_to_stage(lead_id=lead.pk, stage=Stage.DISQUALIFIED, by=rep, reason="Competitor")

    # Then it keeps the SQL step: the change's from_stage records it
    assert_kept(lead, (2, NONE))


def test_stage_set_on_a_saved_lead_counts_too(db):
    # Given a lead whose stage is set and saved directly, as fixtures and the admin shell do
    lead = LeadFactory()
    lead.stage = Stage.OPPORTUNITY
    lead.save(update_fields=["stage"])

    # Then its furthest step is the stage's
    assert_kept(lead, (3, NONE))


def test_bulk_move_keeps_the_step_of_each_lead_it_moves(db, manager, rep):
    # Given two new leads and a customer, which cannot move back
    movable = [LeadFactory(owner=rep), LeadFactory(owner=rep)]
    customer = LeadFactory(owner=rep, stage=Stage.CUSTOMER)

    # When a manager moves all three to SQL at once
    outcome = leads_move_to_stage(
        lead_ids=[lead.pk for lead in [*movable, customer]], stage=Stage.SQL, by=manager
    )

    # Then the two moved leads count as SQL and the customer keeps its step
    assert len(outcome.done) == 2
    assert len(outcome.refused) == 1
    for lead in movable:
        assert_kept(lead, (2, NONE))
    assert_kept(customer, (4, NONE))


def test_scoring_that_qualifies_a_lead_raises_its_step(db, django_capture_on_commit_callbacks):
    # Given a model whose MQL threshold a lead crosses with two pricing views
    model = active_model(mql_threshold=50, sql_threshold=90)
    fit_rule(model, 30, "job_title", "contains", "Head")
    page_rule(model, 15, "/pricing")
    lead = LeadFactory()
    now = timezone.now()
    views = [
        Activity(type=ActivityType.PAGE_VIEW, url="https://x.example/pricing", occurred_at=at)
        for at in (now - dt.timedelta(minutes=2), now - dt.timedelta(minutes=1))
    ]
    activities_record(lead=lead, activities=views)

    # When the lead is scored
    with django_capture_on_commit_callbacks(execute=True):
        lead_score(lead_id=lead.pk, now=now)

    # Then scoring moved it to MQL and its step says so
    assert Lead.objects.get(pk=lead.pk).stage == Stage.MQL
    assert_kept(lead, (1, NONE))


@pytest.mark.postgres
def test_set_based_rescore_that_qualifies_leads_raises_their_steps(
    db, django_capture_on_commit_callbacks
):
    # Given leads that a new fit rule will take past the MQL threshold
    model = active_model(mql_threshold=50, sql_threshold=90)
    leads = [LeadFactory() for _ in range(3)]
    fit_rule(model, 60, "job_title", "contains", "Head")

    # When the whole model is rescored with set-based SQL
    job = rescore_job_start(model=model, reason="New rule")
    rescore_job_run(job_id=job.pk)

    # Then every lead moved to MQL and counts as MQL
    for lead in leads:
        assert Lead.objects.get(pk=lead.pk).stage == Stage.MQL
        assert_kept(lead, (1, NONE))


def test_deleting_a_stage_change_works_the_step_out_again(db, rep):
    # Given a lead moved to MQL and SQL
    lead = LeadFactory(owner=rep)
    lead_move_to_stage(lead_id=lead.pk, stage=Stage.MQL, by=rep)
    lead_move_to_stage(lead_id=lead.pk, stage=Stage.DISQUALIFIED, by=rep, reason="Spam")
    assert_kept(lead, (1, NONE))

    # When its history is deleted, one change, then the rest
    disqualified = StageChange.objects.filter(lead=lead, to_stage=Stage.DISQUALIFIED)
    stage_changes_delete(changes=disqualified)
    assert_kept(lead, (1, NONE))
    stage_changes_delete(changes=StageChange.objects.filter(lead=lead))

    # Then the step is what is left: its stage now
    assert_kept(lead, (0, NONE))


# --- Deal writes ---------------------------------------------------------------------


def test_deal_writes_keep_the_outcome_and_a_won_deal_outweighs_a_lost_one(db):
    # Given a lead with an open deal
    lead = LeadFactory()
    first = open_deal(lead)
    assert_kept(lead, (0, NONE))

    # When the deal is lost, another one is won, and the lost one reopened
    first.status, first.closed_at = DealStatus.LOST, timezone.now()
    deal_save(deal=first)
    assert_kept(lead, (0, LOST))
    second = open_deal(lead, **closed(DealStatus.WON))
    assert_kept(lead, (0, WON))
    first.status, first.closed_at = DealStatus.OPEN, None
    deal_save(deal=first, update_fields=["status", "closed_at"])

    # Then the lead counts as won while one deal is won
    assert_kept(lead, (0, WON))
    assert second.lead_id == lead.pk


def test_deleting_deals_works_the_outcome_out_again(db):
    # Given a lead with a won and a lost deal
    lead = LeadFactory()
    won = open_deal(lead, **closed(DealStatus.WON))
    open_deal(lead, **closed(DealStatus.LOST))
    assert_kept(lead, (0, WON))

    # When the won deal is deleted, then the rest in one go
    deals_delete(deals=Deal.objects.filter(pk=won.pk))
    assert_kept(lead, (0, LOST))
    deals_delete(deals=lead.deals.all())

    # Then the lead has no outcome left
    assert_kept(lead, (0, NONE))


def test_api_moves_and_deal_writes_keep_both_facts(db, admin_user):
    # Given two leads and an API client
    api = token_client(admin_user)
    lead, other = LeadFactory(), LeadFactory()

    # When the API moves a lead to SQL and records a deal that is won
    moved = api.post(f"/api/v1/leads/{lead.pk}/transition/", {"stage": "sql"}, format="json")
    created = api.post(
        "/api/v1/deals/", {"lead": lead.pk, "name": "Pilot", "amount": "900"}, format="json"
    )
    deal_url = f"/api/v1/deals/{created.json()['id']}/"
    won = api.patch(deal_url, {"status": "won"}, format="json")

    # Then the won deal made the lead a customer
    assert (moved.status_code, created.status_code, won.status_code) == (200, 201, 200)
    assert_kept(lead, (4, WON))

    # And when the deal is moved to the other lead and marked lost
    lost = {"lead": other.pk, "status": "lost", "lost_reason": "No decision"}
    changed = api.patch(deal_url, lost, format="json")

    # Then both leads' outcomes follow: the first has none left, and stays a customer
    assert changed.status_code == 200
    assert_kept(lead, (4, NONE))
    assert_kept(other, (0, LOST))


def deal_form(lead: Lead, **fields) -> dict:
    data = {
        "lead": str(lead.pk),
        "name": "Renewal",
        "amount": "500",
        "currency": "EUR",
        "status": DealStatus.OPEN,
        "created_at_0": "2026-01-05",
        "created_at_1": "10:00:00",
        "closed_at_0": "",
        "closed_at_1": "",
        "lost_reason": "",
    }
    return {**data, **fields}


def test_admin_deal_edits_and_deletions_keep_the_outcome(client, admin_user):
    # Given a lead and an admin
    client.force_login(admin_user)
    lead = LeadFactory()
    won_at = {"status": DealStatus.WON, "closed_at_0": "2026-02-01", "closed_at_1": "09:00:00"}

    # When the admin adds a won deal, then changes it to lost
    added = client.post(reverse("admin:leads_deal_add"), deal_form(lead, **won_at))
    assert added.status_code == 302, added.context["adminform"].form.errors
    deal = Deal.objects.get(lead=lead)
    assert_kept(lead, (4, WON))
    lost = {**won_at, "status": DealStatus.LOST, "lost_reason": "Price too high"}
    changed = client.post(
        reverse("admin:leads_deal_change", args=[deal.pk]), deal_form(lead, **lost)
    )
    assert changed.status_code == 302
    assert_kept(lead, (4, LOST))

    # And deletes it on its page, then another through the bulk action
    deleted = client.post(reverse("admin:leads_deal_delete", args=[deal.pk]), {"post": "yes"})
    assert deleted.status_code == 302
    assert_kept(lead, (4, NONE))
    another = open_deal(lead, **closed(DealStatus.WON))
    assert_kept(lead, (4, WON))
    bulk = client.post(
        reverse("admin:leads_deal_changelist"),
        {"action": "delete_selected", ACTION_CHECKBOX_NAME: [another.pk], "post": "yes"},
    )

    # Then the lead's outcome followed each step; the won deal made it a customer for good
    assert bulk.status_code == 302
    assert not Deal.objects.exists()
    assert_kept(lead, (4, NONE))


def lead_form_with_deal(client, lead: Lead, **deal: str) -> dict:
    """The lead's admin change form as rendered, with one more deal filled in inline."""
    data = changeform_data(client.get(reverse("admin:leads_lead_change", args=[lead.pk])))
    n = int(data["deals-TOTAL_FORMS"])
    fields = {"name": "Rollout", "amount": "700", "currency": "EUR", "closed_at_0": ""}
    fields.update({"closed_at_1": "", "lost_reason": "", "lead": str(lead.pk), **deal})
    return {
        **data,
        "deals-TOTAL_FORMS": str(n + 1),
        **{f"deals-{n}-{name}": value for name, value in fields.items()},
    }


def test_admin_lead_page_deal_inline_keeps_the_outcome(client, admin_user):
    # Given a lead and an admin on its change page
    client.force_login(admin_user)
    lead = LeadFactory()
    url = reverse("admin:leads_lead_change", args=[lead.pk])

    # When the admin adds a won deal in the lead's deals inline
    won = {"status": DealStatus.WON, "closed_at_0": "2026-02-01", "closed_at_1": "09:00:00"}
    added = client.post(url, lead_form_with_deal(client, lead, **won))

    # Then the lead counts as won, and is a customer
    assert added.status_code == 302
    assert Deal.objects.filter(lead=lead).count() == 1
    assert_kept(lead, (4, WON))

    # And when the admin ticks the deal's delete box and saves
    data = changeform_data(client.get(url))
    deleted = client.post(url, {**data, "deals-0-DELETE": "on"})

    # Then the deal is gone and so is the outcome
    assert deleted.status_code == 302
    assert not Deal.objects.exists()
    assert_kept(lead, (4, NONE))


def test_admin_stage_change_deletions_work_the_step_out_again(client, admin_user):
    # Given a new lead with an imported history that reached SQL, and an admin
    client.force_login(admin_user)
    lead = LeadFactory()
    to_mql = stage_change_record(lead=lead, from_stage=Stage.NEW, to_stage=Stage.MQL)
    to_sql = stage_change_record(lead=lead, from_stage=Stage.MQL, to_stage=Stage.SQL)
    assert_kept(lead, (2, NONE))

    # When the admin deletes the move to SQL on its page
    url = reverse("admin:leads_stagechange_delete", args=[to_sql.pk])
    assert client.post(url, {"post": "yes"}).status_code == 302

    # Then the lead counts as far as the rest of its history goes
    assert_kept(lead, (1, NONE))

    # And when the admin deletes the rest through the bulk action
    bulk = client.post(
        reverse("admin:leads_stagechange_changelist"),
        {"action": "delete_selected", ACTION_CHECKBOX_NAME: [to_mql.pk], "post": "yes"},
    )

    # Then only its stage counts
    assert bulk.status_code == 302
    assert not StageChange.objects.filter(lead=lead).exists()
    assert_kept(lead, (0, NONE))


def race_deal_writes(lead: Lead) -> None:
    """One transaction writes a won deal and holds its commit while a second one writes
    a lost deal on the same lead."""
    written = threading.Event()

    def win() -> None:
        try:
            with transaction.atomic():
                open_deal(lead, **closed(DealStatus.WON))
                written.set()
                time.sleep(0.5)
        finally:
            connection.close()

    def lose() -> None:
        try:
            written.wait(timeout=10)
            open_deal(lead, **closed(DealStatus.LOST))
        finally:
            connection.close()

    threads = [threading.Thread(target=win), threading.Thread(target=lose)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deal_writes_on_one_lead_both_count():
    # Given a lead
    lead = LeadFactory()

    # When a lost deal is written while another transaction has just written a won one
    race_deal_writes(lead)

    # Then the second write saw the first (the lead row is locked first): the lead is won
    assert Deal.objects.filter(lead=lead).count() == 2
    assert_kept(lead, (0, WON))


# --- Set-based writers, the migration and the check -----------------------------------------


def history_world(rep: User) -> dict[str, tuple[Lead, tuple[int, int]]]:
    """Leads in every kind of state, written through the models, with their facts."""
    customer = LeadFactory(owner=rep)
    open_deal(customer, **closed(DealStatus.WON))
    for stage in (Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER):
        lead_move_to_stage(lead_id=customer.pk, stage=stage, by=rep)
    dropped = LeadFactory(owner=rep)
    for stage in (Stage.SQL, Stage.OPPORTUNITY, Stage.RECYCLED):
        lead_move_to_stage(lead_id=dropped.pk, stage=stage, by=rep)
    open_deal(dropped, **closed(DealStatus.LOST))
    imported = LeadFactory(owner=rep, stage=Stage.MQL)
    pending = LeadFactory(owner=rep)
    open_deal(pending)
    return {
        "customer": (customer, (4, WON)),
        "dropped": (dropped, (3, LOST)),
        "imported": (imported, (1, NONE)),
        "pending": (pending, (0, NONE)),
        "fresh": (LeadFactory(owner=rep), (0, NONE)),
    }


def test_backfill_migration_sets_the_facts_from_history_and_deals(db, rep):
    # Given leads in every kind of state whose facts were never stored
    world = history_world(rep)
    Lead.objects.update(furthest_step=0, deal_outcome=NONE)
    assert Lead.objects.stale_facts().count() == 3

    # When the migration's backfill runs
    backfill_migration.backfill(None, SimpleNamespace(connection=connection))

    # Then every lead has the facts its history and deals give
    for lead, expected in world.values():
        assert_kept(lead, expected)


def test_refresh_sets_only_the_leads_written_around_the_models(db, rep):
    # Given leads whose stage and deals were then written by plain updates
    world = history_world(rep)
    customer, _ = world["customer"]
    fresh, _ = world["fresh"]
    Lead.objects.filter(pk=customer.pk).update(furthest_step=0, deal_outcome=NONE)
    Lead.objects.filter(pk=fresh.pk).update(stage=Stage.SQL)

    # When the facts are refreshed
    rows = Lead.objects.refresh_facts()

    # Then exactly those two leads were written, and all agree again
    assert rows == 2
    assert_kept(customer, (4, WON))
    assert_kept(fresh, (2, NONE))


def test_reports_refresh_names_stale_leads_and_lead_facts_refresh_sets_them(db, rep):
    # Given a customer whose facts were overwritten around the models
    world = history_world(rep)
    customer, _ = world["customer"]
    Lead.objects.filter(pk=customer.pk).update(furthest_step=1, deal_outcome=NONE)

    # When the reports are refreshed, the check fails and names the lead
    with pytest.raises(CommandError, match=rf"1 lead\(s\) .*ids {customer.pk}\)"):
        call_command("reports_refresh", stdout=StringIO())
    assert stale_lead_facts() == [customer.pk]

    # Then the leads command sets it again, and the next refresh passes
    out = StringIO()
    call_command("lead_facts_refresh", stdout=out)
    assert "1 lead(s) set again" in out.getvalue()
    call_command("reports_refresh", stdout=(out := StringIO()))
    assert "match its history" in out.getvalue()
    assert_kept(customer, (4, WON))


@pytest.mark.parametrize("copy", [False, pytest.param(True, marks=pytest.mark.postgres)])
def test_seed_demo_writes_leads_with_their_facts(db, copy):
    # When a demo world is seeded (bulk inserts or COPY, around the models' save)
    call_command(
        "seed_demo", leads=300, copy=copy, no_scoring=True, now="2025-06-01T00:00:00+00:00",
        stdout=StringIO(),
    )  # fmt: skip

    # Then every lead carries the facts of its history and deals, of every kind
    assert not Lead.objects.stale_facts().exists()
    outcomes = set(Lead.objects.values_list("deal_outcome", flat=True))
    steps = set(Lead.objects.values_list("furthest_step", flat=True))
    assert outcomes == {NONE, LOST, WON}
    assert {0, 1, 2, 4} <= steps


# --- The reports -----------------------------------------------------------------------------


def test_reports_count_leads_by_their_kept_facts(db, admin_user, rep):
    # Given leads in every kind of state, all created today
    history_world(rep)
    today = timezone.localdate()
    scope = scope_for(admin_user, date_from=today, date_to=today)

    # When the overview and the funnel are read
    figures = key_figures(scope)
    (cohort,) = funnel_by_cohort(scope)

    # Then a lead counts at every step it passed, and by its best deal
    assert {k: figures[k] for k in ("leads", "mql", "sql", "customers", "closed", "won")} == {
        "leads": 5,
        "mql": 3,
        "sql": 2,
        "customers": 1,
        "closed": 2,
        "won": 1,
    }
    assert figures["win_rate"] == 0.5
    assert cohort == {
        "cohort": today.strftime("%Y-%m"),
        "leads": 5,
        "mql": 3,
        "sql": 2,
        "opportunity": 2,
        "customer": 1,
    }


def test_rule_effectiveness_counts_the_leads_its_model_scores(db, admin_user, rep):
    # Given two leads, one scored by a segment model and both by the default model
    default, segment = active_model(), active_model(name="Segment", is_default=False)
    scored, unscored = LeadFactory(owner=rep), LeadFactory(owner=rep)
    LeadScore.objects.create(lead=scored, model=segment, score=10)
    LeadScore.objects.create(lead=scored, model=default, score=10, is_primary=True)
    today = timezone.localdate()
    scope = scope_for(admin_user, date_from=today, date_to=today)

    # When Rule effectiveness counts each model's leads
    totals = {m.name: rule_rows(scope, m)["totals"]["leads"] for m in (default, segment)}

    # Then the segment model counts the lead it scores, the default model every lead
    # (it scores every lead, one not scored yet too)
    assert totals == {"Default": 2, "Segment": 1}
    assert not unscored.scores.exists()

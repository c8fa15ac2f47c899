"""The rollup behind Rule effectiveness: the rule matches the ledger keeps, counted per
owner and day by the command and by the beat task, replaced whole, never counting a
reversed award, and giving the page the same figures as the matches themselves, within
each reader's scope.

The world: twenty leads created in May 2025, L1..L10 won and L11..L20 lost. rep1 owns
L1..L12, rep2 L13..L16 (both in North, the manager's team), a rep of team South
L17..L20. "Pricing page" (+20) is held by L9..L18; it was also awarded to L1 and
reversed. "Newsletter" (+10) is held by L1..L5 and L11..L15, twice by L2. L11..L20 came
from events, the others from the website.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.models import Role, Team
from leads.deals import deal_save
from leads.models import Deal, Lead, Source
from reports.models import Rollup, RollupName, RuleMatchCount
from reports.queries import rule_effectiveness
from reports.scope import ReportFilterForm, scope_from
from reports.tasks import refresh_rollups
from scoring.models import LeadScore, Rule, RuleMatch, ScoreEntry, ScoringModel
from tests.conftest import make_user
from tests.factories import fit_rule

BASE = dt.datetime(2025, 5, 5, 9, 0, tzinfo=dt.UTC)
MAY = {"date_from": "2025-05-01", "date_to": "2025-05-31"}
PRICING = {9, 10, *range(11, 19)}
NEWSLETTER = {*range(1, 6), *range(11, 16)}
LIVE = rule_effectiveness.MatchSource(live=True)


def scope(user, **data):
    form = ReportFilterForm({**MAY, **data}, user=user)
    assert form.is_valid(), form.errors
    return scope_from(form)


def award(lead: Lead, rule: Rule, at: dt.datetime) -> ScoreEntry:
    return ScoreEntry.objects.create(
        lead=lead,
        model=rule.model,
        rule=rule,
        kind=rule.kind,
        points=rule.points,
        reason=rule.name,
        at=at,
    )


def add_lead(n: int, owner, model: ScoringModel, created: dt.datetime) -> Lead:
    lead = Lead.objects.create(
        email=f"l{n}@example.com",
        created_at=created,
        owner=owner,
        source=Source.WEBSITE if n <= 10 else Source.EVENT,
    )
    LeadScore.objects.create(lead=lead, model=model, is_primary=True)
    deal_save(
        deal=Deal(
            lead=lead,
            name=f"L{n}",
            amount=100,
            status="won" if n <= 10 else "lost",
            created_at=created,
            closed_at=created + dt.timedelta(days=3),
        )
    )
    return lead


@pytest.fixture
def world(rep, other_rep, manager):
    south = Team.objects.create(name="South")
    south_rep = make_user("south-rep", Role.REP, team=south)
    model = ScoringModel.objects.create(name="Quarterly", status="active", is_default=True)
    rules = {
        name: fit_rule(model, points, "country", "equals", "DE", name=name)
        for name, points in [("Pricing page", 20), ("Newsletter", 10)]
    }
    leads = {}
    for n in range(1, 21):
        owner = rep if n <= 12 else other_rep if n <= 16 else south_rep
        lead = leads[n] = add_lead(n, owner, model, BASE + dt.timedelta(minutes=n))
        if n in PRICING:
            award(lead, rules["Pricing page"], lead.created_at)
        if n in NEWSLETTER:
            award(lead, rules["Newsletter"], lead.created_at)
    award(leads[2], rules["Newsletter"], BASE + dt.timedelta(days=2))
    reverse_award(award(leads[1], rules["Pricing page"], BASE))
    return {"model": model, "rules": rules, "leads": leads}


def reverse_award(entry: ScoreEntry) -> ScoreEntry:
    return ScoreEntry.objects.create(
        lead_id=entry.lead_id,
        model=entry.model,
        rule=entry.rule,
        kind=entry.kind,
        points=-entry.points,
        reason=f"No longer: {entry.reason}",
        at=entry.at + dt.timedelta(days=1),
        reversal_of=entry,
    )


def figures(user, model, **filters) -> dict[str, tuple]:
    found = rule_effectiveness.rule_rows(scope(user, **filters), model)
    return {
        row["rule"]: (row["matched"], row["closed_in"], row["conversion_in"], row["conversion_out"])
        for row in found["rules"]
    }


def live_figures(user, model, **filters) -> dict[str, tuple]:
    found = rule_effectiveness.rule_rows(scope(user, **filters), model, source=LIVE)
    return {
        row["rule"]: (row["matched"], row["closed_in"], row["conversion_in"], row["conversion_out"])
        for row in found["rules"]
    }


def csv_rows(response) -> dict[str, list[str]]:
    return {row[0]: row for row in csv.reader(io.StringIO(response.content.decode()))}


def pairs() -> set[tuple[str, int]]:
    return {
        (match.rule.name, int(match.lead.email[1:].split("@")[0]))
        for match in RuleMatch.objects.select_related("rule", "lead")
    }


def test_refresh_command_counts_the_active_matches_and_records_when(world, capsys):
    expected = {("Pricing page", n) for n in PRICING} | {("Newsletter", n) for n in NEWSLETTER}
    # The ledger keeps the matches as its entries are written.
    assert pairs() == expected

    call_command("reports_refresh")

    rollup = Rollup.objects.get(name=RollupName.RULE_MATCHES)
    assert rollup.rows == len(expected) == 20
    assert "Rule matches counted: 20 in" in capsys.readouterr().out
    # Per rule, owner and day of creation: every lead was created on May 5 (UTC).
    assert {
        (c.rule.name, c.owner.username, c.day, c.leads)
        for c in RuleMatchCount.objects.select_related("rule", "owner")
    } == {
        ("Pricing page", "rep1", dt.date(2025, 5, 5), 4),
        ("Pricing page", "rep2", dt.date(2025, 5, 5), 4),
        ("Pricing page", "south-rep", dt.date(2025, 5, 5), 2),
        ("Newsletter", "rep1", dt.date(2025, 5, 5), 7),
        ("Newsletter", "rep2", dt.date(2025, 5, 5), 3),
    }


def test_beat_runs_the_refresh_nightly(world):
    entry = settings.CELERY_BEAT_SCHEDULE["reports-refresh-rollups"]
    assert entry["task"] == refresh_rollups.name == "reports.tasks.refresh_rollups"

    rows = refresh_rollups.delay().get()

    assert rows == 20
    assert RuleMatch.objects.count() == 20
    assert Rollup.objects.filter(name=RollupName.RULE_MATCHES).exists()


def test_a_second_refresh_replaces_the_rows(world):
    call_command("reports_refresh")
    first = Rollup.objects.get()
    reverse_award(
        ScoreEntry.objects.get(lead=world["leads"][9], rule=world["rules"]["Pricing page"])
    )
    assert RuleMatch.objects.count() == 19
    assert ("Pricing page", 9) not in pairs()
    assert sum(RuleMatchCount.objects.values_list("leads", flat=True)) == 20

    call_command("reports_refresh")

    second = Rollup.objects.get()
    assert (second.pk, second.rows) == (first.pk, 19)
    assert second.built_at >= first.built_at
    assert sum(RuleMatchCount.objects.values_list("leads", flat=True)) == 19


def test_a_failed_refresh_exits_non_zero_and_keeps_the_old_rows(world, monkeypatch):
    call_command("reports_refresh")
    built = Rollup.objects.get().built_at
    counts = set(RuleMatchCount.objects.values_list("rule_id", "owner_id", "day", "leads"))
    # The write fails in the database (a count without a day).
    monkeypatch.setattr("reports.rollups._counts_sql", lambda: ("SELECT 1, 1, NULL, NULL, 1", ()))

    with pytest.raises(CommandError, match="Rule matches not counted"):
        call_command("reports_refresh")

    assert set(RuleMatchCount.objects.values_list("rule_id", "owner_id", "day", "leads")) == counts
    assert Rollup.objects.get().built_at == built


def test_rollup_figures_equal_the_ledger_and_hand_counts(world, marketer):
    model = world["model"]
    from_ledger = live_figures(marketer, model)
    call_command("reports_refresh")

    found = figures(marketer, model)

    assert found == from_ledger
    # Pricing: 10 leads, 2 of them won; without it 8 of 10 won. The reversed award to L1
    # does not count. Newsletter: 10 leads, L2 once, 5 won; 5 of 10 without it.
    assert found["Pricing page"] == (10, 10, pytest.approx(0.2), pytest.approx(0.8))
    assert found["Newsletter"] == (10, 10, pytest.approx(0.5), pytest.approx(0.5))


def test_filtered_rollup_figures_equal_the_ledger(world, marketer):
    """A filter on the leads' own fields reads the matches instead of the counts."""
    model = world["model"]
    from_ledger = live_figures(marketer, model, source=Source.WEBSITE)
    call_command("reports_refresh")

    found = figures(marketer, model, source=Source.WEBSITE)

    assert found == from_ledger
    # Website leads are L1..L10, all won: Pricing holds L9 and L10, Newsletter L1..L5.
    assert found["Pricing page"] == (2, 2, pytest.approx(1.0), pytest.approx(1.0))
    assert found["Newsletter"] == (5, 5, pytest.approx(1.0), pytest.approx(1.0))


def test_each_reader_sees_the_matches_of_their_scope_only(world, rep, manager, client, outsider):
    model = world["model"]
    expected = {user: live_figures(user, model) for user in (rep, manager)}
    call_command("reports_refresh")

    # rep1 owns L1..L12: Pricing holds L9..L12 (2 won), Newsletter L1..L5, L11, L12.
    assert figures(rep, model) == expected[rep]
    assert figures(rep, model)["Pricing page"] == (4, 4, pytest.approx(0.5), pytest.approx(1.0))
    assert figures(rep, model)["Newsletter"][:2] == (7, 7)
    # The manager's team owns L1..L16: Pricing holds L9..L16, Newsletter all ten.
    assert figures(manager, model) == expected[manager]
    assert figures(manager, model)["Pricing page"][:2] == (8, 8)
    assert figures(manager, model)["Newsletter"][:2] == (10, 10)
    # The owner filter narrows the manager's figures to one rep's.
    assert figures(manager, model, owner=rep.pk) == expected[rep]
    client.force_login(outsider)
    assert client.get(reverse("reports-page", args=["rules"]), MAY).status_code == 403


def test_rules_page_says_when_its_matches_were_built(client, world, marketer):
    call_command("reports_refresh")
    client.force_login(marketer)

    response = client.get(reverse("reports-page", args=["rules"]), MAY)
    export = client.get(reverse("reports-page", args=["rules"]), {**MAY, "format": "csv"})

    text = response.content.decode()
    built = Rollup.objects.get().built_at.strftime("%-d %b %Y, %H:%M")
    assert f"Rule matches as of {built}:" in text
    rows = csv_rows(export)
    assert rows["Pricing page"][2:4] == ["10", "50.0"]


def test_rules_page_before_any_refresh_counts_a_small_ledger_live(client, world, marketer):
    client.force_login(marketer)

    response = client.get(reverse("reports-page", args=["rules"]), MAY)

    text = response.content.decode()
    assert "Rule matches have not been counted yet" in text
    assert "counted as you look" in text
    export = client.get(reverse("reports-page", args=["rules"]), {**MAY, "format": "csv"})
    rows = csv_rows(export)
    assert rows["Pricing page"][2] == "10"


def test_rules_page_before_any_refresh_on_a_large_ledger_has_them_counted(
    client, world, marketer, monkeypatch
):
    # Given matches too many to count during a page view, never rolled up
    monkeypatch.setattr(rule_effectiveness, "LIVE_MATCHES_MAX", 10)
    client.force_login(marketer)

    # When a marketer opens the rules page
    response = client.get(reverse("reports-page", args=["rules"]), MAY)

    # Then it lists the rules with their points and says they are being counted
    assert response.status_code == 200
    text = response.content.decode()
    assert "Rule matches are being counted" in text
    assert "Reload this page in a minute." in text
    assert "manage.py" not in text
    assert "Not known until the rule matches are built." in text

    # And the count was queued on the bulk queue (run here at once): the next look has
    # the figures, without a shell or a night
    assert Rollup.objects.filter(name=RollupName.RULE_MATCHES).exists()
    export = client.get(reverse("reports-page", args=["rules"]), {**MAY, "format": "csv"})
    assert csv_rows(export)["Pricing page"][2] == "10"


def test_a_finished_rescore_has_the_rule_matches_counted_again(
    world, django_capture_on_commit_callbacks
):
    # Given matches counted once, then a live model's rescore
    from scoring.rescore_jobs import model_rescore_in_process

    call_command("reports_refresh")
    first = Rollup.objects.get().built_at

    with django_capture_on_commit_callbacks(execute=True):
        job = model_rescore_in_process(model=world["model"], reason="Rules changed")

    # Then the matches were counted again after it, from the ledger it left
    assert job.status == "done"
    assert Rollup.objects.get().built_at > first
    assert Rollup.objects.get().built_at >= job.finished_at
    live = {
        (rule_id, lead_id)
        for rule_id, lead_id in ScoreEntry.objects.filter(
            rule__isnull=False, reversal_of__isnull=True, reversals__isnull=True
        ).values_list("rule_id", "lead_id")
    }
    assert set(RuleMatch.objects.values_list("rule_id", "lead_id")) == live


def test_a_waiting_count_takes_the_later_requests_and_a_started_one_does_not(db, monkeypatch):
    from reports import rollups

    sent = []
    monkeypatch.setattr(rollups, "task_enqueue", lambda task, **kw: sent.append(task) or True)

    # Two rescores end while the count waits on the queue: one count, after both.
    assert rollups.rule_matches_refresh_request() is True
    assert rollups.rule_matches_refresh_request() is False
    assert [task.name for task in sent] == ["reports.tasks.refresh_rollups"]

    # Once it has started, it may have read the matches before a rescore that ends now:
    # that rescore has a count of its own.
    rollups.rule_matches_count_started()
    assert rollups.rule_matches_refresh_request() is True
    assert len(sent) == 2


def test_rules_page_runs_the_same_statements_whatever_the_data(client, world, marketer):
    call_command("reports_refresh")
    client.force_login(marketer)
    url = reverse("reports-page", args=["rules"])
    client.get(url, MAY)
    with CaptureQueriesContext(connection) as small:
        client.get(url, MAY)
    model, rules = world["model"], world["rules"]
    for n in range(21, 61):
        lead = add_lead(n, marketer, model, BASE + dt.timedelta(days=1, hours=n))
        award(lead, rules["Newsletter"], lead.created_at)
    call_command("reports_refresh")

    with CaptureQueriesContext(connection) as large:
        response = client.get(url, MAY)

    assert len(large) == len(small)
    rows = {r["rule"]: r for r in rule_effectiveness.rule_rows(scope(marketer), model)["rules"]}
    assert rows["Newsletter"]["matched"] == 50
    assert response.status_code == 200


def test_counts_follow_the_local_day(settings, rep, marketer):
    """A lead created late on May 31 in Berlin (still May 31 there, 21:30 UTC) is in the
    May range, one created at 23:30 UTC on April 30 (May 1 in Berlin) too; one created
    at 22:30 UTC on May 31 (June 1 in Berlin) is not."""
    settings.TIME_ZONE = "Europe/Berlin"
    model = ScoringModel.objects.create(name="Local", status="active", is_default=True)
    rule = fit_rule(model, 5, "country", "equals", name="Any")
    for n, created in enumerate(
        [
            dt.datetime(2025, 5, 31, 21, 30, tzinfo=dt.UTC),
            dt.datetime(2025, 4, 30, 23, 30, tzinfo=dt.UTC),
            dt.datetime(2025, 5, 31, 22, 30, tzinfo=dt.UTC),
        ],
        start=1,
    ):
        award(add_lead(n, rep, model, created), rule, created)
    live = live_figures(marketer, model)
    call_command("reports_refresh")

    assert figures(marketer, model) == live
    assert figures(marketer, model)["Any"][0] == 2

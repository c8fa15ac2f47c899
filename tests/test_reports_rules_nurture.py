"""Rule effectiveness's prune and re-weight lists with their evidence, the lift math on
its own, and the Nurture report, each on a world built by hand here."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from django.urls import reverse

from leads.deals import deal_save
from leads.models import Deal, Lead
from leads.stages import stage_change_record
from reports import stats
from reports.queries import nurture, rule_effectiveness
from reports.scope import ReportFilterForm, scope_from
from scoring.models import LeadScore, ScoreEntry, ScoringModel
from tests.factories import fit_rule

BASE = dt.datetime(2025, 5, 5, 9, 0, tzinfo=dt.UTC)
MAY = {"date_from": "2025-05-01", "date_to": "2025-05-31"}


def scope(user, **data):
    form = ReportFilterForm({**MAY, **data}, user=user)
    assert form.is_valid(), form.errors
    return scope_from(form)


@pytest.fixture
def twenty(db):
    """L1..L10 won, L11..L20 lost. "Pricing page" (+20) matches L9, L10 and L11..L18:
    2 of 10 won, against 8 of 10 without it. "Newsletter" (+10) matches L1..L5 and
    L11..L15: 5 of 10 either way."""
    model = ScoringModel.objects.create(name="Quarterly", status="active", is_default=True)
    pricing = fit_rule(model, 20, "country", "equals", "DE", name="Pricing page")
    newsletter = fit_rule(model, 10, "country", "equals", "DE", name="Newsletter")
    matches = {pricing: {9, 10, *range(11, 19)}, newsletter: {*range(1, 6), *range(11, 16)}}
    for n in range(1, 21):
        lead = Lead.objects.create(
            email=f"l{n}@example.com", created_at=BASE + dt.timedelta(hours=n)
        )
        LeadScore.objects.create(lead=lead, model=model, is_primary=True)
        deal_save(
            deal=Deal(
                lead=lead,
                name=f"L{n}",
                amount=100,
                status="won" if n <= 10 else "lost",
                created_at=lead.created_at,
                closed_at=lead.created_at + dt.timedelta(days=3),
            )
        )
        for rule, numbers in matches.items():
            if n in numbers:
                ScoreEntry.objects.create(
                    lead=lead,
                    model=model,
                    rule=rule,
                    kind="fit",
                    points=rule.points,
                    reason=rule.name,
                    at=lead.created_at,
                )
    return model


def test_lift_interval_on_the_log_scale():
    lift = stats.lift_with_interval(2, 10, 8, 10)

    # RR = 0.2 / 0.8; se = sqrt(1/2 - 1/10 + 1/8 - 1/10).
    se = math.sqrt(0.425)
    assert lift.value == pytest.approx(0.25)
    assert lift.low == pytest.approx(0.25 * math.exp(-1.959964 * se), rel=1e-5)
    assert lift.high == pytest.approx(0.25 * math.exp(1.959964 * se), rel=1e-5)
    assert lift.high < 1


def test_lift_without_closed_leads_on_a_side_is_unknown():
    assert stats.lift_with_interval(0, 0, 3, 5).value is None
    assert stats.roc_auc([(10, 0, 4)]) is None


def test_rules_to_prune_and_reweight_come_with_their_evidence(twenty, marketer):
    rows = {r["rule"]: r for r in rule_effectiveness.rule_rows(scope(marketer), twenty)["rules"]}

    pricing, newsletter = rows["Pricing page"], rows["Newsletter"]
    assert pricing["conversion_in"] == pytest.approx(0.2)
    assert pricing["conversion_out"] == pytest.approx(0.8)
    assert pricing["verdict"] == "reweight"
    assert pricing["evidence"].startswith("adds 20 points but its leads convert less: lift 0.25")
    assert newsletter["lift"] == pytest.approx(1)
    assert newsletter["verdict"] == "prune"
    assert "includes 1" in newsletter["evidence"]


def test_rules_page_lists_them(client, twenty, marketer):
    client.force_login(marketer)

    response = client.get(reverse("reports-page", args=["rules"]), MAY)
    prune = client.get(
        reverse("reports-page", args=["rules"]), {**MAY, "format": "csv", "table": "prune"}
    )
    reweight = client.get(
        reverse("reports-page", args=["rules"]), {**MAY, "format": "csv", "table": "reweight"}
    )

    assert response.status_code == 200
    assert "Candidates for pruning" in response.content.decode()
    assert [row.split(",")[0] for row in prune.content.decode().splitlines()[1:]] == ["Newsletter"]
    assert [row.split(",")[0] for row in reweight.content.decode().splitlines()[1:]] == [
        "Pricing page"
    ]


@pytest.fixture
def nurture_world(db):
    from nurturing.models import Enrollment, Message, Sequence, Step

    welcome = Sequence.objects.create(name="Welcome")
    first = Step.objects.create(sequence=welcome, position=1, subject="Hello")
    second = Step.objects.create(sequence=welcome, position=2, subject="Pricing")
    leads = [Lead.objects.create(email=f"n{n}@example.com", created_at=BASE) for n in range(4)]
    sent = BASE + dt.timedelta(days=1)
    for i, lead in enumerate(leads):
        enrollment = Enrollment.objects.create(lead=lead, sequence=welcome, started_at=BASE)
        Message.objects.create(
            enrollment=enrollment,
            step=first,
            lead=lead,
            status="sent",
            sent_at=sent,
            opened_at=sent if i < 3 else None,
            clicked_at=sent if i < 2 else None,
            replied_at=sent if i == 0 else None,
        )
        if i < 2:
            Message.objects.create(
                enrollment=enrollment,
                step=second,
                lead=lead,
                status="bounced" if i == 1 else "sent",
                sent_at=sent,
                unsubscribed_at=sent if i == 0 else None,
            )
    # Lead 0 reached MQL and SQL after enrolling, lead 1 MQL only; lead 2 was MQL before.
    stage_change_record(lead=leads[0], from_stage="new", to_stage="mql", at=sent)
    stage_change_record(lead=leads[0], from_stage="mql", to_stage="sql", at=sent)
    stage_change_record(lead=leads[1], from_stage="new", to_stage="mql", at=sent)
    stage_change_record(
        lead=leads[2], from_stage="new", to_stage="mql", at=BASE - dt.timedelta(days=1)
    )
    return welcome


def test_nurture_counts_per_step_and_the_share_that_reached_mql(nurture_world, marketer):
    steps = nurture.nurture_steps(scope(marketer))
    sequences = nurture.nurture_sequences(scope(marketer))

    hello, pricing = steps
    assert (hello["sent"], hello["opened"], hello["clicked"], hello["replied"]) == (4, 3, 2, 1)
    assert hello["open_rate"] == pytest.approx(3 / 4)
    assert (pricing["sent"], pricing["unsubscribed"], pricing["bounced"]) == (2, 1, 1)
    assert sequences == [
        {
            "sequence": "Welcome",
            "enrolled": 4,
            "mql": 2,
            "mql_rate": 0.5,
            "sql": 1,
            "sql_rate": 0.25,
        }
    ]


def test_nurture_page_and_csv(client, nurture_world, marketer):
    client.force_login(marketer)

    response = client.get(reverse("reports-page", args=["nurture"]), MAY)
    export = client.get(reverse("reports-page", args=["nurture"]), {**MAY, "format": "csv"})

    assert "Welcome: 50.0 % of 4 enrolled" in response.content.decode()
    assert export.content.decode().splitlines()[1] == "Welcome,1,Hello,4,3,2,1,0,0,75.0,50.0"

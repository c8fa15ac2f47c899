"""Who gets a handed-off lead: keep the owner, then the admin's rules in order."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm.models import Role, Team
from leads.assignment import owner_for
from leads.handoff_models import AssignmentKind, AssignmentRule, HandOff
from leads.models import ProductLine, Stage
from leads.stages import stage_change_record
from tests.conftest import make_user
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


def rule(kind: str, position: int = 0, **fields) -> AssignmentRule:
    return AssignmentRule.objects.create(
        name=f"{kind} {position}", kind=kind, position=position, **fields
    )


def give_leads(user, count: int, stage: str = Stage.SQL) -> None:
    for _ in range(count):
        LeadFactory(owner=user, stage=stage)


def test_current_owner_who_is_an_active_rep_is_kept(rep, other_rep):
    rule(AssignmentKind.FALLBACK, owner=other_rep)
    lead = LeadFactory(owner=rep)

    assert owner_for(lead=lead) == (rep, "kept current owner")


@pytest.mark.parametrize("who", ["inactive rep", "marketer"])
def test_current_owner_who_is_not_an_active_rep_is_replaced(who, rep, other_rep, marketer):
    owner = marketer if who == "marketer" else rep
    if who == "inactive rep":
        rep.is_active = False
        rep.save()
    rule(AssignmentKind.FALLBACK, owner=other_rep)
    lead = LeadFactory(owner=owner)

    assert owner_for(lead=lead) == (other_rep, "fallback owner")


def test_territory_rule_with_owner_matches_country(rep, other_rep):
    rule(AssignmentKind.TERRITORY, position=1, countries=["de", "AT"], owner=rep)
    rule(AssignmentKind.FALLBACK, position=2, owner=other_rep)

    assert owner_for(lead=LeadFactory(country="DE")) == (rep, "territory DE")
    assert owner_for(lead=LeadFactory(country="FR")) == (other_rep, "fallback owner")


def test_territory_rule_matches_region_case_insensitively(rep):
    rule(AssignmentKind.TERRITORY, regions=["EMEA"], owner=rep)
    lead = LeadFactory(country="", region="emea")

    assert owner_for(lead=lead) == (rep, "territory emea")


def test_territory_rule_reads_the_company_country_when_the_lead_has_none(rep):
    rule(AssignmentKind.TERRITORY, countries=["DE"], owner=rep)
    lead = LeadFactory(country="")  # the factory's company is in DE

    assert owner_for(lead=lead) == (rep, "territory DE")


def test_territory_rule_without_owner_picks_the_rep_covering_the_country(rep, other_rep):
    rep.territory_countries = ["FR"]
    rep.save()
    other_rep.territory_countries = ["DE", "AT"]
    other_rep.save()
    rule(AssignmentKind.TERRITORY)

    assert owner_for(lead=LeadFactory(country="AT")) == (other_rep, "territory AT")
    assert owner_for(lead=LeadFactory(country="FR")) == (rep, "territory FR")
    assert owner_for(lead=LeadFactory(country="US")) == (None, "no rule matched")


def test_product_line_rule_with_owner(rep, other_rep):
    fleet = ProductLine.objects.create(name="Fleet", slug="fleet")
    rule(AssignmentKind.PRODUCT_LINE, position=1, product_line=fleet, owner=other_rep)
    interested = LeadFactory(country="US")
    interested.product_interests.add(fleet)

    assert owner_for(lead=interested) == (other_rep, "product line Fleet")
    assert owner_for(lead=LeadFactory(country="US")) == (None, "no rule matched")


def test_product_line_rule_without_owner_picks_a_rep_selling_the_line(rep, other_rep):
    fleet = ProductLine.objects.create(name="Fleet", slug="fleet")
    rep.product_lines.add(fleet)
    rule(AssignmentKind.PRODUCT_LINE, product_line=fleet)
    lead = LeadFactory()
    lead.product_interests.add(fleet)

    assert owner_for(lead=lead) == (rep, "product line Fleet")


def test_round_robin_gives_the_lead_to_the_rep_with_fewest_open_leads(rep, other_rep, team):
    give_leads(rep, 3)
    give_leads(other_rep, 1)
    # Won and disqualified leads are not open: they do not weigh.
    give_leads(other_rep, 5, stage=Stage.CUSTOMER)
    rule(AssignmentKind.ROUND_ROBIN, team=team)

    assert owner_for(lead=LeadFactory()) == (other_rep, "round robin")


def test_round_robin_tie_goes_to_the_rep_waiting_longest(rep, other_rep, team):
    # Given equal loads, and rep handed a lead more recently than other_rep
    now = timezone.now()
    for owner, hours_ago in ((rep, 1), (other_rep, 5)):
        lead = LeadFactory(owner=owner, stage=Stage.SQL)
        change = stage_change_record(lead=lead, from_stage=Stage.MQL, to_stage=Stage.SQL)
        HandOff.objects.create(
            lead=lead,
            stage_change=change,
            stage=Stage.SQL,
            owner=owner,
            assigned_at=now - dt.timedelta(hours=hours_ago),
        )
    rule(AssignmentKind.ROUND_ROBIN, team=team)

    assert owner_for(lead=LeadFactory()) == (other_rep, "round robin")


def test_round_robin_stays_within_its_team_and_skips_inactive_reps(rep, other_rep, team):
    south = Team.objects.create(name="South")
    southern = make_user("rep3", Role.REP, team=south)
    idle = make_user("rep4", Role.REP, team=south, is_active=False)
    give_leads(rep, 1)
    rule(AssignmentKind.ROUND_ROBIN, team=south)

    assert owner_for(lead=LeadFactory()) == (southern, "round robin")
    assert idle.pk != southern.pk


def test_round_robin_ignores_people_who_are_not_reps(manager, marketer, team):
    rule(AssignmentKind.ROUND_ROBIN, team=team)

    assert owner_for(lead=LeadFactory()) == (None, "no rule matched")


def test_rules_run_by_position(rep, other_rep):
    rule(AssignmentKind.TERRITORY, position=5, countries=["DE"], owner=rep)
    rule(AssignmentKind.FALLBACK, position=1, owner=other_rep)

    assert owner_for(lead=LeadFactory(country="DE")) == (other_rep, "fallback owner")


def test_inactive_rule_is_skipped(rep, other_rep):
    rule(AssignmentKind.TERRITORY, position=1, countries=["DE"], owner=rep, active=False)
    rule(AssignmentKind.FALLBACK, position=2, owner=other_rep)

    assert owner_for(lead=LeadFactory(country="DE")) == (other_rep, "fallback owner")


def test_rule_whose_owner_left_is_skipped(rep, other_rep):
    rep.is_active = False
    rep.save()
    rule(AssignmentKind.TERRITORY, position=1, countries=["DE"], owner=rep)
    rule(AssignmentKind.FALLBACK, position=2, owner=other_rep)

    assert owner_for(lead=LeadFactory(country="DE")) == (other_rep, "fallback owner")


def test_full_order_keep_territory_product_round_robin_fallback(rep, other_rep, manager, team):
    fleet = ProductLine.objects.create(name="Fleet", slug="fleet")
    third = make_user("rep3", Role.REP, team=team)
    give_leads(rep, 2)
    give_leads(other_rep, 2)
    rule(AssignmentKind.TERRITORY, position=1, countries=["DE"], owner=rep)
    rule(AssignmentKind.PRODUCT_LINE, position=2, product_line=fleet, owner=other_rep)
    rule(AssignmentKind.ROUND_ROBIN, position=3, team=team)
    rule(AssignmentKind.FALLBACK, position=4, owner=manager)
    fleet_lead = LeadFactory(country="US")
    fleet_lead.product_interests.add(fleet)

    assert owner_for(lead=LeadFactory(country="DE", owner=third)) == (third, "kept current owner")
    assert owner_for(lead=LeadFactory(country="DE")) == (rep, "territory DE")
    assert owner_for(lead=fleet_lead) == (other_rep, "product line Fleet")
    assert owner_for(lead=LeadFactory(country="US")) == (third, "round robin")
    team.members.update(is_active=False)
    assert owner_for(lead=LeadFactory(country="US")) == (None, "no rule matched")


def test_fallback_catches_what_no_rule_matched(manager):
    rule(AssignmentKind.FALLBACK, owner=manager)

    assert owner_for(lead=LeadFactory(country="US")) == (manager, "fallback owner")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": AssignmentKind.FALLBACK}, "owner"),
        ({"kind": AssignmentKind.TERRITORY, "countries": "DE"}, "countries"),
        ({"kind": AssignmentKind.TERRITORY, "regions": [1]}, "regions"),
    ],
)
def test_invalid_rule_is_refused_with_a_field_error(fields, field):
    with pytest.raises(ValidationError) as refused:
        AssignmentRule(name="x", **fields).full_clean()

    assert field in refused.value.message_dict


def test_territory_rule_with_owner_needs_an_area(rep):
    with pytest.raises(ValidationError) as refused:
        AssignmentRule(name="x", kind=AssignmentKind.TERRITORY, owner=rep).full_clean()

    assert "countries" in refused.value.message_dict


def test_admin_edits_rule_order_in_the_list(client, admin_user, rep, other_rep):
    first = rule(AssignmentKind.FALLBACK, position=1, owner=rep)
    second = rule(AssignmentKind.FALLBACK, position=2, owner=other_rep)
    client.force_login(admin_user)

    response = client.post(
        "/admin/leads/assignmentrule/",
        {
            "form-TOTAL_FORMS": "2",
            "form-INITIAL_FORMS": "2",
            "form-0-id": first.pk,
            "form-0-position": "9",
            "form-0-active": "on",
            "form-1-id": second.pk,
            "form-1-position": "2",
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.position, first.active) == (9, True)
    assert (second.position, second.active) == (2, False)
    assert owner_for(lead=LeadFactory()) == (rep, "fallback owner")


def test_admin_refuses_a_fallback_rule_without_owner(client, admin_user):
    client.force_login(admin_user)

    response = client.post(
        "/admin/leads/assignmentrule/add/",
        {
            "name": "Catch all",
            "kind": "fallback",
            "position": "1",
            "active": "on",
            "countries": "[]",
            "regions": "[]",
        },
    )

    assert response.status_code == 200
    assert "Choose the fallback owner." in response.content.decode()
    assert not AssignmentRule.objects.exists()


def test_manager_can_open_the_rules_and_a_rep_cannot(client, manager, rep):
    manager.is_staff = True
    manager.save()
    rep.is_staff = True
    rep.save()

    client.force_login(manager)
    assert client.get("/admin/leads/assignmentrule/").status_code == 200
    client.force_login(rep)
    assert client.get("/admin/leads/assignmentrule/").status_code == 403


# --- Key accounts: routing by the company's account score ------------------------------


def _scored_company(visits: int):
    """A company whose two people visited the pricing page ``visits`` times each, scored
    by a live model (real-time scoring sums the company's account score)."""
    from leads.models import Activity, ActivityType
    from scoring.lead_scoring import leads_score
    from scoring.models import ScoringModel
    from tests.factories import CompanyFactory, active_model, page_rule

    model = ScoringModel.objects.filter(is_default=True).first()
    if model is None:
        model = active_model(surge_points=0)
        page_rule(model, 10, "/pricing")
    company = CompanyFactory()
    people = [LeadFactory(company=company, stage=Stage.MQL) for _ in range(2)]
    for lead in people:
        for _ in range(visits):
            Activity.objects.create(
                lead=lead, type=ActivityType.PAGE_VIEW, url="https://hotlist.example/pricing"
            )
    leads_score(lead_ids=[lead.pk for lead in people])
    return company, people


def test_a_key_account_rule_hands_the_leads_of_high_scoring_companies_to_its_owner(
    rep, other_rep, django_capture_on_commit_callbacks
):
    from leads.stages import lead_move_to_stage
    from scoring.models import AccountScore

    key, key_people = _scored_company(visits=3)
    small, small_people = _scored_company(visits=1)
    key_score = AccountScore.objects.get(company=key).score
    small_score = AccountScore.objects.get(company=small).score
    assert small_score < 50 <= key_score
    rule(AssignmentKind.ACCOUNT, position=1, min_account_score=50, owner=rep)
    rule(AssignmentKind.FALLBACK, position=2, owner=other_rep)
    without_company = LeadFactory(stage=Stage.MQL)

    with django_capture_on_commit_callbacks(execute=True):
        for lead in (key_people[0], small_people[0], without_company):
            lead_move_to_stage(lead_id=lead.pk, stage=Stage.SQL)

    handed = {h.lead_id: (h.owner, h.assigned_by) for h in HandOff.objects.all()}
    assert handed == {
        key_people[0].pk: (rep, f"key account (account score {key_score})"),
        small_people[0].pk: (other_rep, "fallback owner"),
        without_company.pk: (other_rep, "fallback owner"),
    }


def test_a_key_account_rule_without_owner_picks_the_least_loaded_rep_of_its_team(
    rep, other_rep, team
):
    for person in (rep, other_rep):
        person.team = team
        person.save(update_fields=["team"])
    give_leads(rep, 2)
    _, people = _scored_company(visits=3)
    rule(AssignmentKind.ACCOUNT, min_account_score=1, team=team)

    owner, why = owner_for(lead=people[0])

    assert owner == other_rep
    assert why.startswith("key account (account score ")


def test_a_key_account_rule_matches_nothing_without_a_scoring_app(rep, other_rep):
    from leads.account_scores import account_score_provider_set
    from scoring.account_selectors import lead_company_account_score

    _, people = _scored_company(visits=3)
    rule(AssignmentKind.ACCOUNT, position=1, min_account_score=1, owner=rep)
    rule(AssignmentKind.FALLBACK, position=2, owner=other_rep)
    account_score_provider_set(None)
    try:
        assert owner_for(lead=people[0]) == (other_rep, "fallback owner")
    finally:
        account_score_provider_set(lead_company_account_score)


def test_the_admin_refuses_a_key_account_rule_without_its_score(client, admin_user, rep):
    client.force_login(admin_user)
    form = {
        "name": "Enterprise",
        "kind": "account",
        "position": "1",
        "active": "on",
        "countries": "[]",
        "regions": "[]",
        "owner": rep.pk,
    }

    response = client.post("/admin/leads/assignmentrule/add/", form)

    assert response.status_code == 200
    assert "Give the account score a key account reaches." in response.content.decode()
    assert not AssignmentRule.objects.exists()

    response = client.post("/admin/leads/assignmentrule/add/", {**form, "min_account_score": "60"})

    assert response.status_code == 302
    assert AssignmentRule.objects.get().min_account_score == 60

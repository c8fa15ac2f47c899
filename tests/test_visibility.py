"""Who sees which leads (``Lead.objects.visible_to``), and the role groups behind it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser, Group

from crm.models import Role, Team, User
from crm.roles import permissions_for
from leads.deals import deal_save
from leads.models import Deal, Lead
from leads.permissions import deals_visible_to
from tests.conftest import make_user
from tests.factories import LeadFactory

ROOT = Path(__file__).resolve().parent.parent

EVERY_LEAD = {"rep", "other_rep", "far_rep", "inactive", "unassigned"}

# persona -> the leads (named after their owner) that persona may see
EXPECTED = {
    "admin": EVERY_LEAD,
    "marketer": EVERY_LEAD,
    "manager": {"rep", "other_rep", "inactive", "unassigned"},
    "far_manager": {"far_rep", "unassigned"},
    "rep": {"rep", "unassigned"},
    "other_rep": {"other_rep", "unassigned"},
    "far_rep": {"far_rep", "unassigned"},
    "outsider": set(),
    "inactive": set(),
    "anonymous": set(),
}


@pytest.fixture
def people(admin_user, marketer, manager, rep, other_rep, outsider) -> dict:
    """The personas, including a second team and a rep who has left."""
    far_team = Team.objects.create(name="South")
    far_manager = make_user("far_manager", Role.MANAGER, team=far_team)
    far_team.manager = far_manager
    far_team.save(update_fields=["manager"])
    return {
        "admin": admin_user,
        "marketer": marketer,
        "manager": manager,
        "far_manager": far_manager,
        "rep": rep,
        "other_rep": other_rep,
        "far_rep": make_user("far_rep", Role.REP, team=far_team),
        "outsider": outsider,
        "inactive": make_user("gone", Role.REP, team=rep.team, is_active=False),
        "anonymous": AnonymousUser(),
    }


@pytest.fixture
def leads(people) -> dict[str, Lead]:
    owners = {name: people[name] for name in ("rep", "other_rep", "far_rep", "inactive")}
    named = {name: LeadFactory(owner=owner) for name, owner in owners.items()}
    named["unassigned"] = LeadFactory(owner=None)
    return named


@pytest.mark.parametrize("persona", EXPECTED)
def test_each_role_sees_exactly_its_leads(people, leads, persona):
    # Given leads owned across two teams, one by a rep who left, and one in the pool
    by_pk = {lead.pk: name for name, lead in leads.items()}

    # When the persona's visible leads are listed
    visible = Lead.objects.visible_to(people[persona])

    # Then they are exactly the expected ones, each once
    names = [by_pk[pk] for pk in visible.values_list("pk", flat=True)]
    assert sorted(names) == sorted(EXPECTED[persona])


def test_outsider_sees_nothing_even_as_staff(people, leads):
    outsider = people["outsider"]
    outsider.is_staff = True
    outsider.save(update_fields=["is_staff"])

    assert not Lead.objects.visible_to(User.objects.get(pk=outsider.pk)).exists()


def test_rep_stops_seeing_lead_once_it_is_given_to_another_rep(people, leads):
    lead = leads["unassigned"]
    lead.owner = people["other_rep"]
    lead.save(update_fields=["owner"])

    assert not Lead.objects.visible_to(people["rep"]).filter(pk=lead.pk).exists()
    assert Lead.objects.visible_to(people["other_rep"]).filter(pk=lead.pk).exists()


def test_visible_to_composes_with_other_filters(people, leads):
    leads["rep"].score = 90
    leads["rep"].save(update_fields=["score"])

    hottest = Lead.objects.visible_to(people["rep"]).open().hottest()

    assert list(hottest) == [leads["rep"], leads["unassigned"]]


@pytest.mark.parametrize("role", list(Role))
def test_role_group_exists_after_migrate_with_its_permissions(db, role):
    group = Group.objects.get(name=role.label)

    assert set(group.permissions.all()) == set(permissions_for(role))


@pytest.mark.parametrize(
    ("persona", "perm", "expected"),
    [
        ("rep", "leads.view_lead", True),
        ("rep", "leads.change_lead", True),
        ("rep", "leads.delete_lead", False),
        ("rep", "leads.delete_activity", False),
        ("rep", "leads.change_stagechange", False),
        ("rep", "leads.change_customfielddefinition", False),
        ("manager", "leads.delete_lead", True),
        ("manager", "leads.change_stagechange", False),
        ("manager", "crm.change_team", False),
        ("manager", "crm.change_user", False),
        ("marketer", "leads.delete_lead", True),
        ("marketer", "leads.change_customfielddefinition", True),
        ("marketer", "leads.change_deal", False),
        ("marketer", "crm.view_user", False),
        ("outsider", "leads.view_lead", False),
        ("admin", "crm.delete_user", True),
    ],
)
def test_role_permissions(people, persona, perm, expected):
    user = User.objects.get(pk=people[persona].pk)  # a fresh permission cache

    assert user.has_perm(perm) is expected


def test_user_role_is_the_strongest_group_held(db):
    user = make_user("both", Role.REP)
    user.groups.add(Group.objects.get(name=Role.MARKETER.label))

    assert User.objects.get(pk=user.pk).role == Role.MARKETER
    assert User.objects.get(pk=user.pk).sees_all_leads


@pytest.mark.slow
def test_role_groups_get_permissions_of_the_app_migrated_last(tmp_path):
    # Given settings that install the leads app after every other app
    (tmp_path / "leads_last.py").write_text(
        "from crm.settings import *  # noqa: F403\n"
        "INSTALLED_APPS = [a for a in INSTALLED_APPS if a != 'leads'] + ['leads']  # noqa: F405\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "leads_last",
        "HOTLIST_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
    }

    def manage(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout

    # When a fresh database is migrated once
    manage("migrate", "--no-input", "-v", "0")

    # Then the rep group already holds its leads permissions
    codenames = json.loads(
        manage(
            "shell",
            "-v",
            "0",
            "-c",
            "import json; from django.contrib.auth.models import Group; "
            "print(json.dumps(sorted(Group.objects.get(name='Sales rep')"
            ".permissions.values_list('codename', flat=True))))",
        )
    )
    assert "view_lead" in codenames
    assert "delete_lead" not in codenames


@pytest.mark.parametrize("persona", EXPECTED)
def test_deals_are_seen_exactly_with_their_leads(people, leads, persona):
    """``deals_visible_to`` says the rule of ``visible_to`` of the deal's lead's owner
    (``owner_visibility``), for the deal board's sake: the same deals, for everyone."""
    for lead in leads.values():
        deal_save(deal=Deal(lead=lead, name=f"Deal of {lead.pk}"))
    user = people[persona]

    seen = set(deals_visible_to(user).values_list("lead_id", flat=True))

    assert seen == set(Lead.objects.visible_to(user).values_list("pk", flat=True))
    assert {name for name, lead in leads.items() if lead.pk in seen} == EXPECTED[persona]

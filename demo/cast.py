"""Who the demo world belongs to: the users, their team, product lines, territories
(assignment rules) and custom fields, created once and reused."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group

from crm.models import Role, Team, User
from demo.catalogue import CRM_IN_USE, LOST_REASONS, PRODUCT_LINES
from demo.config import DEMO_PASSWORD
from leads.custom_fields import CustomFieldDefinition, FieldType
from leads.deals import DEFAULT_LOST_REASONS, deal_pipeline_ensure
from leads.handoff_models import AssignmentKind, AssignmentRule
from leads.models import (
    ProductLine,
)


@dataclass(frozen=True)
class DemoRep:
    id: int
    username: str
    countries: tuple[str, ...]


@dataclass(frozen=True)
class DemoCast:
    """The people and product lines the generated rows point at."""

    marketer_id: int
    reps: tuple[DemoRep, ...]
    products: dict[str, int]  # slug -> id
    deal_stages: tuple[int, ...] = ()  # ids, in the pipeline's order


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: Role
    first_name: str
    last_name: str
    countries: tuple[str, ...] = ()
    products: tuple[str, ...] = ()


DEMO_USERS = (
    DemoUser("admin", Role.ADMIN, "Ada", "Admin"),
    DemoUser("marketer", Role.MARKETER, "Mia", "Marketer"),
    DemoUser("manager", Role.MANAGER, "Max", "Manager"),
    DemoUser(
        "rep1",
        Role.REP,
        "Rita",
        "Rep",
        ("DE", "AT", "CH", "PL", "SE", "DK"),
        ("hotlist-crm", "hotlist-analytics"),
    ),
    DemoUser(
        "rep2",
        Role.REP,
        "Ravi",
        "Rep",
        ("GB", "IE", "US", "FR", "NL", "ES", "IT"),
        ("hotlist-crm", "hotlist-enterprise"),
    ),
)
DEMO_TEAM = "Team North"

CUSTOM_FIELDS = (
    {
        "key": "fleet_size",
        "label": "Fleet size",
        "field_type": FieldType.INTEGER,
        "min_value": Decimal(0),
        "help_text": "Vehicles the company runs.",
    },
    {
        "key": "crm_in_use",
        "label": "CRM in use",
        "field_type": FieldType.CHOICE,
        "choices": list(CRM_IN_USE),
        "help_text": "What the lead works with today.",
    },
)


def demo_cast_ensure() -> DemoCast:
    """Create (or find) the demo users, their team, the product lines, custom fields and
    the deal pipeline (the default stages when there are none, the demo's lost reasons).

    Idempotent: users are found by username and keep an existing password; new
    ones get ``DEMO_PASSWORD``.
    """
    products = {
        slug: ProductLine.objects.get_or_create(slug=slug, defaults={"name": name})[0]
        for slug, name, _ in PRODUCT_LINES
    }
    for spec in CUSTOM_FIELDS:
        key = spec["key"]
        CustomFieldDefinition.objects.get_or_create(
            key=key, defaults={k: v for k, v in spec.items() if k != "key"}
        )
    users = {spec.username: _demo_user_ensure(spec, products) for spec in DEMO_USERS}
    team, _ = Team.objects.get_or_create(name=DEMO_TEAM, defaults={"manager": users["manager"]})
    if team.manager_id is None:
        team.manager = users["manager"]
        team.save(update_fields=["manager"])
    for username in ("manager", "rep1", "rep2"):
        users[username].team = team
        users[username].save(update_fields=["team"])
    _assignment_rules_ensure(team, users["manager"])
    stages = deal_pipeline_ensure(lost_reasons=(*DEFAULT_LOST_REASONS, *LOST_REASONS))
    reps = tuple(
        DemoRep(users[s.username].pk, s.username, s.countries)
        for s in DEMO_USERS
        if s.role == Role.REP
    )
    return DemoCast(
        marketer_id=users["marketer"].pk,
        reps=reps,
        products={slug: p.pk for slug, p in products.items()},
        deal_stages=tuple(stage.pk for stage in stages),
    )


def _assignment_rules_ensure(team: Team, manager: User) -> None:
    """The hand-off's starter rules: each rep's own territory first, then round robin in
    the team, then the manager. Left alone when the admin has rules already."""
    if AssignmentRule.objects.exists():
        return
    AssignmentRule.objects.bulk_create(
        [
            AssignmentRule(
                name="Rep whose territory covers the lead's country",
                kind=AssignmentKind.TERRITORY,
                position=10,
            ),
            AssignmentRule(
                name=f"Round robin in {team.name}",
                kind=AssignmentKind.ROUND_ROBIN,
                team=team,
                position=20,
            ),
            AssignmentRule(
                name="The sales manager takes the rest",
                kind=AssignmentKind.FALLBACK,
                owner=manager,
                position=30,
            ),
        ]
    )


@functools.cache
def _demo_password_hash() -> str:
    """One hash for every demo user: hashing is slow on purpose, and the password public."""
    return make_password(DEMO_PASSWORD)


def _demo_user_ensure(spec: DemoUser, products: dict[str, ProductLine]) -> User:
    user, created = User.objects.get_or_create(
        username=spec.username,
        defaults={
            "first_name": spec.first_name,
            "last_name": spec.last_name,
            "email": f"{spec.username}@hotlist.example",
            "is_staff": spec.role != Role.REP,
            "is_superuser": spec.role == Role.ADMIN,
            "territory_countries": list(spec.countries),
        },
    )
    if created:
        user.password = _demo_password_hash()
        user.save(update_fields=["password"])
    if spec.role != Role.ADMIN:
        user.groups.add(Group.objects.get_or_create(name=spec.role.label)[0])
    if spec.products:
        user.product_lines.add(*(products[slug] for slug in spec.products))
    return user

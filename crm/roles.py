"""The role groups and the model permissions each one holds.

Groups are kept in step with this table after every ``migrate`` so that a new
permission reaches existing installations without a hand-written migration.
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS

from .models import Role

_ALL = ("add", "change", "delete", "view")

# app_label -> model -> actions, per role.
ROLE_PERMISSIONS: dict[Role, dict[str, dict[str, tuple[str, ...]]]] = {
    Role.REP: {
        "leads": {
            "lead": ("add", "change", "view"),
            "company": ("add", "change", "view"),
            "activity": ("add", "view"),
            "deal": ("add", "change", "view"),
            "task": ("add", "change", "view"),
            "note": ("add", "change", "view"),
            "stagechange": ("view",),
            "handoff": ("view", "change"),
            "leadrating": ("add", "change", "view"),
        },
        # Saved views of the leads list: each person's own (``workspace.saved_views``).
        "workspace": {"savedview": ("change", "delete", "view")},
    },
    Role.MANAGER: {
        "leads": {
            "lead": _ALL,
            "company": _ALL,
            "activity": ("add", "view"),
            "deal": _ALL,
            "task": _ALL,
            "note": _ALL,
            "stagechange": ("view",),
            "handoff": ("view", "change"),
            # Routing rules pick owners for every team's hand-offs: admins set them.
            "assignmentrule": ("view",),
            "leadrating": ("add", "change", "view"),
            # Duplicates: the review queue and the merges of their teams' leads, and of
            # the companies that carry only leads in their view.
            "duplicatepair": ("view", "change"),
            "leadmerge": ("view",),
            # The deal pipeline's stages and lost reasons: admins and marketers set them.
            "dealstage": ("view",),
            "lostreason": ("view",),
            "companyduplicatepair": ("view", "change"),
            "companymerge": ("view",),
        },
        # Teams and their members are set by admins; a manager reads their own.
        "crm": {"team": ("view",), "user": ("view",)},
        "workspace": {"savedview": ("change", "delete", "view")},
    },
    Role.MARKETER: {
        "leads": {
            "lead": _ALL,
            "company": _ALL,
            "activity": ("add", "view"),
            "deal": ("view",),
            "task": ("view",),
            "note": ("view",),
            "stagechange": ("view",),
            "customfielddefinition": _ALL,
            "productline": _ALL,
            # The deal pipeline: its stages (probability, rotting) and lost reasons.
            "dealstage": _ALL,
            "lostreason": _ALL,
            "webform": _ALL,
            "trackingkey": _ALL,
            "trackedevent": _ALL,
            "trackingidentity": ("view",),
            "pendingevent": ("view",),
            "handoff": ("view",),
            "assignmentrule": ("view",),
            "leadrating": ("view",),
            # Keeping the data clean: duplicates, their merges, the detection threshold.
            "duplicatepair": ("view", "change"),
            "duplicatesettings": ("view", "change"),
            "leadmerge": ("view",),
            "companyduplicatepair": ("view", "change"),
            "companymerge": ("view",),
        },
        "scoring": {"*": _ALL},
        "nurturing": {"*": _ALL},
        "reports": {"campaign": _ALL, "digestpreference": ("view",)},
        "workspace": {"savedview": ("change", "delete", "view")},
    },
    Role.ADMIN: {
        "leads": {"*": _ALL},
        "scoring": {"*": _ALL},
        "nurturing": {"*": _ALL},
        "reports": {"*": _ALL},
        "crm": {"*": _ALL},
        "workspace": {"*": _ALL},
        "auth": {"group": _ALL},
    },
}


def permissions_for(role: Role) -> list[Permission]:
    wanted = []
    for app_label, models in ROLE_PERMISSIONS[role].items():
        for model, actions in models.items():
            perms = Permission.objects.filter(content_type__app_label=app_label)
            if model != "*":
                perms = perms.filter(content_type__model=model)
            codenames = [p for p in perms if p.codename.split("_", 1)[0] in actions]
            wanted.extend(codenames)
    return wanted


def sync_role_groups(
    sender: AppConfig | None = None, using: str = DEFAULT_DB_ALIAS, **kwargs: Any
) -> None:
    """Create the role groups and set their permissions (a ``post_migrate`` receiver)."""
    if sender is not None:
        # crm is installed before django.contrib.auth, so for each app this receiver runs
        # before auth's own create_permissions: without this, the permissions of the app
        # migrated last would never reach a group on a fresh database.
        create_permissions(sender, verbosity=0, using=using, apps=kwargs.get("apps", global_apps))
    for role in Role:
        group, _ = Group.objects.get_or_create(name=role.label)
        group.permissions.set(permissions_for(role))

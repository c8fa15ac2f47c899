"""Shared fixtures: personas, service requirements and test-speed settings.

Tests that need PostgreSQL, Redis or a real worker carry a marker. Off CI a missing
service skips them with the reason; under ``CI=true`` it fails them, so CI can never
pass by silently skipping what it was meant to prove.
"""

from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import Group

from crm.celery import app as celery_app
from crm.models import Role, Team, User

IN_CI = os.environ.get("CI") == "true"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required services must be present)")
    pytest.skip(reason)


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(autouse=True)
def _service_markers(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("postgres"):
        from django.db import connection

        require(connection.vendor == "postgresql", "needs PostgreSQL (set DATABASE_URL)")
    if request.node.get_closest_marker("redis") or request.node.get_closest_marker("worker"):
        require(redis_available(), f"needs Redis at {REDIS_URL}")


@pytest.fixture(autouse=True)
def _fast_settings(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture(autouse=True, scope="session")
def _eager_celery() -> None:
    """Tasks run in-process unless a test starts a real worker."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


def make_user(username: str, role: Role | None, **fields) -> User:
    user = User.objects.create_user(
        username=username, password="pw", email=f"{username}@example.com", **fields
    )
    if role is not None:
        user.groups.add(Group.objects.get(name=role.label))
    return user


@pytest.fixture
def team(db) -> Team:
    return Team.objects.create(name="North")


@pytest.fixture
def manager(team) -> User:
    user = make_user("manager", Role.MANAGER, team=team)
    team.manager = user
    team.save(update_fields=["manager"])
    return user


@pytest.fixture
def rep(team) -> User:
    return make_user("rep1", Role.REP, team=team)


@pytest.fixture
def other_rep(team) -> User:
    return make_user("rep2", Role.REP, team=team)


@pytest.fixture
def marketer(db) -> User:
    return make_user("marketer", Role.MARKETER, is_staff=True)


@pytest.fixture
def admin_user(db) -> User:
    return User.objects.create_superuser("admin", "admin@example.com", "pw")


@pytest.fixture
def outsider(db) -> User:
    """Signed in, but holds no role: must see and change nothing."""
    return make_user("outsider", None)

"""Settings come from the environment; bad or unsafe values are refused."""

from __future__ import annotations

import importlib.util
import os
import secrets
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from django.core.exceptions import ImproperlyConfigured

from crm import env
from crm import settings as crm_settings

ROOT = Path(__file__).resolve().parent.parent

# Every variable the settings read; each test starts from none of them.
SETTINGS_ENV = [
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "CELERY_TASK_ALWAYS_EAGER",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "EMAIL_BACKEND",
    "EMAIL_HOST",
    "HEARTBEAT_SECONDS",
    "HEARTBEAT_STALE_SECONDS",
    "CACHE_URL",
    "REDIS_CONNECT_TIMEOUT",
    "REDIS_TIMEOUT",
]

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "hotlist.example",
}


def load_settings(monkeypatch, tmp_path, **env: str) -> ModuleType:
    """``crm/settings.py`` executed afresh under ``env``, apart from the running settings."""
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOTLIST_VAR_DIR", str(tmp_path / "var"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("hotlist_settings_probe", crm_settings.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def manage(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``manage.py`` in a new interpreter, so the settings are read from ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV}
    base.update(HOTLIST_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="crm.settings")
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_refuses_development_key_when_debug_is_off(tmp_path):
    result = manage(tmp_path, "check", DEBUG="false")

    assert result.returncode == 1
    assert "crm.E001" in result.stderr


def test_check_passes_with_a_real_key_when_debug_is_off(tmp_path):
    result = manage(tmp_path, "check", DEBUG="false", SECRET_KEY=PRODUCTION["SECRET_KEY"])

    assert result.returncode == 0, result.stderr
    assert "crm.E001" not in result.stdout + result.stderr


def test_check_accepts_development_key_while_debugging(tmp_path):
    result = manage(tmp_path, "check", DEBUG="true")

    assert result.returncode == 0, result.stderr


def test_deploy_check_is_clean_with_production_environment(tmp_path):
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_deploy_check_warns_about_laptop_defaults(tmp_path):
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 1
    for warning in ("security.W018", "security.W008", "security.W012"):
        assert warning in result.stderr


def test_bad_boolean_stops_manage_py(tmp_path):
    result = manage(tmp_path, "check", DEBUG="maybe")

    assert result.returncode != 0
    assert "DEBUG must be true or false, not 'maybe'" in result.stderr


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        (" Yes ", True),
        ("ON", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("Off", False),
        ("", "default"),
        (None, "default"),
    ],
)
def test_env_bool_reads_common_spellings(monkeypatch, raw, expected):
    monkeypatch.delenv("HOTLIST_FLAG", raising=False)
    if raw is not None:
        monkeypatch.setenv("HOTLIST_FLAG", raw)

    for default in (True, False):
        want = default if expected == "default" else expected
        assert env.env_bool("HOTLIST_FLAG", default) is want


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled", "tru"])
def test_env_bool_refuses_anything_else(monkeypatch, raw):
    monkeypatch.setenv("HOTLIST_FLAG", raw)

    with pytest.raises(ImproperlyConfigured, match="HOTLIST_FLAG"):
        env.env_bool("HOTLIST_FLAG", False)


def test_env_int_reads_whole_numbers_and_refuses_others(monkeypatch):
    monkeypatch.setenv("HOTLIST_N", "42")
    assert env.env_int("HOTLIST_N", 1) == 42

    monkeypatch.setenv("HOTLIST_N", "")
    assert env.env_int("HOTLIST_N", 1) == 1

    monkeypatch.setenv("HOTLIST_N", "4.5")
    with pytest.raises(ImproperlyConfigured, match="HOTLIST_N"):
        env.env_int("HOTLIST_N", 1)


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("HOTLIST_HOSTS", " a.example, b.example,, ")

    assert env.env_list("HOTLIST_HOSTS", ["x"]) == ["a.example", "b.example"]


def test_env_list_set_but_empty_means_empty(monkeypatch):
    monkeypatch.setenv("HOTLIST_HOSTS", "")

    assert env.env_list("HOTLIST_HOSTS", ["x"]) == []


def test_bad_heartbeat_interval_is_refused(monkeypatch, tmp_path):
    with pytest.raises(ImproperlyConfigured, match="HEARTBEAT_SECONDS"):
        load_settings(monkeypatch, tmp_path, HEARTBEAT_SECONDS="often")


def test_a_redis_broker_and_cache_give_up_on_redis_after_the_redis_timeouts(monkeypatch, tmp_path):
    settings = load_settings(
        monkeypatch,
        tmp_path,
        CELERY_BROKER_URL="redis://redis.internal:6379/0",
        REDIS_CONNECT_TIMEOUT="0.25",
        REDIS_TIMEOUT="3",
    )

    expected = {"socket_connect_timeout": 0.25, "socket_timeout": 3.0}
    assert settings.CACHES["default"]["LOCATION"] == "redis://redis.internal:6379/0"
    assert settings.CACHES["default"]["OPTIONS"] == expected
    assert expected.items() <= settings.CELERY_BROKER_TRANSPORT_OPTIONS.items()
    assert settings.CELERY_BROKER_CONNECTION_TIMEOUT == 0.25


@pytest.mark.parametrize(
    "env",
    [{"REDIS_CONNECT_TIMEOUT": "soon"}, {"REDIS_CONNECT_TIMEOUT": "0"}, {"REDIS_TIMEOUT": "1"}],
)
def test_bad_redis_timeouts_are_refused(monkeypatch, tmp_path, env):
    with pytest.raises(ImproperlyConfigured, match="REDIS_"):
        load_settings(monkeypatch, tmp_path, **env)


def test_laptop_defaults_use_sqlite_under_var_dir(monkeypatch, tmp_path):
    settings = load_settings(monkeypatch, tmp_path)

    database = settings.DATABASES["default"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(database["NAME"]) == tmp_path / "var" / "hotlist.sqlite3"
    assert "journal_mode=WAL" in database["OPTIONS"]["init_command"]
    assert settings.CELERY_BROKER_URL == "filesystem://"
    assert (tmp_path / "var" / "broker" / "queue").is_dir()
    assert settings.DEBUG is True


def test_database_url_selects_postgresql(monkeypatch, tmp_path):
    settings = load_settings(
        monkeypatch, tmp_path, DATABASE_URL="postgres://hotlist:pw@db.internal:5433/hotlist"
    )

    database = settings.DATABASES["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == (
        "db.internal",
        5433,
        "hotlist",
    )
    assert database["CONN_MAX_AGE"] == 60
    assert "init_command" not in database.get("OPTIONS", {})


def test_redis_broker_url_replaces_the_embedded_broker(monkeypatch, tmp_path):
    settings = load_settings(monkeypatch, tmp_path, CELERY_BROKER_URL="redis://cache:6379/1")

    assert settings.CELERY_BROKER_URL == "redis://cache:6379/1"
    assert "data_folder_in" not in settings.CELERY_BROKER_TRANSPORT_OPTIONS


def test_debug_off_turns_on_production_security(monkeypatch, tmp_path):
    settings = load_settings(monkeypatch, tmp_path, **PRODUCTION)

    assert settings.DEBUG is False
    assert settings.ALLOWED_HOSTS == ["hotlist.example"]
    assert settings.SECURE_SSL_REDIRECT is True
    assert settings.SESSION_COOKIE_SECURE is True
    assert settings.CSRF_COOKIE_SECURE is True
    assert settings.SECURE_HSTS_SECONDS >= 31_536_000
    assert "Manifest" in settings.STORAGES["staticfiles"]["BACKEND"]


def test_heartbeat_interval_is_read_from_the_environment(monkeypatch, tmp_path):
    settings = load_settings(monkeypatch, tmp_path, HEARTBEAT_SECONDS="2")

    assert settings.CELERY_BEAT_SCHEDULE["worker-heartbeat"]["schedule"] == 2

"""Racing form posts for one new email, on a real PostgreSQL server."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client, override_settings

from leads.models import Activity, ActivityType, Lead, WebForm
from tests.conftest import free_port
from tests.test_concurrency_pg import race

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@override_settings(FORM_RATE_PER_IP=100, FORM_RATE_PER_FORM=100)
def test_twenty_simultaneous_posts_for_one_new_email_make_one_lead():
    # Given a form and twenty posts for a person not yet in the CRM, in several spellings
    form = WebForm.objects.create(name="Demo request")
    spellings = ["ada@fleet.example", "Ada@Fleet.example", "ADA@FLEET.EXAMPLE", "ada@FLEET.example"]

    def post(n: int):
        def job() -> int:
            body = {"email": spellings[n % 4], "first_name": f"Ada {n}"}
            response = Client().post(f"/f/{form.key}/", body, content_type="application/json")
            return response.status_code

        return job

    # When all twenty arrive at once
    outcomes = race(*(post(n) for n in range(20)))

    # Then every post was accepted, one lead exists, and each post left its activity
    assert outcomes == [202] * 20, outcomes
    lead = Lead.objects.get()
    assert lead.email == "ada@fleet.example"
    assert Activity.objects.filter(lead=lead, type=ActivityType.FORM_SUBMISSION).count() == 20


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_hundred_simultaneous_http_posts_for_one_new_email_make_one_lead(tmp_path):
    # Given a form, served by gunicorn as in production, on the test database
    form = WebForm.objects.create(name="Demo request")
    server = f"http://127.0.0.1:{free_port()}"
    with gunicorn(server, tmp_path):
        # When a hundred browsers post it for the same new person at once, in four spellings
        spellings = [
            "ada@fleet.example",
            "Ada@Fleet.example",
            "ADA@FLEET.EXAMPLE",
            "ada@FLEET.example",
        ]

        def post(n: int):
            body = urllib.parse.urlencode({"email": spellings[n % 4], "first_name": f"Ada {n}"})
            request = urllib.request.Request(
                f"{server}/f/{form.key}/",
                data=body.encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )

            def job() -> int:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return response.status

            return job

        outcomes = race(*(post(n) for n in range(100)))

    # Then every browser got the thank-you page, one lead exists, and each post left
    # its activity
    assert outcomes == [200] * 100, outcomes
    lead = Lead.objects.get()
    assert lead.email == "ada@fleet.example"
    assert Activity.objects.filter(lead=lead, type=ActivityType.FORM_SUBMISSION).count() == 100


@contextlib.contextmanager
def gunicorn(server: str, var_dir: Path, **settings: str) -> Iterator[None]:
    """gunicorn serving the project on ``server`` from the test database, until the block ends.

    Two processes of eight threads: at most sixteen requests run at once, as behind a
    real deployment; the rest wait in the listen queue. The limits are raised so that
    one client address may post a hundred times. The access log (the project's gunicorn
    settings) and gunicorn's own log go to ``var_dir / "gunicorn.log"``; ``settings`` are
    more environment variables for the server.
    """
    database = connection.settings_dict
    credentials = urllib.parse.quote(database["USER"])
    if database["PASSWORD"]:
        credentials += ":" + urllib.parse.quote(database["PASSWORD"])
    url = f"postgres://{credentials}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "HOTLIST_VAR_DIR": str(var_dir),
        "CELERY_BROKER_URL": "filesystem://",
        "CACHE_URL": "",
        "FORM_RATE_PER_IP": "1000",
        "FORM_RATE_PER_FORM": "1000",
        **settings,
    }
    address = server.removeprefix("http://")
    command = [sys.executable, "-m", "gunicorn", "--config", "python:crm.gunicorn_config"]
    command += ["crm.wsgi:application", "--bind", address]
    command += ["--workers", "2", "--threads", "8", "--backlog", "256", "--log-level", "warning"]
    log_path = var_dir / "gunicorn.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{server}/healthz", timeout=5).close()
                break
            except urllib.error.HTTPError:
                break  # it answers; health itself does not matter here
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert process.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.2)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)

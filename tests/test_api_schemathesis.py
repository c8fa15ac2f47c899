"""The whole OpenAPI schema, checked by schemathesis runs with ``--checks all``.

The runs are the CLI's, as anyone would start one against a deployment: every operation
of ``/api/schema/`` (the REST API, the tracking calls and the form endpoint) is called
with generated requests, valid and invalid, once as an admin and once as a sales rep,
against gunicorn serving a small seeded world from the test database. No answer may be
a server error, a valid request may not be refused nor an invalid one accepted, and
every answer must be as documented. Generation is deterministic and bounded (the
coverage phase's fixed cases in the admin's run, ten examples an operation in the
fuzzing phase of both), so a run finds the same things every time.
tests/schemathesis_hooks.py gives valid requests what no schema can state (existing
ids, unique values, cross-field rules).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone

from crm.models import ApiToken, User
from imports.services import import_job_create, import_job_run
from leads.deals import deal_pipeline_ensure, deal_save
from leads.models import Deal, LostReason, Note, Task, TrackingKey, WebForm
from tests.conftest import free_port
from tests.factories import ActivityFactory, CompanyFactory, LeadFactory, active_model, page_rule
from tests.test_forms_concurrency_pg import gunicorn

ROOT = Path(__file__).resolve().parent.parent
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
OPTIONS = ["--checks", "all", "--workers", "1", "--no-color"]
# The server as deployed (DEBUG off), with rate limits out of the way of the run's calls.
SERVER = {
    "DEBUG": "false",
    "SECRET_KEY": "schemathesis-run-" + "x" * 40,
    "ALLOWED_HOSTS": "127.0.0.1",
    "SECURE_SSL_REDIRECT": "false",
    "API_THROTTLE_USER": "1000000/minute",
    "API_THROTTLE_ANON": "1000000/minute",
    "TRACKING_RATE_PER_KEY": "1000000",
    "FORM_RATE_PER_IP": "1000000",
    "FORM_RATE_PER_FORM": "1000000",
}

# Settings the run starts from; each persona's credentials are appended.
CONFIG = """
hooks = "tests.schemathesis_hooks"

[generation]
deterministic = true
max-examples = 10
# Text may not hold NUL characters anywhere (docs/API.md, "What a body may contain");
# the refusals are tested on their own (tests/test_api_bad_input.py).
allow-x00 = false
# Nothing kept between runs: each run finds what its seed finds.
database = "none"

[phases.coverage]
# One method a path does not take is enough to check the 405; repeated query
# parameters are read as the last one, as by any Django view.
unexpected-methods = ["DELETE"]
generate-duplicate-query-parameters = false

[phases.stateful]
enabled = false

"""


@pytest.fixture
def world(transactional_db, rep, default_events, tmp_path):
    """A small world the rep shares with the admin: a lead of the rep's with a company and
    one without, a deal, a task and a note on it, the deal pipeline's stages and lost
    reasons, a scoring model with a rule, a tracking write key, a web form, and an import
    (its file where the server keeps imports)."""
    model = active_model()
    rule = page_rule(model, 10, "/pricing")
    lead = LeadFactory(owner=rep, company=CompanyFactory())
    LeadFactory(owner=rep, company=None)
    due = timezone.now() + dt.timedelta(days=1)
    stage = deal_pipeline_ensure()[0]
    reason = LostReason.objects.first()
    return {
        "model": model.pk,
        "rule": rule.pk,
        "lead": lead.pk,
        "company": lead.company_id,
        "spare_company": CompanyFactory(name="Spare twin", domain="").pk,
        "activity": ActivityFactory(lead=lead).pk,
        "deal": deal_save(deal=Deal(lead=lead, name="Fleet", amount=1000)).pk,
        "task": Task.objects.create(lead=lead, assignee=rep, title="Call", due_at=due).pk,
        "note": Note.objects.create(lead=lead, author=rep, body="Met at the fair").pk,
        "write_key": TrackingKey.objects.issue(name="Website")[1],
        "form": WebForm.objects.create(name="Demo request").key,
        "rep": rep.pk,
        "import_job": _import_job(tmp_path),
        "deal_stage": stage.pk,
        "lost_reason": reason.pk,
        "lost_reason_name": reason.name,
    }


def _import_job(var_dir: Path) -> int:
    """A finished import with a failed row, its file copied where the server keeps
    imports: under ``var_dir``, its var directory (``gunicorn``'s ``HOTLIST_VAR_DIR``)."""
    text = "Email,First name\nst-import@example.com,Ida\nbroken,Ivo\n"
    job = import_job_create(
        file=io.BytesIO(text.encode()), file_name="world.csv", kind="leads", by=None, enqueue=False
    )
    import_job_run(job_id=job.pk)
    served = var_dir / "imports" / job.file.name
    served.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(job.file.path, served)
    job.file.delete(save=False)
    return job.pk


@pytest.mark.slow
@pytest.mark.postgres
def test_schemathesis_with_every_check_finds_nothing_as_an_admin_and_as_a_rep(
    world, admin_user, rep, tmp_path
):
    server = f"http://127.0.0.1:{free_port()}"
    with gunicorn(server, tmp_path, **SERVER):
        # The two runs at once: each persona's run is deterministic on its own.
        # The coverage phase's cases follow from the schema alone, whoever sends them, so
        # the admin's run takes them; the rep's run fuzzes what differs for a rep (what
        # a rep sees and may change). Both runs cover every operation with every check.
        runs = [
            _start(admin_user, world, server, tmp_path / "admin", phases="coverage,fuzzing"),
            _start(rep, world, server, tmp_path / "rep", phases="fuzzing"),
        ]
        outcomes = [(run.wait(timeout=900), output) for run, output in runs]

    for returncode, output in outcomes:
        report = output.read_text()
        failures = report[report.find("= FAILURES =") :] if "= FAILURES =" in report else report
        assert returncode == 0, f"{output}:\n{failures[:30000]}"


def _start(
    user: User, world: dict, server: str, folder: Path, *, phases: str
) -> tuple[subprocess.Popen, Path]:
    """Start the CLI's run as ``user``; its report goes to ``folder / "schemathesis.txt"``."""
    folder.mkdir()
    text, rows = _config(user, world)
    config = folder / "schemathesis.toml"
    config.write_text(text)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOTLIST_SCHEMATHESIS_WORLD": json.dumps(rows)}
    output = folder / "schemathesis.txt"
    command = [str(SCHEMATHESIS), "--config-file", str(config), "run"]
    command += [f"{server}/api/schema/?format=json", *OPTIONS, "--phases", phases]
    with output.open("w") as out:
        run = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=folder, env=env)
    return run, output


def _config(user: User, world: dict) -> tuple[str, dict]:
    """The run's settings (the persona's credentials, the seeded ids for the paths) and
    the rows the hooks (tests/schemathesis_hooks.py) fill valid requests with."""
    # Revoking is called on a token of its own: revoking the run's token would answer
    # 401 to everything after it.
    token, key = ApiToken.objects.issue(user=user, name="schemathesis")
    spare, _ = ApiToken.objects.issue(user=user, name="schemathesis spare")
    rows = {
        # Owner and assignee: the rep, whom the admin may name too. The two runs go at
        # once, and a lead the admin's run gave to the admin would vanish from the rep's.
        "user": world["rep"],
        "run_token": token.pk,
        "spare_token": spare.pk,
        "form": world["form"],
        "model_pk": world["model"],
        **{
            name: world[name]
            for name in ("lead", "company", "deal", "task", "note", "activity", "import_job")
        },
        "spare_company": world["spare_company"],
        "rule": world["rule"],
        **{name: world[name] for name in ("deal_stage", "lost_reason", "lost_reason_name")},
    }
    text = CONFIG
    text += _operations("^/api/", headers={"Authorization": f"Bearer {key}"})
    # The write key as the Basic user name, with an empty password, as clients send it.
    basic = base64.b64encode(f"{world['write_key']}:".encode()).decode()
    text += _operations("^/v1/", headers={"Authorization": f"Basic {basic}"})
    return text, rows


def _operations(path_regex: str, *, headers: dict[str, str]) -> str:
    lines = ["", "[[operations]]", f"include-path-regex = {_toml(path_regex)}"]
    lines.append(f"headers = {_inline(headers)}")
    return "\n".join(lines) + "\n"


def _inline(values: dict) -> str:
    return "{ " + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in values.items()) + " }"


def _toml(value) -> str:
    if isinstance(value, int):
        return str(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'

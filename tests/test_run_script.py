"""``scripts/run`` brings up the whole app on a laptop: no servers, one command."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent

# Variables that would point the run at servers instead of its embedded defaults.
SERVER_ENV = {"DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "DEBUG", "SECRET_KEY"}


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def pids_with_env(marker: str) -> list[int]:
    """Processes whose environment holds ``marker``: everything this run started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def stop(process: subprocess.Popen, marker: str) -> list[int]:
    """SIGTERM the run's process group, SIGKILL it after 20 s; the pids still alive after."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass  # it had already stopped
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    deadline = time.monotonic() + 15
    while pids_with_env(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = pids_with_env(marker)
    for pid in survivors:  # honcho starts each process in a session of its own
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return survivors


@pytest.mark.slow
def test_run_script_serves_login_page_and_healthz_then_stops(tmp_path):
    # Given a free port, a fresh var dir and no server configured
    port = free_port()
    var_dir = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV}
    env.update(PORT=str(port), HOTLIST_VAR_DIR=str(var_dir), DEMO_LEADS="30", HEARTBEAT_SECONDS="2")
    marker = f"HOTLIST_VAR_DIR={var_dir}"
    log_path = tmp_path / "run.log"

    # When scripts/run starts
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "run")],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    login = health = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                login = fetch(f"{base}/accounts/login/")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        assert login is not None, (
            f"no answer on {base} (exit code {process.poll()}):\n{log_path.read_text()[-3000:]}"
        )

        # Then the login page and /healthz answer
        assert login[0] == 200
        assert "Log in" in login[1]
        worker_ok = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            health = fetch(f"{base}/healthz")
            worker_ok = json.loads(health[1])["worker"]["ok"]
            if worker_ok:
                break
            time.sleep(0.5)
    finally:
        survivors = stop(process, marker)

    assert health is not None
    assert health[0] == 200
    body = json.loads(health[1])
    assert body["database"] == {"ok": True, "vendor": "sqlite"}
    assert body["broker"]["ok"] is True
    assert worker_ok, f"beat and worker wrote no heartbeat:\n{log_path.read_text()[-3000:]}"
    assert body["status"] == "ok"
    # And everything it started is gone
    assert process.returncode is not None
    assert survivors == []
    assert (var_dir / "hotlist.sqlite3").exists()

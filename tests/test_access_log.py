"""The web process's access log never holds a tracking write key (the Basic user name)."""

from __future__ import annotations

import base64
import datetime as dt
import urllib.request

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from leads.models import TrackingKey
from tests.conftest import free_port
from tests.test_forms_concurrency_pg import gunicorn


def test_access_log_format_leaves_out_the_basic_user_name():
    # Given gunicorn configured with the project's settings
    config = Config()
    config.set("access_log_format", _project_setting("access_log_format"))
    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/v1/track",
        "PATH_INFO": "/v1/track",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"wk_secret:").decode(),
    }

    # When it formats the access line of a call that sent a write key as the user name
    atoms = Logger(config).atoms(_Response(), _Request(), environ, dt.timedelta(milliseconds=5))
    line = config.access_log_format % atoms

    # Then the line says which call it was, but not with which key
    assert '"POST /v1/track HTTP/1.1" 200' in line
    assert "wk_secret" not in line


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_tracking_call_served_by_gunicorn_leaves_no_write_key_in_the_access_log(
    tmp_path, default_events
):
    # Given the web process as deployed, on the test database, and a write key
    _, write_key = TrackingKey.objects.issue(name="Website")
    server = f"http://127.0.0.1:{free_port()}"
    body = b'{"userId": "u-1", "event": "Demo Requested"}'
    request = urllib.request.Request(
        f"{server}/v1/track",
        data=body,
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode(),
        },
    )

    # When a client sends a call with the key as the Basic user name
    with gunicorn(server, tmp_path), urllib.request.urlopen(request, timeout=30) as response:
        status = response.status

    # Then the call was logged, without the key
    log = (tmp_path / "gunicorn.log").read_text()
    assert status == 200
    assert '"POST /v1/track HTTP/1.1" 200' in log, log
    assert write_key not in log


def _project_setting(name: str) -> str:
    import crm.gunicorn_config

    return getattr(crm.gunicorn_config, name)


class _Response:
    """What gunicorn's logger reads of a response."""

    status = "200 OK"
    status_code = 200
    response_length = 17
    sent = 17
    headers = ()


class _Request:
    headers = ()

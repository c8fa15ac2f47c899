"""Property-based checks of the REST API against its own OpenAPI schema (schemathesis).

Every operation is called with generated requests, valid and invalid, as an admin: no
answer may be a server error, and every answer must match the schema (status code
documented, body of the documented shape).
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from crm.models import ApiToken
from tests.factories import LeadFactory, active_model, page_rule

# No server error, and every answer as documented. Not "a schema-valid request is
# accepted": a filter value or cursor the schema types as a plain string may still be
# refused with a 400 that names it, which the API documents.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture
def in_process_wsgi():
    """Serve WSGI calls on the test's connection, as Django's test client does: the
    handler must not close the connection at the end of each request."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(db, admin_user, in_process_wsgi):
    from crm.wsgi import application

    _, key = ApiToken.objects.issue(user=admin_user, name="schemathesis")
    pytest.api_key = key  # read by the test below, which cannot take fixtures of its own
    model = active_model()
    page_rule(model, 10, "/pricing")
    LeadFactory.create_batch(3, owner=admin_user)
    return schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", application, headers={"Authorization": f"Bearer {key}"}
    )


def test_every_operation_answers_as_documented_and_never_fails(api_schema):
    checked = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case):
            case.call_and_validate(
                headers={"Authorization": f"Bearer {pytest.api_key}"}, checks=CHECKS
            )

        call()
        checked.append(operation.label)
    assert len(checked) > 30, checked

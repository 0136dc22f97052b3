"""Schemathesis against a live server: generated requests, valid and not, find no 500 and no answer outside the document.

The live server is pytest-django's, in this process, over real HTTP; the
engine is FakeRuntime and operations run inline (tests/unit/conftest.py), so
?wait never waits and creates cost no containers. Bounded twice: a number of
examples per operation and a wall-clock budget for the whole run.
"""

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from projects.api.openapi import openapi_document
from projects.services.lifecycle import requests as lifecycle
from projects.services.accounts.tokens import api_token_create

MAX_EXAMPLES = 50  # per API operation, positive and negative
BUDGET_S = 240.0  # for the whole run; generation stops early rather than overrun CI
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Not negative_data_rejection: it counts an unknown query parameter, or a negative
# case whose missing Authorization the fixed header puts back, as "accepted".
_started: list[float] = []


@pytest.fixture
def bearer_token(live_server, transactional_db, django_user_model) -> str:
    owner = django_user_model.objects.create_user("schema", password="schema-password-1")
    # Something real behind the ids that schemathesis follows through the document's links.
    lifecycle.project_create(owner=owner, name="seed")
    _, token = api_token_create(user=owner, name="schemathesis")
    return token


# Built at collection (the settings are loaded by then); the base URL is the live server's, given per call.
schema = schemathesis.openapi.from_dict(openapi_document())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_get_no_500_and_no_answer_outside_the_document(case, live_server, bearer_token):
    if not _started:
        _started.append(time.monotonic())
    if time.monotonic() - _started[0] > BUDGET_S:
        return
    case.call_and_validate(base_url=live_server.url, headers={"Authorization": f"Bearer {bearer_token}"}, checks=CHECKS, timeout=30)


def test_sequences_that_follow_the_documents_links_get_no_500_and_no_answer_outside_it(live_server, bearer_token):
    # Create, then act on what was created (stop, start, delete, operations,
    # backups) through the links the document declares: real state transitions.
    from hypothesis.stateful import run_state_machine_as_test

    # getProjectMetrics is left out of the sequences (the per-operation test above
    # still fuzzes it): with it in, Hypothesis reports FlakyStrategyDefinition on
    # replay in about two runs of three, with no 500 and no nonconforming answer;
    # the cause is not found yet (metrics helper, issue 13).
    stateful = schemathesis.openapi.from_dict(openapi_document()).exclude(operation_id="getProjectMetrics")
    stateful.config.update(base_url=live_server.url, headers={"Authorization": f"Bearer {bearer_token}"}, request_timeout=30)
    machine = stateful.as_state_machine()

    seen: list[tuple[str, int]] = []

    class Checked(machine):
        def validate_response(self, response, case, **kwargs):
            seen.append((f"{case.method} {case.operation.path}", response.status_code))
            case.validate_response(response, checks=CHECKS)

    run_state_machine_as_test(
        Checked,
        settings=settings(max_examples=15, stateful_step_count=8, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)),
    )
    # The links were followed: something created was then acted on successfully.
    assert any("{project_id}" in call and 200 <= status < 300 for call, status in seen), sorted(set(seen))

"""Schemathesis against the live schema: the API answers only what /api/schema/ says it answers.

The schema is the one the application serves, loaded through its WSGI handler, and
every request goes through that handler in this process (Django's whole stack:
middleware, DRF, PostgreSQL under RLS, Redis). In-process rather than a gunicorn:
the same code answers, each failure comes with the server-side traceback in the
same log, and the budget of a minute or two buys several times more cases without a
socket and a worker per request. Generation is derandomized (a fixed seed: the same
cases every run) and bounded by ``MAX_EXAMPLES`` per operation.

The query endpoint answers with the local extractive model: no provider has a key
here (``no_model_keys`` in conftest.py).
"""

import json

import pytest
from hypothesis import HealthCheck, settings

from tests.saascore.api_schema import OPERATIONS, auth, schema, send, valid_body

MAX_EXAMPLES = 50


@schema.parametrize()
# The tenant is made once per operation and shared by its examples, as intended; no example
# database on disk: the same derandomized cases run every time.
@settings(
    max_examples=MAX_EXAMPLES,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
    deadline=None,
)
def test_every_operation_answers_as_its_schema_says(case, api):
    case.call_and_validate(headers=auth(api["key"]))


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_a_valid_request_to_every_operation_succeeds_as_its_schema_says(operation, api):
    """The success answers, with ids that exist: generated ids almost never do."""
    response = send(operation, path_parameters=api["ids"], headers=auth(api["key"]), **valid_body(operation))
    assert 200 <= response.status_code < 300, response.get_data()[:500]
    if operation.label == "POST /api/v1/ai/query":
        assert json.loads(response.get_data())["model_used"] == "local-extractive"

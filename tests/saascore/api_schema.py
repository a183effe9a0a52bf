"""The live OpenAPI schema, loaded through the application's WSGI handler, and helpers that send
requests to that handler and judge the answers by the schema (schemathesis' response checks)."""

import json
from urllib.parse import quote

import schemathesis
from django.core.wsgi import get_wsgi_application
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.test import Client, TestResponse

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20261128,
        "cache": {"enabled": False},
        "generation": {"deterministic": True, "mode": "all"},
        "phases": {"stateful": {"enabled": False}},
        # Every default check (no 5xx; status code, content type, body and headers as declared;
        # invalid data refused; auth enforced; undeclared methods 405) except one: a request the
        # schema allows may still be refused for rules JSON Schema cannot say (a date range over
        # 366 days, a NUL character in a title), so a 400 to valid-looking data is not a failure.
        # Invalid data may also be refused as too large (413), which schemathesis does not expect.
        "checks": {
            "positive_data_acceptance": {"enabled": False},
            "negative_data_rejection": {"expected-statuses": [400, 401, 404, 405, 406, 409, 413, 415, 422, 429]},
        },
    }
)
APP = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", APP, config=CONFIG)
OPERATIONS = [result.ok() for result in schema.get_all_operations()]

# What the answer to a request is judged by, whoever made the request.
RESPONSE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@schemathesis.serializer("application/x-ndjson")
def _json_lines(context, value) -> bytes:
    """The bulk upload's body: the schema's array, one JSON value per line."""
    rows = value if isinstance(value, list) else [value]
    return "\n".join(json.dumps(row) for row in rows).encode()


# One valid body per operation with a body (the test fixtures' ids in the path): the 401 test
# sends it without a key, since a valid request must reach authentication, not fail on its body.
VALID_BODIES = {
    "POST /api/v1/ai/query": {"query": "How fast do you ship?"},
    "POST /api/v1/documents": {"title": "Returns", "content": "Returns are free for 30 days."},
    "PATCH /api/v1/documents/{document_id}": {"source": "kb/updated"},
    "POST /api/v1/documents/bulk": [{"title": "Warranty", "content": "Two years on every product."}],
    "PATCH /api/v1/keys/{key_id}": {"name": "renamed"},
    "PATCH /api/v1/keys/{key_id}/limits": {"requests_per_minute": 100},
    "POST /api/v1/ai/feedback": {"request_id": "fixture-request-1", "rating": "bad"},  # conftest's ANSWERED_REQUEST
}


def encode_body(operation, value) -> bytes:
    if request_media_type(operation) == "application/x-ndjson":
        return "\n".join(json.dumps(row) for row in value).encode()
    return json.dumps(value).encode()


def valid_body(operation) -> dict:
    """``send`` arguments for the operation's valid body, if it takes one."""
    body = VALID_BODIES.get(operation.label)
    if body is None:
        return {}
    return {"body": encode_body(operation, body), "content_type": request_media_type(operation)}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def request_media_type(operation) -> str | None:
    body = operation.definition.raw.get("requestBody")
    return next(iter(body["content"])) if body else None


def send(
    operation,
    *,
    path_parameters: dict | None = None,
    query_string: str = "",
    body: bytes | None = None,
    content_type: str | None = None,
    headers: dict | None = None,
) -> TestResponse:
    """Send raw bytes to the operation through the WSGI handler; fail unless the answer is one the
    schema declares for it (status, content type, body, headers) and not a 5xx."""
    path = operation.path
    for name, value in (path_parameters or {}).items():
        path = path.replace("{" + name + "}", quote(str(value), safe=""))
    headers = dict(headers or {})
    if content_type:
        headers["Content-Type"] = content_type
    response = Client(APP).open(
        path, method=operation.method.upper(), query_string=query_string, data=body, headers=headers
    )
    operation.Case().validate_response(response, checks=RESPONSE_CHECKS)
    return response


def error_of(response: TestResponse) -> dict:
    """The error body of the project's one shape."""
    body = json.loads(response.get_data())
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]

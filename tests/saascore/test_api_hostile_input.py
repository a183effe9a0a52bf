"""Hostile input on every operation of the schema, beyond what schemathesis generates: each answer
is a 4xx in the error shape that the schema declares for that operation, never a 5xx.

Every case is derived from the live schema (its operations, parameters and body fields), so an
endpoint added later is covered without editing this file, except ``VALID_BODIES``, which a
test below keeps complete.
"""

import json

import pytest

from ai.rag.models import Document
from ai.rag.services import documents_bulk_upsert
from tenants.models import ApiKey
from tenants.scoping import tenant_scope
from tests.factories import make_key, make_tenant
from tests.saascore.api_schema import (
    OPERATIONS,
    VALID_BODIES,
    auth,
    encode_body,
    error_of,
    request_media_type,
    send,
    valid_body,
)
from tests.saascore.conftest import DOCUMENTS

pytestmark = pytest.mark.django_db(transaction=True)

DEEP = 50_000  # the nesting depth that answered 500 before
HUGE_INTEGERS = [10**20, 2**63, -(2**63) - 1, 10**4000]
LONG = 300_000  # characters: over every declared maxLength, under the 1 MiB body limit
INVALID_UTF8 = b"\xff\xfe\xc3\x28\xed\xa0\x80"


def _with_body(operations):
    return [op for op in operations if request_media_type(op)]


def _label(operation) -> str:
    return operation.label


def _query_parameters(operation) -> list[dict]:
    return [p for p in operation.definition.raw.get("parameters", []) if p["in"] == "query"]


def _body_properties(operation) -> dict[str, dict]:
    """Properties of the request body's schema (of its items, for an array), references resolved."""
    media_type = request_media_type(operation)
    if media_type is None:
        return {}
    body_schema = operation.definition.raw["requestBody"]["content"][media_type]["schema"]
    body_schema = body_schema.get("items", body_schema)
    if "$ref" in body_schema:
        name = body_schema["$ref"].rsplit("/", 1)[-1]
        body_schema = operation.schema.raw_schema["components"]["schemas"][name]
    return body_schema.get("properties", {})


def _valid_body_with(operation, field: str, value) -> bytes:
    """The operation's valid body with one field replaced (in its one row, for JSON lines)."""
    valid = VALID_BODIES[operation.label]
    body = [{**valid[0], field: value}] if isinstance(valid, list) else {**valid, field: value}
    return encode_body(operation, body)


def test_every_operation_with_a_body_has_a_valid_body_here():
    assert {op.label for op in _with_body(OPERATIONS)} == set(VALID_BODIES)


@pytest.mark.parametrize("operation", OPERATIONS, ids=_label)
def test_without_a_valid_key_every_operation_is_a_401(operation, api):
    """Valid requests in every other respect: no key, then a key that does not exist."""
    body = VALID_BODIES.get(operation.label)
    kwargs = {"path_parameters": api["ids"]}
    if body is not None:
        kwargs.update(body=encode_body(operation, body), content_type=request_media_type(operation))
    missing = send(operation, **kwargs)
    assert missing.status_code == 401 and error_of(missing)["code"] == "not_authenticated"
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    wrong = send(operation, headers=auth("sc_1_not-a-real-key"), **kwargs)
    assert wrong.status_code == 401 and error_of(wrong)["code"] == "authentication_failed"


@pytest.mark.parametrize("operation", _with_body(OPERATIONS), ids=_label)
@pytest.mark.parametrize(
    "body",
    [b"[" * DEEP + b"]" * DEEP, b'{"a": ' * DEEP + b"1" + b"}" * DEEP, b"[" * 40 + b"]" * 40],
    ids=["arrays-50000", "objects-50000", "arrays-40"],
)
def test_deeply_nested_json_is_a_400(operation, body, api):
    response = send(
        operation, path_parameters=api["ids"], body=body,
        content_type=request_media_type(operation), headers=auth(api["key"]),
    )  # fmt: skip
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "malformed_request" and "nested deeper than" in error["message"]


@pytest.mark.parametrize("operation", _with_body(OPERATIONS), ids=_label)
def test_a_body_that_is_not_utf8_is_a_400(operation, api):
    response = send(
        operation, path_parameters=api["ids"], body=b'{"title": "' + INVALID_UTF8 + b'"}',
        content_type=request_media_type(operation), headers=auth(api["key"]),
    )  # fmt: skip
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_request"


@pytest.mark.parametrize("operation", OPERATIONS, ids=_label)
def test_query_strings_that_are_not_utf8_get_a_declared_answer(operation, api):
    """Every declared query parameter and an undeclared one, as raw invalid UTF-8 bytes."""
    names = [p["name"] for p in _query_parameters(operation)] + ["unknown"]
    for name in names:
        query = f"{name}=" + "".join(f"%{byte:02X}" for byte in INVALID_UTF8)  # percent-encoded raw bytes
        response = send(operation, path_parameters=api["ids"], query_string=query, headers=auth(api["key"]))
        if response.status_code >= 400:
            assert response.status_code in (400, 406), name
            error_of(response)


@pytest.mark.parametrize("operation", OPERATIONS, ids=_label)
def test_huge_integers_in_every_integer_parameter_get_a_4xx(operation, api):
    """Numbers PostgreSQL cannot take (bigint overflow) and Python will not read (over 4,300 digits)."""
    parameters = [p for p in operation.definition.raw.get("parameters", []) if p["schema"].get("type") == "integer"]
    fields = [name for name, spec in _body_properties(operation).items() if spec.get("type") == "integer"]
    for number in HUGE_INTEGERS:
        for parameter in parameters:
            where = parameter["in"]
            ids = {**api["ids"], parameter["name"]: number} if where == "path" else api["ids"]
            query = f"{parameter['name']}={number}" if where == "query" else ""
            response = send(
                operation, path_parameters=ids, query_string=query, headers=auth(api["key"]), **valid_body(operation)
            )
            assert response.status_code == (404 if where == "path" else 400), (parameter["name"], number)
            error_of(response)
        for field in fields:
            response = send(
                operation, path_parameters=api["ids"], body=_valid_body_with(operation, field, number),
                content_type=request_media_type(operation), headers=auth(api["key"]),
            )  # fmt: skip
            assert response.status_code == 400, (field, number)
    assert parameters or fields or not _any_integer_input(operation)


def _any_integer_input(operation) -> bool:
    return "integer" in json.dumps(operation.definition.raw.get("parameters", [])) + json.dumps(
        _body_properties(operation)
    )


def test_huge_integers_reach_the_operations_that_take_integers():
    """The test above is not vacuous: the schema has integer inputs (path ids, limit and offset)."""
    integer_inputs = [op.label for op in OPERATIONS if _any_integer_input(op)]
    assert "GET /api/v1/documents" in integer_inputs and "GET /api/v1/documents/{document_id}" in integer_inputs


@pytest.mark.parametrize("operation", OPERATIONS, ids=_label)
def test_very_long_strings_in_every_string_input_get_a_declared_answer(operation, api):
    """Every string query parameter and header, and every body field with a maximum length."""
    long = "x" * LONG
    for parameter in operation.definition.raw.get("parameters", []):
        if parameter["schema"].get("type") != "string" or parameter["in"] == "path":
            continue
        if parameter["in"] == "query":
            response = send(operation, path_parameters=api["ids"], query_string=f"{parameter['name']}={long}",
                            headers=auth(api["key"]))  # fmt: skip
        else:
            headers = {**auth(api["key"]), parameter["name"]: long}
            response = send(operation, path_parameters=api["ids"], headers=headers, **valid_body(operation))
        assert response.status_code < 500
    for field, spec in _body_properties(operation).items():
        if spec.get("type") == "string" and "maxLength" in spec:
            response = send(
                operation, path_parameters=api["ids"], body=_valid_body_with(operation, field, long),
                content_type=request_media_type(operation), headers=auth(api["key"]),
            )  # fmt: skip
            assert response.status_code == 400, field
            assert error_of(response)["code"] == "invalid"


@pytest.mark.parametrize("operation", [op for op in OPERATIONS if "{" in op.path], ids=_label)
def test_another_tenants_ids_are_404_and_leave_its_rows_alone(operation, api):
    other = make_tenant()
    documents_bulk_upsert(tenant=other, rows=DOCUMENTS[:1])
    other_key, _ = make_key(other)
    with tenant_scope(other):
        other_document = Document.objects.for_tenant(other).get()
    ids = {"document_id": other_document.pk, "key_id": other_key.pk}
    response = send(operation, path_parameters=ids, headers=auth(api["key"]), **valid_body(operation))
    assert response.status_code == 404
    with tenant_scope(other):
        assert Document.objects.for_tenant(other).get().content == DOCUMENTS[0]["content"]
        assert ApiKey.objects.for_tenant(other).get().revoked_at is None

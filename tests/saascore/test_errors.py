"""Every 4xx/5xx on API paths has one JSON shape, and never a stack trace."""

import pytest
from django.test import Client
from rest_framework.exceptions import ParseError

from saascore.api.parsers import MAX_JSON_DEPTH, json_depth, loads_bounded
from tests.factories import auth, make_key, make_tenant

pytestmark = pytest.mark.django_db


def _error(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


@pytest.fixture
def key_url():
    api_key, key = make_key(make_tenant())
    return key, f"/api/v1/keys/{api_key.pk}"


def test_unknown_api_path_is_a_json_404(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert _error(response)["code"] == "not_found"


def test_wrong_method_is_a_json_405(api_client, key_url):
    key, _ = key_url
    response = api_client.post("/api/v1/tenant", {}, format="json", **auth(key))
    assert response.status_code == 405
    assert _error(response)["code"] == "method_not_allowed"


@pytest.mark.parametrize("body", [b"{not json", b'{"name": "x"', b"\xff\xfe\x00", b"[1, 2", b"nul"])
def test_malformed_json_is_a_json_400(api_client, key_url, body):
    key, url = key_url
    response = api_client.generic("PATCH", url, body, content_type="application/json", **auth(key))
    assert response.status_code == 400
    assert _error(response)["code"] == "malformed_request"


def test_json_that_is_not_an_object_is_a_400(api_client, key_url):
    key, url = key_url
    response = api_client.generic("PATCH", url, b"[1, 2, 3]", content_type="application/json", **auth(key))
    assert response.status_code == 400
    _error(response)


def test_unsupported_media_type_is_a_json_415(api_client, key_url):
    key, url = key_url
    response = api_client.generic("PATCH", url, b"name=x", content_type="text/plain", **auth(key))
    assert response.status_code == 415
    assert _error(response)["code"] == "unsupported_media_type"


def test_huge_bodies_are_refused_with_413_before_parsing(api_client, key_url, settings):
    settings.API_MAX_BODY_BYTES = 1000
    key, url = key_url
    body = b'{"name": "' + b"x" * 5000 + b'"}'
    response = api_client.generic("PATCH", url, body, content_type="application/json", **auth(key))
    assert response.status_code == 413
    error = _error(response)
    assert error["code"] == "body_too_large" and error["details"] == {"limit_bytes": 1000}


def test_a_bad_content_length_is_a_json_400(key_url):
    key, url = key_url
    response = Client().generic("PATCH", url, b"{}", content_type="application/json", CONTENT_LENGTH="abc", **auth(key))
    assert response.status_code == 400
    _error(response)


@pytest.mark.urls("tests.saascore.urls_failing")
@pytest.mark.parametrize("path", ["/api/v1/explode", "/api/v1/explode-plain"])
def test_unexpected_errors_are_a_json_500_without_internals(path, settings, caplog):
    settings.DEBUG = True  # even with DEBUG on, no debug page on API paths
    client = Client(raise_request_exception=False)
    response = client.get(path)
    assert response.status_code == 500
    error = _error(response)
    assert error["code"] == "internal_error"
    assert b"secret internals" not in response.content and b"Traceback" not in response.content
    assert response["X-Request-ID"]
    assert "secret internals" in caplog.text  # logged for us, not shown to them


def test_the_request_id_is_the_servers_and_the_callers_is_only_echoed(client):
    response = client.get("/health/live", HTTP_X_REQUEST_ID="req-12345678")
    assert response["X-Client-Request-Id"] == "req-12345678"
    assert response["X-Request-ID"] != "req-12345678" and len(response["X-Request-ID"]) == 32
    other = client.get("/health/live", HTTP_X_CLIENT_REQUEST_ID="req-12345678")
    assert other["X-Client-Request-Id"] == "req-12345678" and other["X-Request-ID"] != response["X-Request-ID"]


@pytest.mark.parametrize("value", ["<script>", "x" * 129, "two words", "tab\tin"])
def test_a_malformed_or_overlong_request_id_is_a_400_on_api_paths(client, value):
    response = client.get("/health/live", HTTP_X_REQUEST_ID=value)
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_request_id" and _error(response)["details"] == {
        "header": "X-Request-ID"
    }
    assert value not in response.content.decode() and len(response["X-Request-ID"]) == 32
    page = client.get("/accounts/login/", HTTP_X_REQUEST_ID=value)  # pages ignore it
    assert page.status_code == 200 and "X-Client-Request-Id" not in page


def test_an_unknown_format_is_a_json_406_not_a_404(api_client, key_url):
    key, url = key_url
    response = api_client.get(url, {"format": "xml"}, **auth(key))
    assert response.status_code == 406
    assert _error(response)["code"] == "not_acceptable"
    assert api_client.get(url, {"format": "json"}, **auth(key)).status_code == 200


def test_json_is_read_to_the_depth_limit_and_refused_past_it():
    """The limit is counted, not left to the recursion limit (which would move with the stack)."""
    at_limit = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert json_depth(loads_bounded(at_limit)) == MAX_JSON_DEPTH
    with pytest.raises(ParseError, match="nested deeper than"):
        loads_bounded("[" + at_limit + "]")
    with pytest.raises(ParseError, match="line 2: JSON nested deeper than"):
        loads_bounded('{"a": ' * 100_000, where="line 2: ")
    assert json_depth({"a": [1, {"b": {}}], "c": "x"}) == 4 and json_depth([]) == 1 and json_depth("x") == 0

"""Log lines: one JSON object each, naming the request and the tenant, never the query text."""

import io
import json
import logging
from contextlib import contextmanager

import pytest

from saascore.logs import PLAIN_FORMAT, JsonFormatter, RequestContextFilter, log_format
from tests.factories import auth
from tests.serving import gunicorn, http

SECRET_QUESTION = "How do I reset my password for the Zanzibar account?"


@contextmanager
def captured(formatter: logging.Formatter, level: int = logging.DEBUG):
    """What the root logger's handlers would print, formatted as the settings configure them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RequestContextFilter())
    handler.setLevel(level)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_a_query_logs_json_with_request_and_tenant_and_no_query_text(api_client, helpdesk):
    tenant, key = helpdesk()
    with captured(JsonFormatter(), level=logging.INFO) as stream:
        response = api_client.post(
            "/api/v1/ai/query", {"query": SECRET_QUESTION}, format="json", HTTP_X_REQUEST_ID="req-12345678", **auth(key)
        )
    assert response.status_code == 200 and response["X-Client-Request-Id"] == "req-12345678"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    answered = [line for line in lines if line["logger"] == "saascore.query"]
    assert len(answered) == 1, lines
    line = answered[0]
    assert line["request_id"] == response["X-Request-ID"] == response.json()["request_id"]
    assert line["client_request_id"] == "req-12345678" and line["tenant_id"] == tenant.pk
    assert line["level"] == "INFO" and line["message"].startswith("query answered")
    assert line["source"] == "llm" and line["latency_ms"] > 0
    assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]
    assert "Zanzibar" not in stream.getvalue()


def test_an_unsafe_request_id_never_reaches_a_log_line(api_client, helpdesk):
    _, key = helpdesk()
    with captured(JsonFormatter(), level=logging.INFO) as stream:
        response = api_client.get("/api/v1/tenant", HTTP_X_REQUEST_ID="bad id\nforged line", **auth(key))
        logging.getLogger("after").info("outside a request")
    assert response.status_code == 400 and len(response["X-Request-ID"]) == 32
    assert "forged line" not in stream.getvalue()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[-1]["request_id"] is None and lines[-1]["tenant_id"] is None  # the context does not leak


@pytest.mark.django_db
def test_unauthenticated_requests_log_without_a_tenant(client):
    with captured(JsonFormatter(), level=logging.WARNING) as stream:
        response = client.get(
            "/api/v1/tenant", HTTP_AUTHORIZATION="Bearer sc_1_wrong", HTTP_X_REQUEST_ID="req-abcdefgh"
        )
    assert response.status_code == 401
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines and all(line["request_id"] == response["X-Request-ID"] for line in lines)
    assert all(line["client_request_id"] == "req-abcdefgh" and line["tenant_id"] is None for line in lines)


def test_exceptions_and_extras_are_fields():
    stream_logger = logging.getLogger("saascore.test")
    with captured(JsonFormatter()) as stream:
        try:
            raise ValueError("boom")
        except ValueError:
            stream_logger.exception("failed", extra={"model": "gpt-x"})
    line = json.loads(stream.getvalue())
    assert line["message"] == "failed" and line["model"] == "gpt-x" and line["level"] == "ERROR"
    assert "ValueError: boom" in line["exc_info"]
    assert list(line)[:6] == ["timestamp", "level", "logger", "message", "request_id", "tenant_id"]


def test_plain_format_names_the_request_too():
    with captured(logging.Formatter(PLAIN_FORMAT)) as stream:
        logging.getLogger("saascore.test").info("hello")
    assert "[None tenant=None] hello" in stream.getvalue()


def test_log_format_comes_from_the_environment(monkeypatch):
    assert log_format(default="json") == "json"
    monkeypatch.setenv("LOG_FORMAT", "PLAIN")
    assert log_format(default="json") == "plain"
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        log_format(default="json")


@pytest.mark.django_db(transaction=True)
def test_gunicorn_writes_every_line_as_json():
    """Under gunicorn with LOG_FORMAT=json, the server's own lines are JSON as well as the app's,
    and each request has one access line (without its query string)."""
    output: list[str] = []
    with gunicorn(output, LOG_FORMAT="json") as base:
        status, headers, _ = http("GET", f"{base}/api/v1/tenant?api_key=sc_1_secret", {"X-Request-ID": "req-gunicorn1"})
    assert status == 401 and headers["X-Client-Request-Id"] == "req-gunicorn1"
    lines = [json.loads(line) for line in output]  # every line parses
    loggers = {line["logger"] for line in lines}
    assert {"gunicorn.error", "saascore.access", "django.request"} <= loggers, loggers
    unauthorized = next(line for line in lines if line["logger"] == "django.request")
    assert unauthorized["request_id"] == headers["X-Request-ID"] and unauthorized["level"] == "WARNING"
    assert unauthorized["client_request_id"] == "req-gunicorn1"
    access = next(line for line in lines if line["logger"] == "saascore.access" and "/api/v1/tenant" in line["message"])
    assert access["request_id"] == headers["X-Request-ID"] and access["client_request_id"] == "req-gunicorn1"
    assert (access["method"], access["path"], access["status"]) == ("GET", "/api/v1/tenant", 401)
    assert "sc_1_secret" not in "\n".join(output)

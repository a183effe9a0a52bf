"""The product as `make run` serves it: gunicorn with uvicorn (ASGI) workers, over real HTTP."""

import json
import socket
from urllib.parse import urlsplit

import pytest

from tests.factories import make_key, make_tenant
from tests.serving import accepted_by, gunicorn, http, served


@pytest.mark.django_db(transaction=True)
def test_gunicorn_serves_health_and_the_api():
    tenant = make_tenant(slug="served")
    api_key, key = make_key(tenant)
    headers = {"Authorization": f"Bearer {key}"}
    with gunicorn() as base:
        status, response_headers, body = http("GET", f"{base}/health/ready", headers)
        assert status == 200, body
        assert body["postgres"]["pgvector"].startswith("0.8") and body["redis"]["vector_api"] == "vectorset"
        assert response_headers["X-Request-ID"]

        status, _, body = http("GET", f"{base}/api/v1/tenant", headers)
        assert (status, body["slug"]) == (200, "served")

        status, _, body = http("GET", f"{base}/api/v1/tenant", {"Authorization": "Bearer sc_1_wrong"})
        assert status == 401 and body["error"]["code"] == "authentication_failed"

        status, _, body = http(
            "PATCH", f"{base}/api/v1/keys/{api_key.pk}", {**headers, "Content-Type": "application/json"}, b"{broken"
        )
        assert status == 400 and body["error"]["code"] == "malformed_request"


def test_queries_over_real_http_miss_then_hit_per_tenant(helpdesk):
    """The whole product under gunicorn: a miss, an exact hit, a semantic hit, and no hit for another tenant."""
    _, key = helpdesk()
    _, other_key = helpdesk()

    def ask(base, api_key, query):
        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        return http("POST", f"{base}/api/v1/ai/query", headers, json.dumps({"query": query}).encode())

    with gunicorn() as base:
        status, headers, body = ask(base, key, "How do I set up two-factor authentication?")
        assert status == 200 and body["source"] == "llm" and headers["X-Cache"] == "MISS", body
        assert ask(base, key, "how do i set up two-factor authentication")[1]["X-Cache"] == "HIT-EXACT"
        assert ask(base, key, "How can I set up two-factor authentication?")[1]["X-Cache"] == "HIT-SEMANTIC"
        status, headers, body = ask(base, other_key, "How do I set up two-factor authentication?")
        assert status == 200 and body["source"] == "llm"

        # The query runs on the lean stack (saascore/asgi.py): security headers and the request id,
        # none of the page stack (the clickjacking header is the page stack's last but one).
        assert headers["X-Request-ID"] and headers["X-Content-Type-Options"] == "nosniff"
        assert "X-Frame-Options" not in headers
        assert http("GET", f"{base}/health/live")[1]["X-Frame-Options"] == "DENY"


def test_with_reuse_port_every_worker_accepts_connections_of_its_own():
    """One shared socket lets the first worker to wake take a burst of connections; with a
    socket of each worker's own, the kernel spreads them (saascore/gunicorn_worker.py)."""
    with served(workers=2, GUNICORN_REUSE_PORT="1") as server:
        port = urlsplit(server.base).port
        workers = server.workers()
        while len(workers) < 2:  # the second may still be booting
            workers = server.workers()
        clients = []
        try:
            for _ in range(24):
                client = socket.create_connection(("127.0.0.1", port), timeout=10)
                clients.append(client)
                client.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                reply = client.recv(4096)
                assert reply.startswith(b"HTTP/1.1 200"), reply  # accepted, answered, kept alive
            held = [accepted_by(pid, port) for pid in workers]
        finally:
            for client in clients:
                client.close()
    assert sum(held) == 24 and min(held) > 0, held

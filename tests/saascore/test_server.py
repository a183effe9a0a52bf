"""The product as `make run` serves it: gunicorn with gthread workers, over real HTTP."""

import pytest

from tests.factories import make_key, make_tenant
from tests.serving import gunicorn, http


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

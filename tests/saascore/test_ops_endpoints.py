"""/metrics and readiness details are for operators: open in development, token-only in production."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def production_like(settings):
    settings.OPS_ENDPOINTS_PUBLIC = False
    settings.OPS_TOKEN = None
    return settings


def test_without_a_token_configured_metrics_do_not_exist_and_readiness_says_only_its_status(client, production_like):
    assert client.get("/metrics").status_code == 404
    response = client.get("/health/ready")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_with_a_token_only_its_bearer_reads_them(client, production_like):
    production_like.OPS_TOKEN = "ops-secret-token"
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "not_authenticated"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    allowed = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ops-secret-token")
    assert allowed.status_code == 200 and b"saascore_" in allowed.content
    detailed = client.get("/health/ready", HTTP_AUTHORIZATION="Bearer ops-secret-token").json()
    assert detailed["postgres"]["version"] and detailed["redis"]["version"]
    assert client.get("/health/ready").json() == {"status": "ok"}

import pytest

from saascore.redis import capabilities as capabilities_module

pytestmark = pytest.mark.django_db

MACHINE_REDIS_7 = "redis://127.0.0.1:6379/0"


def test_live(client):
    assert client.get("/health/live").json() == {"status": "ok"}


def test_ready_reports_versions_and_vector_apis(client):
    body = client.get("/health/ready").json()
    assert body["status"] == "ok"
    assert body["postgres"]["ok"] and body["postgres"]["version"].startswith("18")
    assert body["postgres"]["pgvector"].startswith("0.8")
    redis_ = body["redis"]
    assert redis_["ok"] and redis_["version"].startswith("8.")
    assert redis_["vector_sets"] is True and redis_["redisearch"] is True
    assert redis_["vector_api"] == "vectorset" and redis_["semantic_cache"] == "available"


def test_ready_accepts_an_api_key_but_needs_none(client):
    from tests.factories import auth, make_key, make_tenant

    _, key = make_key(make_tenant())
    assert client.get("/health/ready", **auth(key)).status_code == 200


def test_plain_redis_7_means_exact_match_only_and_says_so_once(client, settings, caplog):
    settings.REDIS_URL = MACHINE_REDIS_7
    capabilities_module._probed.clear()
    capabilities_module._warned.clear()
    first = client.get("/health/ready")
    capabilities_module._probed.clear()  # probe again: the warning must not repeat
    second = client.get("/health/ready")
    for response in (first, second):
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "degraded"
        assert body["redis"]["version"].startswith("7.")
        assert body["redis"]["vector_api"] is None
        assert body["redis"]["semantic_cache"] == "unavailable (exact-match only)"
    warnings = [r for r in caplog.records if "exact-match caching only" in r.getMessage()]
    assert len(warnings) == 1


def test_unreachable_redis_is_degraded_not_down(client, settings, tmp_path):
    settings.REDIS_URL = f"unix://{tmp_path}/nothing.sock"
    body = client.get("/health/ready").json()
    assert body["status"] == "degraded"
    assert body["redis"]["ok"] is False and "Error" in body["redis"]["error"]


def test_health_refuses_other_methods_in_the_api_error_shape(client):
    for path in ("/health/live", "/health/ready"):
        response = client.post(path)
        assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
        assert response.json()["error"]["code"] == "method_not_allowed"

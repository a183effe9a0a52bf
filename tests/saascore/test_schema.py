import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_openapi_schema_lists_the_api(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert {"/api/v1/tenant", "/api/v1/keys", "/api/v1/keys/{key_id}"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


def test_the_schema_is_valid_openapi_and_generates_without_warnings(tmp_path):
    """drf-spectacular validates it against the OpenAPI 3 specification; a view it cannot read
    (an operation missing from the schema, a guessed body) is a warning, and fails here."""
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def _operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", path, operation


@pytest.fixture
def schema(client) -> dict:
    return yaml.safe_load(client.get("/api/schema/").content)


def test_every_operation_declares_the_errors_it_can_answer(schema):
    for label, path, operation in _operations(schema):
        codes = set(operation["responses"])
        expected = {"400", "401", "406", "503"}
        if "{" in path:
            expected.add("404")
        if "requestBody" in operation:
            expected |= {"413", "415"}
        assert expected <= codes, (label, expected - codes)
        for code, response in operation["responses"].items():
            assert response["headers"]["X-Request-ID"]["required"] is True, (label, code)
            if code >= "400":
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
            if code in {"402", "429", "503"}:
                assert response["headers"]["Retry-After"]["required"] is True, (label, code)
        assert operation["security"] == [{"ApiKey": []}, {"ApiKeyHeader": []}], label


def test_the_query_declares_admission_idempotency_and_upstream_errors(schema):
    codes = set(schema["paths"]["/api/v1/ai/query"]["post"]["responses"])
    assert {"200", "402", "422", "429", "502"} <= codes


def test_the_error_body_is_one_component(schema):
    components = schema["components"]["schemas"]
    assert components["Error"]["required"] == ["error"]
    assert components["Error"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert set(components["ErrorBody"]["required"]) == {"code", "message", "details"}
    assert schema["components"]["securitySchemes"]["ApiKeyHeader"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key", "description": "`X-API-Key: <api key>`",
    }  # fmt: skip


def test_swagger_ui_is_served_without_a_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page and "cdn.jsdelivr" not in page


def test_metrics_endpoint_is_prometheus_text(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"django_http_requests_total_by_method_total" in response.content

import json

import pytest

from ai.rag.models import Chunk
from tenants.scoping import tenant_scope
from tests.factories import auth, make_key, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_read_update_list_delete(api_client):
    tenant = make_tenant()
    _, key = make_key(tenant)
    created = api_client.post(
        "/api/v1/documents", {"title": "Shipping", "content": "We ship in 2 days.", "source": "kb/shipping"},
        format="json", **auth(key),
    )  # fmt: skip
    assert created.status_code == 201, created.content
    document = created.json()
    assert document["status"] == "ready" and document["chunk_count"] == 1  # ingested at once in tests
    url = f"/api/v1/documents/{document['id']}"
    assert api_client.get(url, **auth(key)).json()["content"] == "We ship in 2 days."
    updated = api_client.patch(url, {"content": "We ship in 3 days."}, format="json", **auth(key)).json()
    assert updated["content"] == "We ship in 3 days."
    listing = api_client.get("/api/v1/documents", **auth(key))
    assert [d["title"] for d in listing.json()] == ["Shipping"] and listing["X-Total-Count"] == "1"
    duplicate = api_client.post("/api/v1/documents", {"title": "Shipping", "content": "x"}, format="json", **auth(key))
    assert duplicate.status_code == 409
    assert api_client.delete(url, **auth(key)).status_code == 204
    assert api_client.get(url, **auth(key)).status_code == 404
    with tenant_scope(tenant):
        assert Chunk.objects.for_tenant(tenant).count() == 0


def test_another_tenants_documents_are_404_and_unchanged(api_client):
    a, b = make_tenant(), make_tenant()
    _, key_a = make_key(a)
    _, key_b = make_key(b)
    doc = api_client.post(
        "/api/v1/documents", {"title": "B's", "content": "secret"}, format="json", **auth(key_b)
    ).json()
    url = f"/api/v1/documents/{doc['id']}"
    assert api_client.get(url, **auth(key_a)).status_code == 404
    assert api_client.patch(url, {"content": "pwned"}, format="json", **auth(key_a)).status_code == 404
    assert api_client.delete(url, **auth(key_a)).status_code == 404
    assert api_client.get("/api/v1/documents", **auth(key_a)).json() == []
    assert api_client.get(url, **auth(key_b)).json()["content"] == "secret"


def test_bulk_upload_of_json_lines_is_all_or_nothing(api_client):
    tenant = make_tenant()
    _, key = make_key(tenant)
    lines = "\n".join(json.dumps({"title": f"Doc {n}", "content": f"Fact number {n}."}) for n in range(5))

    def upload(body: str):
        return api_client.generic("POST", "/api/v1/documents/bulk", body.encode(), content_type="application/x-ndjson",
                                  **auth(key))  # fmt: skip

    bad = upload(lines + '\n{"title": "no content"}')
    assert bad.status_code == 400 and "line 6" in bad.json()["error"]["details"]
    assert api_client.get("/api/v1/documents", **auth(key)).json() == []  # nothing saved
    assert upload("{not json").status_code == 400
    assert upload(lines).json() == {"created": 5, "updated": 0}
    assert upload(lines).json() == {"created": 0, "updated": 5}
    assert len(api_client.get("/api/v1/documents", **auth(key)).json()) == 5


def test_an_empty_page_parameter_is_a_400_not_the_default(api_client):
    _, key = make_key(make_tenant())
    for query in ("limit=", "offset=", "limit=abc"):
        response = api_client.get(f"/api/v1/documents?{query}", **auth(key))
        assert response.status_code == 400, query
        assert query.split("=")[0] in response.json()["error"]["details"]
    assert api_client.get("/api/v1/documents?limit=5", **auth(key)).status_code == 200

"""POST /api/v1/ai/query end to end: real PostgreSQL, Redis and embedder; the remote
LLM is a local HTTP server speaking the OpenAI API, used through the real client."""

import json

import pytest
from django.db import transaction

from ai.rag.models import Document
from ai.tenant_settings.models import TenantAISettings
from billing.models import UsageRecord
from tenants.scoping import tenant_scope
from tests.factories import auth

PASSWORD = "How do I reset my password?"


def ask(client, key, query, **fields):
    return client.post("/api/v1/ai/query", {"query": query, **fields}, format="json", **auth(key))


def ledger(tenant):
    with tenant_scope(tenant):
        return list(UsageRecord.objects.for_tenant(tenant).order_by("created_at").values_list("source", flat=True))


def test_miss_then_exact_then_semantic_hit_then_misses(api_client, helpdesk):
    tenant, key = helpdesk()
    first = ask(api_client, key, PASSWORD)
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["source"] == "llm" and first["X-Cache"] == "MISS"
    assert "Forgot password" in body["response"] and body["model_used"] == "local-extractive"
    assert body["citations"][0]["document"] == "How to reset your password"
    assert set(body["routing"]) == {"intent", "complexity", "model", "cache_strategy", "confidence"}
    assert first["X-Router-Confidence"] and first["X-Request-ID"] == body["request_id"]

    exact = ask(api_client, key, "how do I reset my password")
    assert exact.json()["source"] == "cache" and exact["X-Cache"] == "HIT-EXACT"
    assert exact.json()["cache"]["tier"] == "exact" and exact.json()["response"] == body["response"]

    paraphrase = ask(api_client, key, "What's the way to reset my password?")
    assert paraphrase["X-Cache"] == "HIT-SEMANTIC", paraphrase.json()
    assert paraphrase.json()["cache"]["similarity"] >= paraphrase.json()["cache"]["threshold"]

    unrelated = ask(api_client, key, "What are your support hours?")
    assert unrelated.json()["source"] == "llm"

    other_tenant, other_key = helpdesk()
    assert ask(api_client, other_key, PASSWORD).json()["source"] == "llm"  # never another tenant's entry

    assert ledger(tenant) == ["llm", "cache_exact", "cache_semantic", "llm"]
    assert ledger(other_tenant) == ["llm"]


def test_generation_goes_through_the_routed_model_and_its_fallbacks(api_client, helpdesk, upstream):
    tenant, key = helpdesk()
    upstream.reply(status=500)  # the routed model fails...
    upstream.reply(content="Use the Forgot password link on the sign-in page.", usage=(900, 40))  # ...its fallback
    body = ask(api_client, key, PASSWORD).json()
    models = [r["body"]["model"] for r in upstream.chat_requests()]
    routed = body["routing"]["model"]
    assert models[0] == routed and len(models) == 2 and models[1] != routed
    assert body["model_used"] == models[1] and body["source"] == "llm"
    assert body["response"].startswith("Use the Forgot password link")
    assert body["usage"]["input_tokens"] == 900 and body["usage"]["output_tokens"] == 40
    assert float(body["usage"]["cost_usd"]) > 0
    with tenant_scope(tenant):
        row = UsageRecord.objects.for_tenant(tenant).get(request_id=body["request_id"])
    assert row.model == models[1] and row.input_tokens == 900


def test_upstream_failure_after_every_fallback_is_a_502_with_a_zero_cost_row(api_client, helpdesk, upstream):
    tenant, key = helpdesk()
    with tenant_scope(tenant):
        TenantAISettings.objects.for_tenant(tenant).create(tenant=tenant, local_fallback=False)
    upstream.default.status = 503
    first = ask(api_client, key, PASSWORD)
    second = ask(api_client, key, PASSWORD)
    for response in (first, second):  # nothing was cached
        assert response.status_code == 502
        error = response.json()["error"]
        assert error["code"] == "upstream_failed" and error["details"]["attempts"]
    with tenant_scope(tenant):
        rows = list(UsageRecord.objects.for_tenant(tenant).values_list("source", "cost"))
    assert rows == [("error", 0), ("error", 0)]


def test_changing_a_document_invalidates_and_a_rollback_does_not(api_client, helpdesk):
    tenant, key = helpdesk()
    ask(api_client, key, PASSWORD)
    assert ask(api_client, key, PASSWORD)["X-Cache"] == "HIT-EXACT"

    with tenant_scope(tenant):
        document = Document.objects.for_tenant(tenant).get(title="How to reset your password")
    with pytest.raises(RuntimeError), transaction.atomic():
        api_client.patch(f"/api/v1/documents/{document.pk}", {"content": "ignored"}, format="json", **auth(key))
        raise RuntimeError("rolled back")
    assert ask(api_client, key, PASSWORD)["X-Cache"] == "HIT-EXACT"  # a rollback leaves the cache alone

    new = "To reset your password, ask your workspace owner to send a reset email from Settings > Members."
    assert (
        api_client.patch(f"/api/v1/documents/{document.pk}", {"content": new}, format="json", **auth(key)).status_code
        == 200
    )
    after = ask(api_client, key, PASSWORD)
    assert after.json()["source"] == "llm" and "workspace owner" in after.json()["response"]


def test_personal_data_is_answered_but_never_cached(api_client, helpdesk):
    _, key = helpdesk()
    query = "My email is jane@example.com, how do I reset my password?"
    first = ask(api_client, key, query).json()
    assert first["routing"]["cache_strategy"] == "bypass" and first["cache"]["stored"] == "bypass"
    assert ask(api_client, key, query).json()["source"] == "llm"


def test_an_idempotency_key_replays_the_answer_and_bills_once(api_client, helpdesk):
    tenant, key = helpdesk()
    headers = {**auth(key), "HTTP_IDEMPOTENCY_KEY": "order-42-question-1"}
    first = api_client.post("/api/v1/ai/query", {"query": "How do I export my data?"}, format="json", **headers)
    again = api_client.post("/api/v1/ai/query", {"query": "How do I export my data?"}, format="json", **headers)
    assert again.json() == first.json() and again["Idempotent-Replay"] == "true"
    assert ledger(tenant) == ["llm"]


@pytest.mark.parametrize(
    "body",
    [
        b"", b"{", b"null", b"[]", b'"text"', b"{}", b'{"query": ""}', b'{"query": "   "}', b'{"query": 42}',
        b'{"query": ["a"]}', b'{"query": {"$gt": ""}}', json.dumps({"query": "x" * 8001}).encode(),
        b'{"query": "hi", "cache": "sometimes"}', b'{"query": "hi", "user_id": "../../etc/passwd"}',
        b'{"query": "hi", "user_id": "' + b"u" * 129 + b'"}', b'{"query": "\\u0000\\ud800"}',
        b"\xff\xfe\xfa", json.dumps({"query": "a", "extra": "x" * 2_000_000}).encode(),
    ],
)  # fmt: skip
def test_malformed_and_hostile_bodies_get_a_4xx_json_error(api_client, helpdesk, body):
    _, key = helpdesk()
    response = api_client.generic("POST", "/api/v1/ai/query", body, content_type="application/json", **auth(key))
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    assert set(response.json()["error"]) == {"code", "message", "details"}

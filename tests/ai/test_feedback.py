"""POST /api/v1/ai/feedback (and /v1/feedback): a bad rating drops the cached answer from every
tier and alias at once and labels the pair for the tenant; a good one labels it; nothing a
client sends reaches another tenant's ledger, cache or labels."""

import json

import redis
from django.conf import settings

from ai.cache import get_cache
from ai.cache.keys import CacheScope, query_hash
from ai.embeddings import get_embedder
from ai.verifier.models import LabelledPair
from saascore import metrics
from saascore.redis.breaker import BreakerState
from tenants.scoping import tenant_scope
from tests.factories import auth
from tests.redis_servers import paused, private_redis
from tests.serving import http, served, wait_until

ORIGINAL = "How do I reset my password?"
PARAPHRASE = "What's the way to reset my password?"


def ask(client, key, query):
    response = client.post("/api/v1/ai/query", {"query": query}, format="json", **auth(key))
    assert response.status_code == 200, response.content
    return response


def rate(client, key, path="/api/v1/ai/feedback", **body):
    return client.post(path, body, format="json", **auth(key))


def pairs(tenant):
    with tenant_scope(tenant):
        return list(LabelledPair.objects.for_tenant(tenant).values_list("text_a", "text_b", "same", "source"))


def counted(rating, outcome):
    return metrics.CACHE_FEEDBACK.labels(rating=rating, outcome=outcome)._value.get()


def test_a_bad_rating_of_a_semantic_hit_drops_the_entry_and_labels_the_pair(api_client, helpdesk):
    tenant, key = helpdesk()
    assert ask(api_client, key, ORIGINAL)["X-Cache"] == "MISS"
    hit = ask(api_client, key, PARAPHRASE)
    assert hit["X-Cache"] == "HIT-SEMANTIC"
    before = counted("bad", "evicted")

    rated = rate(api_client, key, request_id=hit["x-saascore-request-id"], rating="bad", comment="wrong answer")
    assert rated.status_code == 200, rated.content
    assert rated.json() == {
        "request_id": hit["x-saascore-request-id"], "cache_key": hit["x-saascore-cache-key"],
        "evicted": True, "labelled": True,
    }  # fmt: skip
    assert pairs(tenant) == [(PARAPHRASE, ORIGINAL, False, "feedback")]
    assert counted("bad", "evicted") == before + 1
    # Gone from both tiers: the original question and the paraphrase are asked upstream again.
    assert ask(api_client, key, ORIGINAL)["X-Cache"] == "MISS"
    assert ask(api_client, key, "how do i reset my password")["X-Cache"] == "HIT-EXACT"  # the new answer

    again = rate(api_client, key, request_id=hit["x-saascore-request-id"], rating="bad")
    assert again.json()["evicted"] is False and len(pairs(tenant)) == 1  # nothing left to drop, one label


def test_a_good_rating_labels_the_pair_and_a_later_bad_one_replaces_it(api_client, helpdesk):
    tenant, key = helpdesk()
    ask(api_client, key, ORIGINAL)
    hit = ask(api_client, key, PARAPHRASE)
    request_id = hit["x-saascore-request-id"]
    good = rate(api_client, key, request_id=request_id, rating="good")
    assert good.json()["labelled"] is True and good.json()["evicted"] is False
    assert pairs(tenant) == [(PARAPHRASE, ORIGINAL, True, "feedback")]
    assert ask(api_client, key, PARAPHRASE)["X-Cache"].startswith("HIT")  # still cached

    rate(api_client, key, request_id=request_id, rating="bad")
    assert pairs(tenant) == [(PARAPHRASE, ORIGINAL, False, "feedback")]


def test_a_miss_rated_bad_by_its_cache_key_leaves_the_cache_without_a_label(api_client, helpdesk):
    tenant, key = helpdesk()
    miss = ask(api_client, key, ORIGINAL)
    rated = rate(api_client, key, cache_key=miss["x-saascore-cache-key"], rating="bad")
    assert rated.status_code == 200 and rated.json()["evicted"] is True and rated.json()["labelled"] is False
    assert rated.json()["request_id"] == miss["x-saascore-request-id"]
    assert pairs(tenant) == []
    assert ask(api_client, key, ORIGINAL)["X-Cache"] == "MISS"


def test_another_tenant_can_neither_rate_nor_drop_an_answer(api_client, helpdesk):
    tenant, key = helpdesk()
    other, other_key = helpdesk()
    ask(api_client, key, ORIGINAL)
    hit = ask(api_client, key, PARAPHRASE)

    by_id = rate(api_client, other_key, request_id=hit["x-saascore-request-id"], rating="bad")
    by_key = rate(api_client, other_key, cache_key=hit["x-saascore-cache-key"], rating="bad")
    assert by_id.status_code == 404 and by_id.json()["error"]["code"] == "not_found"
    assert by_key.status_code == 404
    assert ask(api_client, key, PARAPHRASE)["X-Cache"].startswith("HIT")  # the owner's entry is untouched
    assert pairs(tenant) == [] and pairs(other) == []


def test_bad_input_is_a_clear_400(api_client, helpdesk):
    _, key = helpdesk()
    for body in (
        {"rating": "bad"},  # neither id
        {"rating": "bad", "request_id": "r", "cache_key": "0" * 16 + "." + "0" * 32},  # both
        {"rating": "meh", "request_id": "r"},
        {"rating": "bad", "cache_key": "../../e:0:1"},
        {"rating": "bad", "request_id": 7},
        {"rating": "good", "request_id": "r", "comment": "x" * 301},
    ):
        response = rate(api_client, key, **body)
        assert response.status_code == 400, (body, response.content)
        assert response.json()["error"]["code"] in ("invalid", "validation_error", "bad_request"), response.json()
    assert rate(api_client, key, request_id="never-seen", rating="good").status_code == 404
    assert api_client.post("/api/v1/ai/feedback", {"rating": "bad"}, format="json").status_code == 401


def test_openai_callers_rate_at_v1_feedback(api_client, helpdesk):
    _, key = helpdesk()
    body = {"model": "auto", "messages": [{"role": "user", "content": ORIGINAL}]}
    first = api_client.post("/v1/chat/completions", body, format="json", **auth(key))
    assert first.status_code == 200, first.content
    rated = rate(api_client, key, "/v1/feedback", request_id=first["x-saascore-request-id"], rating="bad")
    assert rated.status_code == 200 and rated.json()["evicted"] is True
    again = api_client.post("/v1/chat/completions", body, format="json", **auth(key))
    assert again["x-saascore-cache"] == "MISS"
    refused = rate(api_client, key, "/v1/feedback", rating="bad")
    assert refused.status_code == 400 and "error" in refused.json()  # OpenAI's error shape


def test_rating_an_exact_alias_drops_the_original_and_every_alias(helpdesk):
    """Served by the real server, whose event loop writes the alias after answering."""
    tenant, key = helpdesk()
    assert pairs(tenant) == []
    client = redis.Redis.from_url(settings.REDIS_URL)
    scope = CacheScope(tenant.pk, get_embedder().id)
    original, alias = scope.entry_key(query_hash(ORIGINAL)), scope.entry_key(query_hash(PARAPHRASE))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def post(path, body):
        status, response_headers, reply = http("POST", f"{server.base}{path}", headers, json.dumps(body).encode())
        return status, response_headers, reply

    with served(workers=1) as server:
        post("/api/v1/ai/query", {"query": ORIGINAL})
        assert post("/api/v1/ai/query", {"query": PARAPHRASE})[1]["X-Cache"] == "HIT-SEMANTIC"
        wait_until(lambda: client.exists(alias), timeout=10, what="the alias")
        status, aliased, _ = post("/api/v1/ai/query", {"query": PARAPHRASE})
        assert aliased["X-Cache"] == "HIT-EXACT"

        status, _, reply = post("/api/v1/ai/feedback", {"cache_key": aliased["x-saascore-cache-key"], "rating": "bad"})
        assert status == 200 and reply["evicted"] is True, reply
        assert client.exists(original, alias) == 0
        assert post("/api/v1/ai/query", {"query": PARAPHRASE})[1]["X-Cache"] == "MISS"
    # The key names the newest answer it gave: the alias's exact hit of the paraphrase.
    assert pairs(tenant) == [(PARAPHRASE, ORIGINAL, False, "feedback")]


def test_a_bad_rating_while_redis_stalls_is_a_503_that_keeps_the_label_and_a_retry_evicts(
    api_client, helpdesk, tmp_path, settings
):
    with private_redis(tmp_path, search=False) as server:
        settings.REDIS_URL = server.url
        tenant, key = helpdesk()
        ask(api_client, key, ORIGINAL)
        hit = ask(api_client, key, PARAPHRASE)
        assert hit["X-Cache"] == "HIT-SEMANTIC"
        before = counted("bad", "unavailable")

        with paused(server):
            refused = rate(api_client, key, request_id=hit["x-saascore-request-id"], rating="bad")
        assert refused.status_code == 503, refused.content
        assert refused.json()["error"]["code"] == "cache_unavailable" and int(refused["Retry-After"]) >= 1
        assert counted("bad", "unavailable") == before + 1
        assert pairs(tenant) == [(PARAPHRASE, ORIGINAL, False, "feedback")]  # the rating is kept

        wait_until(lambda: get_cache().breaker.state is not BreakerState.OPEN, timeout=30, what="the breaker to close")
        retried = rate(api_client, key, request_id=hit["x-saascore-request-id"], rating="bad")
        assert retried.status_code == 200 and retried.json()["evicted"] is True, retried.content
        assert len(pairs(tenant)) == 1
        assert ask(api_client, key, ORIGINAL)["X-Cache"] == "MISS"

"""A question answered by the semantic tier stores an exact-tier alias of the answer (same
generation, no longer TTL than the original): its repeats are exact hits, with no embedding
and no search; an invalidation retires the alias with the original.

Served by the real server (uvicorn), whose event loop writes the alias after the answer.
"""

import json

import redis
from django.conf import settings

from ai.cache.keys import CacheScope, query_hash
from ai.embeddings import get_embedder
from ai.rag.services import documents_bulk_upsert
from tests.serving import http, served, wait_until

ORIGINAL = "How do I reset my password?"
PARAPHRASE = "What's the way to reset my password?"


def ask(base: str, key: str, query: str) -> tuple[str, dict]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    status, response_headers, body = http(
        "POST", f"{base}/api/v1/ai/query", headers, json.dumps({"query": query}).encode()
    )
    assert status == 200, body
    return response_headers["X-Cache"], body


def test_a_semantic_hit_leaves_an_exact_alias_that_dies_with_the_original(helpdesk):
    tenant, key = helpdesk()
    client = redis.Redis.from_url(settings.REDIS_URL)
    scope = CacheScope(tenant.pk, get_embedder().id)
    original, alias = scope.entry_key(query_hash(ORIGINAL)), scope.entry_key(query_hash(PARAPHRASE))
    with served(workers=1) as server:
        assert ask(server.base, key, ORIGINAL)[0] == "MISS"
        tier, semantic = ask(server.base, key, PARAPHRASE)
        assert tier == "HIT-SEMANTIC"
        wait_until(lambda: client.exists(alias), timeout=10, what="the alias")
        assert client.hget(alias, "g") == client.hget(original, "g")  # the entry's generation field
        # Absolute expiry instants: two PTTL reads a millisecond apart disagree by that millisecond.
        assert 0 < client.pexpiretime(alias) <= client.pexpiretime(original)

        tier, repeat = ask(server.base, key, PARAPHRASE)
        assert tier == "HIT-EXACT" and repeat["response"] == semantic["response"]
        assert repeat["routing"] is None  # answered before embedding and routing

        documents_bulk_upsert(tenant=tenant, rows=[{"title": "New", "content": "Passwords now reset by SMS."}])
        wait_until(lambda: ask(server.base, key, PARAPHRASE)[0] == "MISS", timeout=10, what="the alias retired")

"""Every Redis call of the request path goes through one guard (ai/cache/guard.py): a stalled
Redis costs nothing once the breaker opens, an answering Redis never opens it, and the
vector backend is chosen from what the server says once it can say it."""

import os
import signal
import time
from contextlib import contextmanager

import pytest
import redis

from ai.cache import build_cache
from ai.cache import semantic as semantic_module
from ai.cache.backends.vectorset import VectorSetIndex
from ai.cache.entries import CacheEntry
from ai.cache.keys import CacheScope
from ai.cache.semantic import SemanticCache
from saascore.redis.breaker import BreakerState, CircuitBreaker
from tests.ai.cache.vectors import vec
from tests.factories import auth
from tests.redis_servers import private_redis

TIMEOUT = 0.5  # the Redis socket timeout of these tests: what a stalled call costs


@contextmanager
def paused(server):
    pid = int((server.data_dir / "redis.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.django_db(transaction=True)
def test_a_stalled_redis_costs_nothing_once_the_breaker_opens(api_client, helpdesk, settings, tmp_path):
    """Rate limit, idempotency, exact and semantic tiers, single flight: none waits on a paused Redis
    after the breaker opened (before, each request paid the rate limit's and idempotency's timeouts)."""
    _, key = helpdesk()
    with private_redis(tmp_path, search=False) as server:
        settings.REDIS_URL = server.url
        settings.AI = {"REDIS_SOCKET_TIMEOUT": TIMEOUT, "REDIS_CONNECT_TIMEOUT": TIMEOUT}
        query = {"query": "How do I reset my password?"}
        assert api_client.post("/api/v1/ai/query", query, format="json", **auth(key)).status_code == 200
        with paused(server):
            timings = []
            for n in range(12):
                started = time.monotonic()
                response = api_client.post(
                    "/api/v1/ai/query", query, format="json", HTTP_IDEMPOTENCY_KEY=f"k{n}", **auth(key)
                )
                timings.append(time.monotonic() - started)
                assert response.status_code == 200, response.content  # fail open: answered without the cache
        settled = timings[6:]  # the breaker opens after its first failures
        assert max(settled) < TIMEOUT, timings  # not one Redis timeout paid any more
        assert sum(timings[:6]) < 10 * TIMEOUT  # and the first ones paid a few, not one per call


def test_an_out_of_memory_write_does_not_open_the_breaker_for_reads(tmp_path):
    with private_redis(tmp_path, search=False) as server:
        client = redis.Redis.from_url(server.url)
        cache = SemanticCache(client, index=VectorSetIndex(), breaker=CircuitBreaker(failure_threshold=1))
        scope = CacheScope(1, "emb")
        generation = cache.lookup_exact(scope, "q").generation
        assert cache.store(scope, generation, CacheEntry(query="q", response="a"), ttl=300, vector=vec("q")).stored
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")  # every write is refused from now on: OOM
        refused = cache.store(scope, generation, CacheEntry(query="r", response="b"), ttl=300, vector=vec("r"))
        assert not refused.stored and refused.reason == "error"
        assert cache.breaker.state is BreakerState.CLOSED  # Redis answered: it is there
        assert cache.lookup_exact(scope, "q").hit.entry.response == "a"  # and its reads still serve
        client.config_set("maxmemory", "0")


def test_a_cache_built_while_redis_was_down_asks_the_server_once_it_answers(tmp_path, monkeypatch):
    monkeypatch.setattr(semantic_module, "INDEX_PROBE_RETRY_SECONDS", 0.0)
    with private_redis(tmp_path, search=False) as server:
        server.stop()
        client = redis.Redis.from_url(server.url, socket_timeout=0.2, socket_connect_timeout=0.2)
        cache = build_cache(client, backend="auto")
        assert cache.index is None  # nothing known yet, nothing guessed
        server.start()
        cache.breaker.record_success()  # the breaker's cool-down would otherwise hold the probe back
        assert isinstance(cache.index, VectorSetIndex)

"""Exact-only mode, Redis dying mid-test, single flight, and memory pressure."""

import threading
import time

import pytest
import redis

from ai.cache import build_cache
from ai.cache.entries import CacheEntry
from ai.cache.keys import CacheScope, query_hash
from ai.cache.semantic import SemanticCache
from saascore.redis.breaker import BreakerState, CircuitBreaker
from saascore.redis.connection import redis_client
from tests.ai.cache.vectors import vec
from tests.redis_servers import private_redis

TTL = 300


def test_plain_redis_7_gives_exact_match_caching_only(exact_only_cache, tenant_ids):
    cache = exact_only_cache
    assert cache.index is None
    scope = CacheScope(tenant_ids(), "emb")
    generation = cache.lookup_exact(scope, "hello").generation
    assert cache.store(scope, generation, CacheEntry(query="hello", response="hi"), ttl=TTL, vector=vec("hello")).stored
    assert cache.lookup_exact(scope, "Hello!").hit
    assert cache.lookup_semantic(scope, generation, "hi there", vec("hello"), 0.5).reason == "no_vector_api"
    cache.invalidate(scope.tenant_id)
    assert not cache.lookup_exact(scope, "hello").hit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_redis_killed_mid_test_means_fast_misses_then_recovery(tmp_path, tenant_ids, settings):
    clock = FakeClock()
    with private_redis(tmp_path, search=False) as server:
        settings.AI = {"REDIS_SOCKET_TIMEOUT": 0.2, "REDIS_CONNECT_TIMEOUT": 0.2}
        client = redis_client(server.url)
        cache = SemanticCache(
            client,
            index=build_cache(client, backend="vectorset").index,
            breaker=CircuitBreaker(failure_threshold=3, reset_after=5.0, clock=clock),
        )
        scope = CacheScope(tenant_ids(), "emb")
        generation = cache.lookup_exact(scope, "q").generation
        cache.store(scope, generation, CacheEntry(query="q", response="a"), ttl=TTL, vector=vec("q"))
        assert cache.lookup_exact(scope, "q").hit

        server.stop()
        for _ in range(3):
            started = time.monotonic()
            found = cache.lookup_exact(scope, "q")
            assert not found.hit and found.reason == "error"
            assert time.monotonic() - started < 1.0  # within the socket timeout, not a hang
        assert cache.breaker.state is BreakerState.OPEN
        started = time.monotonic()
        assert cache.lookup_exact(scope, "q").reason == "error"  # breaker open: no call at all
        assert time.monotonic() - started < 0.01
        assert cache.store(scope, generation, CacheEntry(query="q", response="a"), ttl=TTL).reason == "error"

        server.start()
        clock.now += 5.0  # the cool-down passes; the next call is the probe
        assert cache.breaker.state is BreakerState.HALF_OPEN
        found = cache.lookup_exact(scope, "q")
        assert found.reason == "miss"  # the restarted Redis kept nothing
        assert cache.breaker.state is BreakerState.CLOSED
        cache.store(scope, found.generation, CacheEntry(query="q", response="b"), ttl=TTL, vector=vec("q"))
        assert cache.lookup_exact(scope, "q").hit.entry.response == "b"


def test_fifty_concurrent_identical_misses_make_one_upstream_call(main_redis, tenant_ids):
    cache = build_cache(main_redis, backend="vectorset")
    scope = CacheScope(tenant_ids(), "emb")
    query = "What does the Pro plan cost?"
    callers = 50
    upstream_calls = []
    followers_waiting = threading.Semaphore(0)
    answers: list[str] = []
    start = threading.Barrier(callers)

    def upstream() -> str:
        upstream_calls.append(1)
        for _ in range(callers - 1):  # answer only once every follower is waiting
            assert followers_waiting.acquire(timeout=30)
        return "$49 a month"

    def ask() -> None:
        start.wait()
        found = cache.lookup_exact(scope, query)
        if found.hit:
            answers.append(found.hit.entry.response)
            return
        flight = cache.take_off(scope, query)
        if flight.leader:
            try:
                response = upstream()
                cache.store(scope, found.generation, CacheEntry(query=query, response=response), ttl=TTL)
                answers.append(response)
            finally:
                flight.release()
        else:
            followers_waiting.release()
            waited = cache.wait_for_leader(flight, scope, query, max_wait=30)
            answers.append(waited.hit.entry.response if waited.hit else upstream())

    threads = [threading.Thread(target=ask) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(upstream_calls) == 1
    assert answers == ["$49 a month"] * callers


def test_followers_fall_back_to_their_own_call_when_the_leader_gives_up(main_redis, tenant_ids):
    cache = build_cache(main_redis, backend="vectorset")
    scope = CacheScope(tenant_ids(), "emb")
    leader = cache.take_off(scope, "q")
    follower = cache.take_off(scope, "q")
    assert leader.leader and not follower.leader
    leader.release()  # e.g. the upstream failed: nothing was cached
    started = time.monotonic()
    assert cache.wait_for_leader(follower, scope, "q", max_wait=30).reason == "single_flight_fallback"
    assert not follower.leader and time.monotonic() - started < 1  # told at once, not after max_wait


def test_a_dead_leaders_lock_expires_and_exactly_one_follower_takes_over(main_redis, tenant_ids, settings):
    """A worker killed mid-call never releases its lock: it expires, one follower leads, the rest follow it."""
    settings.AI = {"SINGLE_FLIGHT_LOCK_TTL": 0.5}
    cache = build_cache(main_redis, backend="vectorset")
    scope = CacheScope(tenant_ids(), "emb")
    query = "Is the Pro plan billed monthly?"
    main_redis.set(scope.lock_key(query_hash(query)), "killed-worker", px=500)  # nobody renews it
    callers, upstream_calls, answers = 20, [], []
    start = threading.Barrier(callers)

    def ask() -> None:
        start.wait()
        found = cache.lookup_exact(scope, query)
        flight = cache.take_off(scope, query)
        try:
            if not flight.leader:
                waited = cache.wait_for_leader(flight, scope, query, max_wait=30)
                if waited.hit:
                    answers.append(waited.hit.entry.response)
                    return
            upstream_calls.append(flight.leader)
            cache.store(scope, found.generation, CacheEntry(query=query, response="yes"), ttl=TTL)
            answers.append("yes")
        finally:
            flight.release()

    threads = [threading.Thread(target=ask) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert upstream_calls == [True]  # one call, made by the follower that took the lead
    assert answers == ["yes"] * callers


def test_a_leader_slower_than_its_lock_ttl_keeps_its_followers(main_redis, tenant_ids, settings):
    """The lock is renewed while the leader works: a long model chain is not a dead leader."""
    settings.AI = {"SINGLE_FLIGHT_LOCK_TTL": 0.3}
    cache = build_cache(main_redis, backend="vectorset")
    scope = CacheScope(tenant_ids(), "emb")
    query = "Can I pay by invoice?"
    generation = cache.lookup_exact(scope, query).generation
    leader = cache.take_off(scope, query)
    followers = [cache.take_off(scope, query) for _ in range(5)]
    assert leader.leader and not any(f.leader for f in followers)
    results: list = []

    def follow(flight) -> None:
        results.append(cache.wait_for_leader(flight, scope, query, max_wait=30))

    threads = [threading.Thread(target=follow, args=(f,)) for f in followers]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # the upstream's latency: five lock TTLs
    assert main_redis.exists(scope.lock_key(query_hash(query)))  # renewed, still the leader's
    cache.store(scope, generation, CacheEntry(query=query, response="yes, on Pro"), ttl=TTL)
    leader.release()
    for thread in threads:
        thread.join(timeout=30)
    assert [r.hit.entry.response for r in results] == ["yes, on Pro"] * 5
    assert not any(f.leader for f in followers)


def test_generations_survive_memory_pressure_and_no_stale_entry_is_served(tmp_path, tenant_ids):
    with private_redis(tmp_path, maxmemory="4mb", search=False) as server:
        client = redis.Redis.from_url(server.url)
        cache = build_cache(client, backend="vectorset")
        tenants = [CacheScope(tenant_ids(), "emb") for _ in range(5)]
        for scope in tenants:
            generation = cache.lookup_exact(scope, "old question").generation
            cache.store(scope, generation, CacheEntry(query="old question", response="old"), ttl=TTL, vector=vec("o"))
            cache.invalidate(scope.tenant_id)
        generations = {scope.tenant_id: client.get(scope.generation_key) for scope in tenants}

        filler = CacheScope(tenant_ids(), "emb")
        generation = cache.lookup_exact(filler, "x").generation
        big = "x" * 20_000
        for n in range(600):  # ~12 MB of entries into a 4 MB Redis
            cache.store(filler, generation, CacheEntry(query=f"filler {n}", response=big), ttl=TTL, vector=vec(str(n)))
        assert client.info("stats")["evicted_keys"] > 0

        for scope in tenants:
            assert client.get(scope.generation_key) == generations[scope.tenant_id]
            assert not cache.lookup_exact(scope, "old question").hit
            found = cache.lookup_exact(scope, "old question")
            assert not cache.lookup_semantic(scope, found.generation, "old question", vec("o"), 0.5).hit


def test_a_lost_generation_key_never_revives_old_entries(main_redis, tenant_ids):
    cache = build_cache(main_redis, backend="vectorset")
    scope = CacheScope(tenant_ids(), "emb")
    generation = cache.lookup_exact(scope, "q").generation
    cache.store(scope, generation, CacheEntry(query="q", response="old"), ttl=TTL, vector=vec("q"))
    main_redis.delete(scope.generation_key)  # evicted by a Redis with allkeys-lru, say
    found = cache.lookup_exact(scope, "q")
    assert not found.hit and found.generation > generation


@pytest.mark.parametrize("failure_threshold", [1, 3])
def test_breaker_half_open_lets_one_probe_through(failure_threshold):
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=failure_threshold, reset_after=2.0, clock=clock)
    for _ in range(failure_threshold):
        assert breaker.allow()
        breaker.record_failure()
    assert not breaker.allow()
    clock.now += 2.0
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 2.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


def test_a_small_pool_under_many_threads_waits_instead_of_failing(tenant_ids, settings):
    settings.AI = {"REDIS_MAX_CONNECTIONS": 4, "REDIS_POOL_TIMEOUT": 5.0}
    client = redis_client(f"{settings.REDIS_URL}?db=0")  # a URL of its own: a pool of its own
    cache = build_cache(client, backend="vectorset")
    scope = CacheScope(tenant_ids(), "emb")
    generation = cache.lookup_exact(scope, "q").generation
    cache.store(scope, generation, CacheEntry(query="q", response="a"), ttl=TTL, vector=vec("q"))
    results: list[str] = []

    def hammer() -> None:
        for _ in range(25):
            found = cache.lookup_exact(scope, "q")
            results.append(found.reason)
            found = cache.lookup_semantic(scope, generation, "q", vec("q"), 0.9)
            results.append(found.reason)

    threads = [threading.Thread(target=hammer) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 32 * 50
    assert set(results) == {"hit", "similar"}  # no "error": nobody was refused a connection
    assert client.connection_pool.max_connections == 4

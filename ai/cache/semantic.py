"""The two-tier cache: exact (hash of the normalised query) then semantic
(nearest cached query of the same scope).

Guarantees:
- Isolation by key: every key carries the tenant's hash tag, and a lookup only
  ever names keys of its own scope (tenant, embedder, optional end user).
- Invalidation is O(1): ``invalidate`` moves the tenant's generation forward;
  entries of older generations never match again and expire by TTL. A
  generation never repeats, even if its key is lost, because a new one starts
  from the clock.
- A hit never extends an entry's TTL. Vector members whose entry is gone are
  removed when a search meets them.
- Fail open: every Redis error is logged, counted and answered as a miss (or a
  skipped write); a circuit breaker stops calling a Redis that keeps failing.
- Queries with personal data are never stored, nor answers with personal data
  that their sources (the tenant's own passages) do not contain.
- A tenant whose invalidation Redis did not take (``pending``, ai/cache/invalidation.py)
  is not answered from the cache until a later one succeeds: its lookups answer
  "no generation", as when Redis is down, without a Redis call.

Not guaranteed: an entry written just before ``invalidate`` by a request that
read the old generation is stored under the old generation, so it never serves.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import redis

from ai.cache.backends import VectorIndex
from ai.cache.entries import FETCH_FIELDS, CacheEntry
from ai.cache.judge import HitJudge, Verdict
from ai.cache.keys import CacheScope, generation_key, query_hash
from ai.cache.pending import PENDING, PendingTenants
from ai.cache.pii import personal_data_kinds, personal_data_outside
from ai.cache.singleflight import Flight, take_off
from saascore import metrics
from saascore.redis.breaker import CircuitBreaker
from saascore.redis.guard import RedisGuard

logger = logging.getLogger("saascore.cache")

# A generation starts from the server's clock (microseconds) and only moves forward.
# One clock (Redis's) for every app host, and a resolution at which a key lost and
# made again never gets the value it had.
_SERVER_MICROSECONDS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""
_ENSURE_GENERATION = (
    """
local current = redis.call('GET', KEYS[1])
if current then return current end
"""
    + _SERVER_MICROSECONDS
    + """
redis.call('SET', KEYS[1], string.format('%d', now))
return string.format('%d', now)
"""
)
_BUMP_GENERATION = (
    _SERVER_MICROSECONDS
    + """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local nxt = math.max(current + 1, now)
redis.call('SET', KEYS[1], string.format('%d', nxt))
return string.format('%d', nxt)
"""
)


# How long a cache whose server could not be asked waits before asking again.
INDEX_PROBE_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class CacheHit:
    entry: CacheEntry
    tier: str  # "exact" | "semantic"
    similarity: float
    threshold: float | None = None


@dataclass(frozen=True)
class Lookup:
    """What a lookup found. ``generation`` is None when Redis could not be asked."""

    hit: CacheHit | None
    generation: int | None
    reason: str
    similarity: float | None = None


@dataclass(frozen=True)
class Stored:
    stored: bool
    reason: str


class SemanticCache:
    def __init__(
        self,
        client: redis.Redis,
        *,
        index: VectorIndex | None,
        judge: HitJudge | None = None,
        breaker: CircuitBreaker | None = None,
        guard: RedisGuard | None = None,
        find_index: Callable[[], VectorIndex | None] | None = None,
        candidates: int = 4,
        pending: PendingTenants = PENDING,
    ) -> None:
        self.client = client
        self.pending = pending
        self.guard = guard or RedisGuard(client, breaker)
        self._index = index
        # The server was not reachable when the backend had to be chosen: ask it again later.
        self._find_index = find_index
        self._next_probe = 0.0
        self.judge = judge or HitJudge()
        self.candidates = candidates
        self._ensure = client.register_script(_ENSURE_GENERATION)
        self._bump = client.register_script(_BUMP_GENERATION)

    @property
    def breaker(self) -> CircuitBreaker:
        return self.guard.breaker

    @property
    def index(self) -> VectorIndex | None:
        """The vector backend; chosen from what the server supports once it can be asked."""
        if self._find_index is not None and time.monotonic() >= self._next_probe:
            found = self.guard.call("capabilities", lambda client: (self._find_index(),), None)
            if found is None:
                self._next_probe = time.monotonic() + INDEX_PROBE_RETRY_SECONDS
            else:
                self._index, self._find_index = found[0], None
        return self._index

    # -- fail open ------------------------------------------------------------

    def _call(self, op: str, fn, default):
        return self.guard.call(op, lambda client: fn(), default)

    # -- generation -----------------------------------------------------------

    def _generation(self, tenant_id: int, current: bytes | None) -> int:
        if current is not None:
            return int(current)
        return int(self._ensure(keys=[generation_key(tenant_id)]))

    def invalidate(self, tenant_id: int) -> int | None:
        """Start a new generation for the tenant: no older entry is served again."""
        return self._call("invalidate", lambda: int(self._bump(keys=[generation_key(tenant_id)])), None)

    # -- exact tier -------------------------------------------------------------

    def _held(self, scope: CacheScope) -> bool:
        if scope.tenant_id in self.pending:
            metrics.CACHE_SKIPS.labels(reason="invalidation_pending").inc()
            return True
        return False

    def lookup_exact(self, scope: CacheScope, query: str) -> Lookup:
        if self._held(scope):
            return Lookup(None, None, "invalidation_pending")
        started = time.perf_counter()
        lookup = self._call("lookup_exact", lambda: self._lookup_exact(scope, query), Lookup(None, None, "error"))
        _observe("exact", lookup, started)
        return lookup

    def _lookup_exact(self, scope: CacheScope, query: str) -> Lookup:
        pipe = self.client.pipeline(transaction=False)
        pipe.get(scope.generation_key)
        pipe.hmget(scope.entry_key(query_hash(query)), FETCH_FIELDS)
        current, values = pipe.execute()
        generation = self._generation(scope.tenant_id, current)
        entry = CacheEntry.from_values(values)
        if entry is None or entry.generation != generation:
            return Lookup(None, generation, "miss")
        return Lookup(CacheHit(entry, "exact", 1.0, entry.threshold), generation, "hit", 1.0)

    def entry_count(self, scope: CacheScope, dim: int) -> int | None:
        """Semantic entries of the scope's current generation; None without a vector index or on error."""
        if self.index is None:
            return None

        def count() -> int:
            generation = self._generation(scope.tenant_id, self.client.get(scope.generation_key))
            return self.index.count(self.client, scope, generation, dim)

        return self._call("entry_count", count, None)

    # -- semantic tier ------------------------------------------------------------

    def lookup_semantic(
        self,
        scope: CacheScope,
        generation: int,
        query: str,
        vector: np.ndarray,
        threshold: float,
        *,
        intent: str | None = None,
    ) -> Lookup:
        """The nearest entry the judge accepts; ``intent`` is the router's for this query."""
        if self.index is None:
            return Lookup(None, generation, "no_vector_api")
        if self._held(scope):
            return Lookup(None, None, "invalidation_pending")
        started = time.perf_counter()
        lookup = self._call(
            "lookup_semantic",
            lambda: self._lookup_semantic(scope, generation, query, vector, threshold, intent),
            Lookup(None, generation, "error"),
        )
        _observe("semantic", lookup, started)
        return lookup

    def _lookup_semantic(
        self, scope: CacheScope, generation: int, query: str, vector: np.ndarray, threshold: float, intent: str | None
    ) -> Lookup:
        members = self.index.search(self.client, scope, generation, vector, self.candidates)
        if not members:
            return Lookup(None, generation, "miss")
        pipe = self.client.pipeline(transaction=False)
        for member in members:
            pipe.hmget(scope.entry_key(member), FETCH_FIELDS)
        entries = [CacheEntry.from_values(values) for values in pipe.execute()]
        stale = [m for m, e in zip(members, entries, strict=True) if e is None or e.generation != generation]
        if stale:
            self.index.remove(self.client, scope, generation, stale)
        live = [e for e in entries if e is not None and e.generation == generation and e.vector is not None]
        if not live:
            return Lookup(None, generation, "miss")
        # Exact cosine from the stored float32 vectors: the same number on every backend.
        similarities = np.stack([e.vector for e in live]) @ np.asarray(vector, dtype=np.float32)
        best: Verdict | None = None
        for position in np.argsort(-similarities):
            entry, similarity = live[position], float(similarities[position])
            verdict = self.judge.judge(
                query, entry.query, similarity, threshold, query_intent=intent, candidate_intent=entry.intent
            )
            if verdict.hit:
                return Lookup(
                    CacheHit(entry, "semantic", similarity, threshold), generation, verdict.reason, similarity
                )
            best = best or verdict
            if similarity < threshold:
                break
        return Lookup(None, generation, best.reason if best else "miss", best.similarity if best else None)

    # -- writes ------------------------------------------------------------------

    def store(
        self,
        scope: CacheScope,
        generation: int,
        entry: CacheEntry,
        *,
        ttl: int,
        vector: np.ndarray | None = None,
        sources: list[str] = (),
    ) -> Stored:
        """Store an answer under ``generation`` (the one its lookup read). ``sources``: the
        tenant's passages the answer was built from; contact details that stand in them are
        the tenant's published data, not personal data (ai/cache/pii.py)."""
        kinds = personal_data_outside(entry.query, []) + personal_data_outside(entry.response, list(sources))
        if kinds:
            metrics.CACHE_SKIPS.labels(reason="personal_data").inc()
            return Stored(False, "personal_data:" + ",".join(sorted(set(kinds))))
        entry.generation = generation
        entry.vector = None if vector is None else np.asarray(vector, dtype=np.float32)
        ok = self._call("store", lambda: self._store(scope, generation, entry, ttl), False)
        return Stored(True, "stored") if ok else Stored(False, "error")

    def _store(self, scope: CacheScope, generation: int, entry: CacheEntry, ttl: int) -> bool:
        pipe = self.client.pipeline(transaction=False)
        self._queue(pipe, scope, generation, entry, ttl)
        pipe.execute()
        return True

    def _queue(self, pipe, scope: CacheScope, generation: int, entry: CacheEntry, ttl: int) -> None:
        qhash = query_hash(entry.query)
        key = scope.entry_key(qhash)
        pipe.hset(key, mapping=entry.to_redis(scope.digest))
        pipe.expire(key, ttl)
        if entry.vector is not None and self.index is not None:
            self.index.add(self.client, pipe, scope, generation, qhash, entry.vector, ttl)

    def store_many(
        self, scope: CacheScope, generation: int, entries: list[tuple[CacheEntry, np.ndarray | None]], *, ttl: int,
        batch: int = 500,
    ) -> int:  # fmt: skip
        """Warm the cache with many answers (an FAQ import, a benchmark), in pipelined batches.

        The same rules as ``store``: entries with personal data are skipped. Returns how many were stored.
        """
        stored = 0
        for start in range(0, len(entries), batch):
            pipe = self.client.pipeline(transaction=False)
            queued = 0
            for entry, vector in entries[start : start + batch]:
                if personal_data_kinds(entry.query) or personal_data_kinds(entry.response):
                    continue
                entry.generation = generation
                entry.vector = None if vector is None else np.asarray(vector, dtype=np.float32)
                self._queue(pipe, scope, generation, entry, ttl)
                queued += 1
            if not self._call("store_many", lambda pipe=pipe: pipe.execute() or True, False):
                break  # Redis failed: the rest would too; the breaker has counted it
            stored += queued
        return stored

    # -- single flight -------------------------------------------------------------

    def take_off(self, scope: CacheScope, query: str) -> Flight:
        """Lead this miss, or follow the caller already leading it (see singleflight)."""
        flight = take_off(self.guard, scope.lock_key(query_hash(query)))
        metrics.CACHE_SINGLE_FLIGHT.labels(outcome="leader" if flight.leader else "follower").inc()
        return flight

    def wait_for_leader(self, flight: Flight, scope: CacheScope, query: str, *, max_wait: float) -> Lookup:
        """The leader's answer from the exact tier; a miss means "answer it yourself" (and if
        this caller took over from a dead leader, ``flight.leader`` is now True)."""

        def fetch() -> Lookup | None:
            found = self.lookup_exact(scope, query)
            return found if found.hit else None

        found = flight.wait(fetch, max_wait)
        outcome = "served" if found is not None else ("took_over" if flight.leader else "fallback")
        metrics.CACHE_SINGLE_FLIGHT.labels(outcome=outcome).inc()
        return found if found is not None else Lookup(None, None, "single_flight_fallback")


def _observe(tier: str, lookup: Lookup, started: float) -> None:
    metrics.CACHE_LOOKUP_SECONDS.labels(tier=tier).observe(time.perf_counter() - started)
    result = "hit" if lookup.hit else ("error" if lookup.reason == "error" else "miss")
    metrics.CACHE_REQUESTS.labels(tier=tier, result=result).inc()

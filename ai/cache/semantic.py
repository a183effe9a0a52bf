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
from ai.cache.entries import FETCH_FIELDS, VECTOR_FIELD, CacheEntry
from ai.cache.judge import HitJudge, Verdict
from ai.cache.keys import CacheScope, EntryId, generation_key, query_hash
from ai.cache.pending import PENDING, PendingTenants
from ai.cache.pii import personal_data_kinds, personal_data_outside
from ai.cache.singleflight import Flight, atake_off, take_off
from saascore import metrics
from saascore.pools import in_cpu
from saascore.redis import keys
from saascore.redis.breaker import CircuitBreaker
from saascore.redis.guard import RedisGuard
from saascore.redis.ops import Batch, Compute, Op, ok, one

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


# The exact-tier alias of a semantic hit: the entry's fields but its vector, under the
# question's own key, expiring when the original does (no alias of a vanished entry). The
# alias names its original (ALIAS_OF) and the original lists its aliases (ALIAS_MARK fields),
# so that evicting either drops both and every other alias (``_EVICT``).
ALIAS_OF = "src"
ALIAS_MARK = "al:"
_ALIAS = f"""
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
local fields = redis.call('HGETALL', KEYS[1])
local copy = {{}}
for i = 1, #fields, 2 do
  if fields[i] ~= ARGV[1] and string.sub(fields[i], 1, {len(ALIAS_MARK)}) ~= '{ALIAS_MARK}' then
    copy[#copy + 1] = fields[i]
    copy[#copy + 1] = fields[i + 1]
  end
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], '{ALIAS_OF}', ARGV[2], unpack(copy))
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('HSET', KEYS[1], '{ALIAS_MARK}' .. ARGV[3], 1)
return 1
"""
# Evict an entry the client named (an original or an alias: ARGV[1] is the scope's key prefix,
# ARGV[2] the named entry's hash), unless it was stored after ARGV[3] (a time; '' for any): the
# original, and every alias of it, in one step. Returns {keys deleted, the original's hash, its generation}.
_EVICT = f"""
local original, qhash = KEYS[1], ARGV[2]
local source = redis.call('HGET', KEYS[1], '{ALIAS_OF}')
if source then original, qhash = ARGV[1] .. source, source end
local stored = tonumber(redis.call('HGET', original, 'ca') or '0') or 0
if ARGV[3] ~= '' and stored > tonumber(ARGV[3]) then return {{0, qhash, ''}} end
local generation = redis.call('HGET', original, 'g')
local dropped = {{KEYS[1]}}
if original ~= KEYS[1] then dropped[#dropped + 1] = original end
for _, name in ipairs(redis.call('HKEYS', original)) do
  if string.sub(name, 1, {len(ALIAS_MARK)}) == '{ALIAS_MARK}' then
    dropped[#dropped + 1] = ARGV[1] .. string.sub(name, {len(ALIAS_MARK) + 1})
  end
end
return {{redis.call('DEL', unpack(dropped)), qhash, generation or ''}}
"""

# How long a cache whose server could not be asked waits before asking again.
INDEX_PROBE_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class CacheHit:
    entry: CacheEntry
    tier: str  # "exact" | "semantic"
    similarity: float
    threshold: float | None = None
    member: str | None = None  # the entry's query hash (semantic hits: what an exact alias copies)


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


HELD = Lookup(None, None, "invalidation_pending")


class SemanticCache:
    """Every operation has a sync method and an async twin (``a``-prefixed), one body of
    logic (a generator, saascore/redis/ops.py) driven with either client."""

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

    async def aindex(self) -> VectorIndex | None:
        """``index``, with the one-off probe of the server off the event loop."""
        if self._find_index is None:
            return self._index
        return await in_cpu(lambda: self.index)

    # -- generation -----------------------------------------------------------

    def _generation(self, tenant_id: int, current: bytes | None) -> Op[int]:
        if current is not None:
            return int(current)
        (created,) = yield one("EVAL", _ENSURE_GENERATION, 1, generation_key(tenant_id))
        return int(ok(created))

    def invalidate(self, tenant_id: int) -> int | None:
        """Start a new generation for the tenant: no older entry is served again."""
        return self.guard.run("invalidate", lambda: _bump(tenant_id), None)

    # -- exact tier -------------------------------------------------------------

    def _held(self, scope: CacheScope) -> bool:
        if scope.tenant_id in self.pending:
            metrics.CACHE_SKIPS.labels(reason="invalidation_pending").inc()
            return True
        return False

    def lookup_exact(self, scope: CacheScope, query: str) -> Lookup:
        if self._held(scope):
            return HELD
        started = time.perf_counter()
        lookup = self.guard.run("lookup_exact", lambda: self._exact(scope, query), Lookup(None, None, "error"))
        return _observed("exact", lookup, started)

    async def alookup_exact(self, scope: CacheScope, query: str) -> Lookup:
        if self._held(scope):
            return HELD
        started = time.perf_counter()
        lookup = await self.guard.arun(
            "lookup_exact", lambda: self._exact(scope, query), Lookup(None, None, "error"), reads_only=True
        )
        return _observed("exact", lookup, started)

    def _exact(self, scope: CacheScope, query: str) -> Op[Lookup]:
        current, values = yield Batch(
            [("GET", scope.generation_key), ("HMGET", scope.entry_key(query_hash(query)), *FETCH_FIELDS)]
        )
        generation = yield from self._generation(scope.tenant_id, ok(current))
        entry = CacheEntry.from_values(ok(values))
        if entry is None or entry.generation != generation:
            return Lookup(None, generation, "miss")
        return Lookup(CacheHit(entry, "exact", 1.0, entry.threshold), generation, "hit", 1.0)

    def entry_count(self, scope: CacheScope, dim: int) -> int | None:
        """Semantic entries of the scope's current generation; None without a vector index or on error."""
        index = self.index
        if index is None:
            return None

        def count() -> Op[int]:
            (current,) = yield one("GET", scope.generation_key)
            generation = yield from self._generation(scope.tenant_id, ok(current))
            return (yield from index.count(scope, generation, dim))

        return self.guard.run("entry_count", count, None)

    # -- semantic tier ------------------------------------------------------------

    def lookup_semantic(
        self, scope: CacheScope, generation: int, query: str, vector: np.ndarray, threshold: float, *,
        intent: str | None = None, documents: tuple[int, ...] = (),
    ) -> Lookup:  # fmt: skip
        """The nearest entry the judge accepts; ``intent`` and ``documents`` are the router's
        for this query (``RoutingDecision``)."""
        early, op = self._semantic_plan(self.index, scope, generation, query, vector, threshold, intent, documents)
        if early is not None:
            return early
        started = time.perf_counter()
        lookup = self.guard.run("lookup_semantic", op, Lookup(None, generation, "error"))
        return _observed("semantic", lookup, started)

    async def alookup_semantic(
        self, scope: CacheScope, generation: int, query: str, vector: np.ndarray, threshold: float, *,
        intent: str | None = None, documents: tuple[int, ...] = (),
    ) -> Lookup:  # fmt: skip
        early, op = self._semantic_plan(
            await self.aindex(), scope, generation, query, vector, threshold, intent, documents
        )
        if early is not None:
            return early
        started = time.perf_counter()
        lookup = await self.guard.arun("lookup_semantic", op, Lookup(None, generation, "error"), reads_only=True)
        return _observed("semantic", lookup, started)

    def _semantic_plan(
        self, index, scope: CacheScope, generation: int, query: str, vector: np.ndarray, threshold: float,
        intent: str | None, documents: tuple[int, ...],
    ) -> tuple[Lookup | None, Callable]:  # fmt: skip
        """The answer without asking Redis (no vector API, a scope held), or the operation to run."""
        if index is None:
            return Lookup(None, generation, "no_vector_api"), None
        if self._held(scope):
            return HELD, None
        return None, lambda: self._semantic(index, scope, generation, query, vector, threshold, intent, documents)

    def _semantic(
        self, index: VectorIndex, scope: CacheScope, generation: int, query: str, vector: np.ndarray,
        threshold: float, intent: str | None, documents: tuple[int, ...],
    ) -> Op[Lookup]:  # fmt: skip
        members = yield from index.search(scope, generation, vector, self.candidates)
        if not members:
            return Lookup(None, generation, "miss")
        replies = yield Batch([("HMGET", scope.entry_key(member), *FETCH_FIELDS) for member in members])
        entries = [CacheEntry.from_values(ok(values)) for values in replies]
        stale = [m for m, e in zip(members, entries, strict=True) if e is None or e.generation != generation]
        if stale and (forget := index.remove_commands(scope, generation, stale)):
            yield Batch(forget)
        live = [
            (m, e)
            for m, e in zip(members, entries, strict=True)
            if e and e.generation == generation and e.vector is not None
        ]
        if not live:
            return Lookup(None, generation, "miss")
        # The judge may ask the verifier (CPU, milliseconds): off the event loop in the async driver.
        return (
            yield Compute(lambda: self._judge(scope, live, generation, query, vector, threshold, intent, documents))
        )

    def _judge(
        self, scope: CacheScope, live: list, generation: int, query: str, vector: np.ndarray, threshold: float,
        intent: str | None, documents: tuple[int, ...],
    ) -> Lookup:  # fmt: skip
        # Exact cosine from the stored float32 vectors: the same number on every backend.
        vectors = np.stack([e.vector for _, e in live])
        similarities = vectors @ np.asarray(vector, dtype=np.float32)
        abouts = [e.about for _, e in live]
        best: Verdict | None = None
        for position in np.argsort(-similarities):
            (member, entry), similarity = live[position], float(similarities[position])
            if similarity >= threshold and self.judge.rivalled(position, similarities, vectors, abouts, threshold):
                verdict = Verdict(False, "ambiguous", similarity)  # before the verifier's cost
            else:
                verdict = self.judge.judge(
                    query, entry.query, similarity, threshold, query_intent=intent, candidate_intent=entry.intent,
                    query_documents=documents, candidate_documents=entry.about, tenant_id=scope.tenant_id,
                )  # fmt: skip
            if verdict.hit:
                hit = CacheHit(entry, "semantic", similarity, threshold, member=member)
                return Lookup(hit, generation, verdict.reason, similarity)
            best = best or verdict
            if similarity < threshold:
                break
        return Lookup(None, generation, best.reason if best else "miss", best.similarity if best else None)

    # -- writes ------------------------------------------------------------------

    def _prepared(self, scope: CacheScope, generation: int, entry: CacheEntry, vector, sources) -> Stored | None:
        """Refuse personal data; otherwise fill the entry in and return None (go on storing)."""
        kinds = personal_data_outside(entry.query, []) + personal_data_outside(entry.response, list(sources))
        if kinds:
            metrics.CACHE_SKIPS.labels(reason="personal_data").inc()
            return Stored(False, "personal_data:" + ",".join(sorted(set(kinds))))
        entry.generation = generation
        entry.vector = None if vector is None else np.asarray(vector, dtype=np.float32)
        return None

    def store(
        self, scope: CacheScope, generation: int, entry: CacheEntry, *, ttl: int, vector: np.ndarray | None = None,
        sources: list[str] = (),
    ) -> Stored:  # fmt: skip
        """Store an answer under ``generation`` (the one its lookup read). ``sources``: the
        tenant's passages the answer was built from; contact details that stand in them are
        the tenant's published data, not personal data (ai/cache/pii.py)."""
        refused = self._prepared(scope, generation, entry, vector, sources)
        if refused:
            return refused
        index = self.index
        done = self.guard.run("store", lambda: self._store(index, scope, generation, [entry], ttl), False)
        return Stored(True, "stored") if done else Stored(False, "error")

    async def astore(
        self, scope: CacheScope, generation: int, entry: CacheEntry, *, ttl: int, vector: np.ndarray | None = None,
        sources: list[str] = (),
    ) -> Stored:  # fmt: skip
        refused = self._prepared(scope, generation, entry, vector, sources)
        if refused:
            return refused
        index = await self.aindex()
        done = await self.guard.arun("store", lambda: self._store(index, scope, generation, [entry], ttl), False)
        return Stored(True, "stored") if done else Stored(False, "error")

    def _store(
        self, index: VectorIndex | None, scope: CacheScope, generation: int, entries: list[CacheEntry], ttl: int
    ) -> Op[bool]:
        commands = []
        for entry in entries:
            qhash = query_hash(entry.query)
            key = scope.entry_key(qhash)
            fields = [item for pair in entry.to_redis(scope.digest).items() for item in pair]
            commands += [("HSET", key, *fields), ("EXPIRE", key, ttl)]
            if entry.vector is not None and index is not None:
                yield from index.prepare(scope, len(entry.vector))
                commands += index.add_commands(scope, generation, qhash, entry.vector, ttl)
        for reply in (yield Batch(commands)):
            ok(reply)  # a write Redis refused (out of memory) is an error, not a silent skip
        return True

    async def aalias(self, scope: CacheScope, hit: CacheHit, query: str) -> bool:
        """A question answered by the semantic tier gets an exact-tier alias of the answer: the same
        entry (same generation, no vector) under the question's own key, for no longer than the
        original lives, so its repeats skip the embedding and the search."""
        if hit.member is None or query_hash(query) == hit.member:
            return False
        qhash = query_hash(query)
        source, alias = scope.entry_key(hit.member), scope.entry_key(qhash)

        def op() -> Op[bool]:
            (reply,) = yield one("EVAL", _ALIAS, 2, source, alias, VECTOR_FIELD, hit.member, qhash)
            return bool(ok(reply))

        return await self.guard.arun("alias", op, False)

    async def aevict(self, tenant_id: int, entry_id: str, *, stored_by: float | None = None) -> int | None:
        """Drop the entry a client names by its ``x-saascore-cache-key`` (``EntryId``) from every
        tier: the exact key, the original behind an alias, every alias, the vector; with
        ``stored_by`` (a time), only an entry stored by then (not a newer answer under the same key).
        Returns the keys deleted (0: nothing to drop), None if Redis could not be asked."""
        named = EntryId.parse(entry_id)
        prefix = keys.entry_prefix(tenant_id, named.scope)
        index = await self.aindex()

        def op() -> Op[int]:
            (reply,) = yield one(
                "EVAL", _EVICT, 1, keys.entry_key(tenant_id, named.scope, named.qhash), prefix, named.qhash,
                "" if stored_by is None else repr(stored_by),
            )  # fmt: skip
            deleted, qhash, generation = ok(reply)
            generation = generation.decode() if isinstance(generation, bytes) else generation
            if index is not None and generation:
                qhash = qhash.decode() if isinstance(qhash, bytes) else qhash
                if forget := index.remove_commands(named.within(tenant_id), int(generation), [qhash]):
                    yield Batch(forget)
            return int(deleted)

        return await self.guard.arun("evict", op, None)

    def store_many(
        self, scope: CacheScope, generation: int, entries: list[tuple[CacheEntry, np.ndarray | None]], *, ttl: int,
        batch: int = 500,
    ) -> int:  # fmt: skip
        """Warm the cache with many answers (an FAQ import, a benchmark), in pipelined batches.

        The same rules as ``store``: entries with personal data are skipped. Returns how many were stored.
        """
        index, stored = self.index, 0
        for start in range(0, len(entries), batch):
            chunk = []
            for entry, vector in entries[start : start + batch]:
                if personal_data_kinds(entry.query) or personal_data_kinds(entry.response):
                    continue
                entry.generation = generation
                entry.vector = None if vector is None else np.asarray(vector, dtype=np.float32)
                chunk.append(entry)
            if not self.guard.run(
                "store_many", lambda chunk=chunk: self._store(index, scope, generation, chunk, ttl), False
            ):
                break  # Redis failed: the rest would too; the breaker has counted it
            stored += len(chunk)
        return stored

    # -- single flight -------------------------------------------------------------

    def take_off(self, scope: CacheScope, query: str) -> Flight:
        """Lead this miss, or follow the caller already leading it (see singleflight)."""
        return _counted(take_off(self.guard, scope.lock_key(query_hash(query))))

    async def atake_off(self, scope: CacheScope, query: str) -> Flight:
        return _counted(await atake_off(self.guard, scope.lock_key(query_hash(query))))

    def wait_for_leader(self, flight: Flight, scope: CacheScope, query: str, *, max_wait: float) -> Lookup:
        """The leader's answer from the exact tier; a miss means "answer it yourself" (and if
        this caller took over from a dead leader, ``flight.leader`` is now True)."""
        found = flight.wait(lambda: self._exact_hit(scope, query), max_wait)
        return _followed(flight, found)

    async def await_leader(self, flight: Flight, scope: CacheScope, query: str, *, max_wait: float) -> Lookup:
        found = await flight.await_(lambda: self._exact_hit(scope, query), max_wait)
        return _followed(flight, found)

    def _exact_hit(self, scope: CacheScope, query: str) -> Op[Lookup | None]:
        if self._held(scope):
            return None
        found = yield from self._exact(scope, query)
        return found if found.hit else None


def _counted(flight: Flight) -> Flight:
    metrics.CACHE_SINGLE_FLIGHT.labels(outcome="leader" if flight.leader else "follower").inc()
    return flight


def _followed(flight: Flight, found: Lookup | None) -> Lookup:
    outcome = "served" if found is not None else ("took_over" if flight.leader else "fallback")
    metrics.CACHE_SINGLE_FLIGHT.labels(outcome=outcome).inc()
    return found if found is not None else Lookup(None, None, "single_flight_fallback")


def _bump(tenant_id: int) -> Op[int]:
    (generation,) = yield one("EVAL", _BUMP_GENERATION, 1, generation_key(tenant_id))
    return int(ok(generation))


def _observed(tier: str, lookup: Lookup, started: float) -> Lookup:
    metrics.CACHE_LOOKUP_SECONDS.labels(tier=tier).observe(time.perf_counter() - started)
    result = "hit" if lookup.hit else ("error" if lookup.reason == "error" else "miss")
    metrics.CACHE_REQUESTS.labels(tier=tier, result=result).inc()
    return lookup

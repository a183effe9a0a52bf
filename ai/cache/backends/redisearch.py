"""RediSearch FT.SEARCH KNN: one HNSW index per tenant (and vector dimension).

The index covers the tenant's entry keys (prefix ``{t:<id>}:e:``) and indexes
their vector, scope and generation; every query filters on scope and generation
inside the tenant's own index. Entries leave the index when their key expires.
"""

import threading

import numpy as np
import redis
from redis.commands.search.query import Query

from ai.cache.entries import SCOPE_FIELD, VECTOR_FIELD
from ai.cache.keys import CacheScope
from saascore.redis import keys

GENERATION_FIELD = "g"
# RediSearch's default EF_RUNTIME (10) found the neighbour of a third of the probes at 100k entries.
SEARCH_EF = 100


class RediSearchIndex:
    name = "redisearch"

    def __init__(self) -> None:
        self._known: set[tuple[int, str]] = set()
        self._lock = threading.Lock()

    def _ensure_index(self, client: redis.Redis, scope: CacheScope, dim: int) -> str:
        name = scope.index_name(dim)
        marker = (id(client), name)
        if marker in self._known:
            return name
        try:
            client.execute_command(
                "FT.CREATE", name, "ON", "HASH", "PREFIX", 1, keys.entry_prefix(scope.tenant_id),
                "SCHEMA",
                SCOPE_FIELD, "TAG",
                GENERATION_FIELD, "TAG",
                VECTOR_FIELD, "VECTOR", "HNSW", 6, "TYPE", "FLOAT32", "DIM", dim, "DISTANCE_METRIC", "COSINE",
            )  # fmt: skip
        except redis.ResponseError as exc:
            if "already exists" not in str(exc).lower():
                raise
        with self._lock:
            self._known.add(marker)
        return name

    def add(self, client, pipe, scope: CacheScope, generation: int, qhash: str, vector: np.ndarray, ttl: int) -> None:
        # The entry HASH written by the caller carries the vector, scope and
        # generation fields this index reads; only the index must exist.
        self._ensure_index(client, scope, len(vector))

    def search(self, client: redis.Redis, scope: CacheScope, generation: int, vector: np.ndarray, k: int) -> list[str]:
        query = (
            Query(
                f"(@{SCOPE_FIELD}:{{{scope.digest}}} @{GENERATION_FIELD}:{{{generation}}})"
                f"=>[KNN {k} @{VECTOR_FIELD} $vec EF_RUNTIME {SEARCH_EF} AS dist]"
            )
            .sort_by("dist")
            .no_content()
            .paging(0, k)
            .dialect(2)
        )
        try:
            result = client.ft(scope.index_name(len(vector))).search(
                query, query_params={"vec": np.asarray(vector, dtype=np.float32).tobytes()}
            )
        except redis.ResponseError as exc:
            if "no such index" in str(exc).lower():
                return []
            raise
        prefix = scope.entry_prefix()
        return [doc.id[len(prefix) :] for doc in result.docs if doc.id.startswith(prefix)]

    def count(self, client: redis.Redis, scope: CacheScope, generation: int, dim: int) -> int:
        query = Query(f"@{SCOPE_FIELD}:{{{scope.digest}}} @{GENERATION_FIELD}:{{{generation}}}").paging(0, 0)
        try:
            return int(client.ft(scope.index_name(dim)).search(query.dialect(2)).total)
        except redis.ResponseError as exc:
            if "no such index" in str(exc).lower():
                return 0
            raise

    def remove(self, client: redis.Redis, scope: CacheScope, generation: int, qhashes: list[str]) -> None:
        pass  # an entry leaves the index when its key expires or is deleted

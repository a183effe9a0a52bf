"""RediSearch FT.SEARCH KNN: one HNSW index per tenant (and vector dimension).

The index covers the tenant's entry keys (prefix ``{t:<id>}:e:``) and indexes
their vector, scope and generation; every query filters on scope and generation
inside the tenant's own index. Entries leave the index when their key expires.
"""

import threading

import numpy as np
import redis

from ai.cache.backends.base import blob
from ai.cache.entries import SCOPE_FIELD, VECTOR_FIELD
from ai.cache.keys import CacheScope
from saascore.redis import keys
from saascore.redis.ops import Op, ok, one

GENERATION_FIELD = "g"
# RediSearch's default EF_RUNTIME (10) found the neighbour of a third of the probes at 100k entries.
SEARCH_EF = 100


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _found(reply: list | dict) -> tuple[int, list[str]]:
    """(total, document ids) of an FT.SEARCH reply: a list (RESP2) or a map (RESP3, and
    what Redis 8's query engine answers)."""
    if isinstance(reply, dict):
        fields = {_text(name): value for name, value in reply.items()}
        documents = [{_text(k): v for k, v in doc.items()} for doc in fields.get("results", [])]
        return int(fields.get("total_results", 0)), [_text(doc["id"]) for doc in documents]
    return int(reply[0]), [_text(item) for item in reply[1:]]


def _missing_index(reply: object) -> bool:
    return isinstance(reply, redis.ResponseError) and "no such index" in str(reply).lower()


class RediSearchIndex:
    name = "redisearch"

    def __init__(self) -> None:
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def prepare(self, scope: CacheScope, dim: int) -> Op[None]:
        name = scope.index_name(dim)
        if name in self._known:
            return
        (reply,) = yield one(
            "FT.CREATE", name, "ON", "HASH", "PREFIX", 1, keys.entry_prefix(scope.tenant_id),
            "SCHEMA",
            SCOPE_FIELD, "TAG",
            GENERATION_FIELD, "TAG",
            VECTOR_FIELD, "VECTOR", "HNSW", 6, "TYPE", "FLOAT32", "DIM", dim, "DISTANCE_METRIC", "COSINE",
        )  # fmt: skip
        if isinstance(reply, redis.ResponseError) and "already exists" not in str(reply).lower():
            raise reply
        with self._lock:
            self._known.add(name)

    def add_commands(self, scope: CacheScope, generation: int, qhash: str, vector: np.ndarray, ttl: int) -> list:
        return []  # the entry HASH written by the caller carries the vector, scope and generation fields

    def search(self, scope: CacheScope, generation: int, vector: np.ndarray, k: int) -> Op[list[str]]:
        query = (
            f"(@{SCOPE_FIELD}:{{{scope.digest}}} @{GENERATION_FIELD}:{{{generation}}})"
            f"=>[KNN {k} @{VECTOR_FIELD} $vec EF_RUNTIME {SEARCH_EF} AS dist]"
        )
        (reply,) = yield one(
            "FT.SEARCH", scope.index_name(len(vector)), query, "PARAMS", 2, "vec", blob(vector),
            "SORTBY", "dist", "NOCONTENT", "LIMIT", 0, k, "DIALECT", 2,
        )  # fmt: skip
        if _missing_index(reply):  # never made, or lost with a Redis restart: made again at the next store
            with self._lock:
                self._known.discard(scope.index_name(len(vector)))
            return []
        prefix = scope.entry_prefix()
        return [doc[len(prefix) :] for doc in _found(ok(reply))[1] if doc.startswith(prefix)]

    def count(self, scope: CacheScope, generation: int, dim: int) -> Op[int]:
        query = f"@{SCOPE_FIELD}:{{{scope.digest}}} @{GENERATION_FIELD}:{{{generation}}}"
        (reply,) = yield one("FT.SEARCH", scope.index_name(dim), query, "LIMIT", 0, 0, "DIALECT", 2)
        if _missing_index(reply):
            return 0
        return _found(ok(reply))[0]

    def remove_commands(self, scope: CacheScope, generation: int, qhashes: list[str]) -> list:
        return []  # an entry leaves the index when its key expires or is deleted

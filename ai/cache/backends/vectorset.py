"""Redis 8 vector sets: one set per (tenant, generation, scope).

A new generation starts an empty set, so invalidation needs no deletes; the old
set expires with its last entry. Members are query hashes.
"""

import numpy as np

from ai.cache.backends.base import blob
from ai.cache.keys import CacheScope
from saascore.redis.ops import Op, ok, one

# HNSW exploration per search (bench/cache_bench.py): Redis's default found the
# neighbour of 94% of probes at 100k entries; 200 cost 70% more time at 10k.
SEARCH_EF = 100


class VectorSetIndex:
    name = "vectorset"

    def prepare(self, scope: CacheScope, dim: int) -> Op[None]:
        return
        yield

    def add_commands(self, scope: CacheScope, generation: int, qhash: str, vector: np.ndarray, ttl: int) -> list:
        key = scope.vectorset_key(generation)
        # The set lives as long as its newest entry: set a TTL if it has none, extend it otherwise.
        return [("VADD", key, "FP32", blob(vector), qhash), ("EXPIRE", key, ttl, "NX"), ("EXPIRE", key, ttl, "GT")]

    def search(self, scope: CacheScope, generation: int, vector: np.ndarray, k: int) -> Op[list[str]]:
        (reply,) = yield one("VSIM", scope.vectorset_key(generation), "FP32", blob(vector), "COUNT", k, "EF", SEARCH_EF)
        return [member.decode() if isinstance(member, bytes) else member for member in ok(reply) or []]

    def count(self, scope: CacheScope, generation: int, dim: int) -> Op[int]:
        (reply,) = yield one("VCARD", scope.vectorset_key(generation))
        return int(ok(reply) or 0)

    def remove_commands(self, scope: CacheScope, generation: int, qhashes: list[str]) -> list:
        key = scope.vectorset_key(generation)
        return [("VREM", key, qhash) for qhash in qhashes]

"""Redis 8 vector sets: one set per (tenant, generation, scope).

A new generation starts an empty set, so invalidation needs no deletes; the old
set expires with its last entry. Members are query hashes.
"""

import numpy as np
import redis

from ai.cache.keys import CacheScope

# HNSW exploration per search (bench/cache_bench.py): Redis's default found the
# neighbour of 94% of probes at 100k entries; 200 cost 70% more time at 10k.
SEARCH_EF = 100


class VectorSetIndex:
    name = "vectorset"

    def add(self, client, pipe, scope: CacheScope, generation: int, qhash: str, vector: np.ndarray, ttl: int) -> None:
        key = scope.vectorset_key(generation)
        pipe.execute_command("VADD", key, "FP32", _blob(vector), qhash)
        # The set lives as long as its newest entry: set a TTL if it has none, extend it otherwise.
        pipe.expire(key, ttl, nx=True)
        pipe.expire(key, ttl, gt=True)

    def search(self, client: redis.Redis, scope: CacheScope, generation: int, vector: np.ndarray, k: int) -> list[str]:
        reply = client.execute_command(
            "VSIM", scope.vectorset_key(generation), "FP32", _blob(vector), "COUNT", k, "EF", SEARCH_EF
        )
        return [member.decode() if isinstance(member, bytes) else member for member in reply or []]

    def count(self, client: redis.Redis, scope: CacheScope, generation: int, dim: int) -> int:
        return int(client.execute_command("VCARD", scope.vectorset_key(generation)) or 0)

    def remove(self, client: redis.Redis, scope: CacheScope, generation: int, qhashes: list[str]) -> None:
        key = scope.vectorset_key(generation)
        pipe = client.pipeline(transaction=False)
        for qhash in qhashes:
            pipe.execute_command("VREM", key, qhash)
        pipe.execute()


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()

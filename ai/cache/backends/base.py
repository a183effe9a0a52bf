from typing import Protocol

import numpy as np
import redis

from ai.cache.keys import CacheScope


class VectorIndex(Protocol):
    """Where the semantic tier finds candidate entries of one scope and generation."""

    name: str

    def add(
        self,
        client: redis.Redis,
        pipe: redis.client.Pipeline,
        scope: CacheScope,
        generation: int,
        qhash: str,
        vector: np.ndarray,
        ttl: int,
    ) -> None:
        """Queue the commands that index an entry (the entry HASH is written by the caller)."""

    def search(self, client: redis.Redis, scope: CacheScope, generation: int, vector: np.ndarray, k: int) -> list[str]:
        """Query hashes of up to ``k`` nearest entries, nearest first."""

    def count(self, client: redis.Redis, scope: CacheScope, generation: int, dim: int) -> int:
        """Entries of the scope's current generation in the index (expired ones may still count)."""

    def remove(self, client: redis.Redis, scope: CacheScope, generation: int, qhashes: list[str]) -> None:
        """Forget entries whose payload is gone."""

"""What a vector backend does for the semantic tier: commands and operations only
(saascore/redis/ops.py), so that one backend serves the sync and the async cache."""

from typing import Protocol

import numpy as np

from ai.cache.keys import CacheScope
from saascore.redis.ops import Op


class VectorIndex(Protocol):
    """Where the semantic tier finds candidate entries of one scope and generation."""

    name: str

    def prepare(self, scope: CacheScope, dim: int) -> Op[None]:
        """Make sure the index exists before entries are added (nothing for vector sets)."""

    def add_commands(self, scope: CacheScope, generation: int, qhash: str, vector: np.ndarray, ttl: int) -> list:
        """The commands that index an entry (the entry HASH is written by the caller)."""

    def search(self, scope: CacheScope, generation: int, vector: np.ndarray, k: int) -> Op[list[str]]:
        """Query hashes of up to ``k`` nearest entries, nearest first."""

    def count(self, scope: CacheScope, generation: int, dim: int) -> Op[int]:
        """Entries of the scope's current generation in the index (expired ones may still count)."""

    def remove_commands(self, scope: CacheScope, generation: int, qhashes: list[str]) -> list:
        """The commands that forget entries whose payload is gone."""


def blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()

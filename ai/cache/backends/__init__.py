"""Vector indexes of the semantic cache, one interface, chosen by the server.

``vectorset``: Redis 8 vector sets (VADD/VSIM), one set per tenant generation
and scope. ``redisearch``: FT.SEARCH KNN over an HNSW index per tenant, filtered
by scope and generation. Both only return candidates; the cache re-scores them
with exact cosine similarity from the stored float32 vectors, so a threshold
means the same on every backend.
"""

from ai.cache.backends.base import VectorIndex
from ai.cache.backends.redisearch import RediSearchIndex
from ai.cache.backends.vectorset import VectorSetIndex

BACKENDS: dict[str, type[VectorIndex]] = {"vectorset": VectorSetIndex, "redisearch": RediSearchIndex}

__all__ = ["BACKENDS", "RediSearchIndex", "VectorIndex", "VectorSetIndex"]

"""Deterministic unit vectors with a chosen cosine similarity, for cache mechanics tests.

The embedder's quality is measured elsewhere (eval_cache); here a vector only
needs to be near or far from another by an exact, known amount.
"""

import zlib

import numpy as np

DIM = 32


def vec(name: str, dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def at_cosine(base: np.ndarray, cosine: float, salt: str = "other") -> np.ndarray:
    """A unit vector whose cosine similarity with ``base`` is exactly ``cosine``."""
    other = vec(salt, len(base)).astype(np.float64)
    orthogonal = other - other.dot(base) * base
    orthogonal /= np.linalg.norm(orthogonal)
    result = cosine * base.astype(np.float64) + np.sqrt(1 - cosine**2) * orthogonal
    return (result / np.linalg.norm(result)).astype(np.float32)

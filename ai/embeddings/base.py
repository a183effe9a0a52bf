"""The embedder interface: a batch of texts in, L2-normalised float32 vectors out."""

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray  # (n, dim) float32, each row of unit length
    input_tokens: int  # for billing: what a provider charges for, or what a local model read


class Embedder(Protocol):
    # Vectors of two embedders are never compared: the id is part of every cache scope.
    id: str
    dim: int

    def embed(self, texts: list[str]) -> Embeddings: ...

    def sees_whole(self, text: str) -> bool:
        """Does ``text`` fit the model's input window? Past it, the vector is of a prefix only:
        two texts that differ after it get the same vector, so no semantic match may rest on it."""
        ...


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)

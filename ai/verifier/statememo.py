"""One forward pass per text for training and evaluation: sentence vectors and token states alike.

Training the verifier asks the embedder twice about every text: its sentence vector (for the
cosine) and its token states (for the pair features), and scoring the held-out share asks again.
``HiddenMemo`` wraps a local ONNX embedder and keeps each text's hidden states, so every later
request for that text costs nothing. Padding differs between the batches that fill and read the
memo: a text's states are its own (the attention mask hides padding), equal to float rounding.
Memory: about 25 KB a text (30,000 texts: 0.7 GB), so it is for offline commands, not for serving.
"""

import numpy as np

from ai.embeddings.base import Embeddings, l2_normalise


class HiddenMemo:
    def __init__(self, embedder) -> None:
        self.model = getattr(embedder, "inner", embedder)
        self.id = embedder.id
        self.dim = embedder.dim
        self._states: dict[tuple[int, ...], np.ndarray] = {}

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.model.encode(texts)

    def hidden_states(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        keys = [tuple(row[: int(m.sum())].tolist()) for row, m in zip(ids, mask, strict=True)]
        missing, seen = [], set()
        for i, key in enumerate(keys):
            if key not in self._states and key not in seen:
                seen.add(key)
                missing.append(i)
        if missing:
            width = int(mask[missing].sum(axis=1).max())
            computed = self.model.hidden_states(ids[missing, :width], mask[missing, :width])
            for row, i in enumerate(missing):
                self._states[keys[i]] = computed[row, : len(keys[i])].astype(np.float32)
        out = np.zeros((*ids.shape, self.dim), dtype=np.float32)
        for row, key in enumerate(keys):
            out[row, : len(key)] = self._states[key]
        return out

    def embed(self, texts: list[str]) -> Embeddings:
        """As ``OnnxEmbedder.embed`` with mean pooling (the local models' pooling)."""
        if not texts:
            return Embeddings(np.zeros((0, self.dim), dtype=np.float32), 0)
        ids, mask = self.encode(texts)
        hidden = self.hidden_states(ids, mask)
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return Embeddings(l2_normalise(pooled), int(mask.sum()))


def memoised(embedder):
    """``HiddenMemo`` over a local mean-pooled ONNX embedder; any other embedder as it is."""
    model = getattr(embedder, "inner", embedder)
    if hasattr(model, "hidden_states") and getattr(getattr(model, "model", None), "pooling", None) == "mean":
        return HiddenMemo(embedder)
    return embedder

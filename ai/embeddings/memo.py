"""A small in-process memo of recent query embeddings (LRU, thread-safe).

A repeated or retried question costs no second forward pass or API call. Texts are
remembered per tenant (``tenant_id``): a memoised text is embedded faster and counts no
tokens, so a memo shared by tenants would tell one what another's users asked.
"""

import threading
from collections import OrderedDict

import numpy as np

from ai.embeddings.base import Embedder, Embeddings


class MemoEmbedder:
    def __init__(self, inner: Embedder, *, size: int = 2048) -> None:
        self.inner = inner
        self.size = size
        self._memo: OrderedDict[tuple[int | None, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    @property
    def id(self) -> str:
        return self.inner.id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def sees_whole(self, text: str) -> bool:
        return self.inner.sees_whole(text)

    def embed(self, texts: list[str], *, tenant_id: int | None = None) -> Embeddings:
        """``texts``' vectors; ``tenant_id``: whose memo (None: texts no tenant's request sent)."""
        with self._lock:
            found = {text: self._memo[(tenant_id, text)] for text in texts if (tenant_id, text) in self._memo}
            for text in found:
                self._memo.move_to_end((tenant_id, text))
            self.hits += len(found)
        missing = list(dict.fromkeys(text for text in texts if text not in found))
        tokens = 0
        if missing:
            computed = self.inner.embed(missing)
            tokens = computed.input_tokens
            with self._lock:
                for text, vector in zip(missing, computed.vectors, strict=True):
                    vector.flags.writeable = False
                    found[text] = vector
                    self._memo[(tenant_id, text)] = vector
                    self._memo.move_to_end((tenant_id, text))
                while len(self._memo) > self.size:
                    self._memo.popitem(last=False)
        return Embeddings(np.stack([found[text] for text in texts]), tokens)

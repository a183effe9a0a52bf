"""Embedders: one interface (``base.Embedder``), a local ONNX model by default
(no network) and an OpenAI-compatible adapter. ``get_embedder()`` builds the
configured one once per process, wrapped in a memo of recent queries."""

import threading

from django.core.signals import setting_changed

from ai.embeddings.base import Embedder, Embeddings, l2_normalise
from ai.embeddings.memo import MemoEmbedder
from saascore.conf import ai_settings

__all__ = ["Embedder", "Embeddings", "build_embedder", "get_embedder", "l2_normalise"]

_embedder: Embedder | None = None
_lock = threading.Lock()


def build_embedder(config: dict) -> Embedder:
    # Each backend's own dependencies (onnxruntime and the model, or a client) load only when chosen.
    kind = config.get("backend", "local")
    if kind == "local":
        from ai.embeddings.local import local_embedder

        return local_embedder(config.get("model"), threads=config.get("threads", 1))
    if kind == "openai":
        import os

        from ai.embeddings.openai_compatible import OpenAIEmbedder

        return OpenAIEmbedder(
            model=config["model"],
            base_url=config.get("base_url"),
            api_key=os.environ.get(config.get("api_key_env", "OPENAI_API_KEY")),
            dimensions=config.get("dimensions"),
            timeout=config.get("timeout", 10.0),
        )
    raise ValueError(f"Unknown embedder backend {kind!r} (expected 'local' or 'openai')")


def get_embedder() -> Embedder:
    global _embedder
    if _embedder is None:
        with _lock:
            if _embedder is None:
                _embedder = MemoEmbedder(build_embedder(ai_settings.EMBEDDER), size=ai_settings.EMBEDDING_MEMO_SIZE)
    return _embedder


def _reset(*, setting: str, **kwargs) -> None:
    global _embedder
    if setting == "AI":
        _embedder = None


setting_changed.connect(_reset)

"""The semantic cache (see ``semantic.py`` for its guarantees).

``get_cache()`` gives the process's cache on ``settings.REDIS_URL``, with the
vector backend the server supports (vector sets first, then RediSearch, else
exact-match only). ``AI["SEMANTIC_TIER"] = False`` gives exact-match only on any
server.
"""

import threading

import redis
from django.core.signals import setting_changed
from django.dispatch import Signal

from ai.cache.backends import BACKENDS
from ai.cache.judge import HitJudge
from ai.cache.keys import CacheScope
from ai.cache.semantic import CacheHit, Lookup, SemanticCache, Stored
from ai.verifier.live import ActiveVerifier
from saascore.conf import ai_settings
from saascore.redis.capabilities import server_capabilities
from saascore.redis.guard import RedisGuard, shared_guard

__all__ = ["CacheHit", "CacheScope", "Lookup", "SemanticCache", "Stored", "build_cache", "get_cache"]

_cache: SemanticCache | None = None
_lock = threading.Lock()


def build_cache(
    client: redis.Redis, *, backend: str | None = "auto", judge: HitJudge | None = None, guard: RedisGuard | None = None
) -> SemanticCache:
    """A cache on ``client``; ``backend`` "auto" asks the server what it supports, when it
    first can: a server that is down at start is asked again once it answers."""
    if backend != "auto":
        return SemanticCache(client, index=BACKENDS[backend]() if backend else None, judge=judge, guard=guard)

    def find_index():
        api = server_capabilities(client).vector_api
        return BACKENDS[api]() if api else None

    return SemanticCache(client, index=None, judge=judge, find_index=find_index, guard=guard)


# Sent once the process's cache is built (ai/cache/invalidation.py starts its sweeper then).
cache_built = Signal()


def get_cache() -> SemanticCache:
    global _cache
    built = None
    if _cache is None:
        with _lock:
            if _cache is None:
                guard = shared_guard()
                cache = build_cache(
                    guard.client,
                    backend="auto" if ai_settings.SEMANTIC_TIER else None,
                    judge=HitJudge(verifier=ActiveVerifier(), ambiguity_margin=ai_settings.AMBIGUITY_MARGIN),
                    guard=guard,
                )
                _cache = cache
                built = cache
    if built is not None:
        cache_built.send(sender=SemanticCache, cache=built)
    return _cache


def _reset(*, setting: str, **kwargs) -> None:
    global _cache
    if setting in ("AI", "REDIS_URL"):
        _cache = None


setting_changed.connect(_reset)

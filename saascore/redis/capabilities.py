"""What the Redis server can do for the semantic cache.

Vector sets (VADD/VSIM) are core in Redis 8; FT.SEARCH comes with RediSearch
(Redis Stack, the query engine, Valkey-search, managed Redis). A server with
neither gives exact-match caching only; that is logged once per process.
"""

import logging
import threading
import time
from dataclasses import dataclass

import redis

from saascore.conf import ai_settings

logger = logging.getLogger("saascore.cache")


@dataclass(frozen=True)
class RedisCapabilities:
    version: str
    vector_sets: bool
    search: bool

    @property
    def vector_api(self) -> str | None:
        """The backend the semantic cache uses: vector sets first."""
        if self.vector_sets:
            return "vectorset"
        if self.search:
            return "redisearch"
        return None

    @property
    def semantic_cache(self) -> str:
        return "available" if self.vector_api else "unavailable (exact-match only)"


def _has_command(client: redis.Redis, name: str) -> bool:
    return bool(client.command_list(pattern=name))


def detect(client: redis.Redis) -> RedisCapabilities:
    version = client.info("server")["redis_version"]
    return RedisCapabilities(
        version=str(version), vector_sets=_has_command(client, "VADD"), search=_has_command(client, "FT.SEARCH")
    )


_probed: dict[int, tuple[float, RedisCapabilities]] = {}
_warned: set[int] = set()
_lock = threading.Lock()


def server_capabilities(client: redis.Redis) -> RedisCapabilities:
    """``detect`` with a short memo per client; warns once when vectors are missing."""
    key = id(client)
    now = time.monotonic()
    cached = _probed.get(key)
    if cached and now - cached[0] < ai_settings.REDIS_CAPABILITIES_TTL:
        return cached[1]
    found = detect(client)
    with _lock:
        _probed[key] = (now, found)
        if found.vector_api is None and key not in _warned:
            _warned.add(key)
            logger.warning(
                "Redis %s has neither vector sets nor RediSearch: the semantic cache is off, "
                "exact-match caching only. Use Redis >= 8 or a server with the query engine.",
                found.version,
            )
    return found

"""The Redis client of the semantic cache: short timeouts, a bounded pool."""

import threading

import redis
from django.conf import settings

from saascore.conf import ai_settings

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def redis_client(url: str | None = None) -> redis.Redis:
    """A shared client for ``url`` (default: ``settings.REDIS_URL``), one pool per process."""
    url = url or settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        with _lock:
            client = _clients.get(url)
            if client is None:
                if ai_settings.REDIS_CLUSTER:
                    client = _clients[url] = redis.RedisCluster.from_url(
                        url,
                        socket_timeout=ai_settings.REDIS_SOCKET_TIMEOUT,
                        socket_connect_timeout=ai_settings.REDIS_CONNECT_TIMEOUT,
                        max_connections=ai_settings.REDIS_MAX_CONNECTIONS,
                    )
                    return client
                pool = redis.BlockingConnectionPool.from_url(
                    url,
                    max_connections=ai_settings.REDIS_MAX_CONNECTIONS,
                    timeout=ai_settings.REDIS_POOL_TIMEOUT,
                    socket_timeout=ai_settings.REDIS_SOCKET_TIMEOUT,
                    socket_connect_timeout=ai_settings.REDIS_CONNECT_TIMEOUT,
                )
                client = _clients[url] = redis.Redis(connection_pool=pool)
    return client

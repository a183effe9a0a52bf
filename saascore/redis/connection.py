"""Redis clients: short timeouts, a bounded pool; sync, and their asyncio twins.

``redis_client(url)`` is the process's sync client for a URL. ``async_twin(client)``
is an asyncio client of the same server, with the same options, one per event
loop (asyncio connections belong to the loop that made them: a server process
has one loop; a test may make one per request).
"""

import asyncio
import threading
import weakref

import redis
import redis.asyncio
import redis.asyncio.connection
import redis.connection
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


_CONNECTION_CLASSES = {
    redis.connection.Connection: redis.asyncio.connection.Connection,
    redis.connection.UnixDomainSocketConnection: redis.asyncio.connection.UnixDomainSocketConnection,
    redis.connection.SSLConnection: redis.asyncio.connection.SSLConnection,
}
# Options of a sync connection that an asyncio connection does not take.
_SYNC_ONLY = {"retry", "redis_connect_func", "credential_provider", "health_check_interval", "driver_info"}
_twins: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, object]]" = weakref.WeakKeyDictionary()


def async_twin(client: redis.Redis | redis.RedisCluster) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
    """The asyncio client of ``client``'s server and options, for the running event loop."""
    loop = asyncio.get_running_loop()
    clients = _twins.setdefault(loop, {})
    twin = clients.get(id(client))
    if twin is None:
        twin = clients[id(client)] = _make_twin(client)
    return twin


def _make_twin(client):
    if isinstance(client, redis.RedisCluster):
        nodes = [redis.asyncio.cluster.ClusterNode(node.host, node.port) for node in client.get_nodes()]
        return redis.asyncio.RedisCluster(
            startup_nodes=nodes,
            socket_timeout=ai_settings.REDIS_SOCKET_TIMEOUT,
            socket_connect_timeout=ai_settings.REDIS_CONNECT_TIMEOUT,
            max_connections=ai_settings.REDIS_MAX_CONNECTIONS,
        )
    sync_pool = client.connection_pool
    options = {k: v for k, v in sync_pool.connection_kwargs.items() if k not in _SYNC_ONLY}
    pool = redis.asyncio.BlockingConnectionPool(
        connection_class=_CONNECTION_CLASSES.get(sync_pool.connection_class, redis.asyncio.connection.Connection),
        max_connections=ai_settings.REDIS_MAX_CONNECTIONS,
        timeout=ai_settings.REDIS_POOL_TIMEOUT,
        **options,
    )
    return redis.asyncio.Redis(connection_pool=pool)

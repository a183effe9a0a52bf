import itertools
import os

import pytest
import redis
from django.conf import settings

from ai.cache import SemanticCache, build_cache
from ai.cache.keys import CacheScope
from tests.redis_servers import redis_cluster

MACHINE_REDIS_7 = "redis://127.0.0.1:6379/0"
_tenant_ids = itertools.count(int.from_bytes(os.urandom(3), "big") * 1000)


@pytest.fixture
def tenant_ids():
    """Fresh tenant ids per test, so tests share a Redis without sharing keys."""
    return lambda: next(_tenant_ids)


@pytest.fixture(scope="session")
def main_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


@pytest.fixture(scope="session")
def cluster_client(tmp_path_factory):
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as ports:
        client = redis.RedisCluster(host="127.0.0.1", port=ports[0])
        yield client
        client.close()


@pytest.fixture(params=["vectorset", "redisearch", "cluster"])
def cache(request, main_redis) -> SemanticCache:
    """The conformance suite runs once per backend, and on a Redis Cluster."""
    if request.param == "cluster":
        return build_cache(request.getfixturevalue("cluster_client"), backend="vectorset")
    return build_cache(main_redis, backend=request.param)


@pytest.fixture
def exact_only_cache() -> SemanticCache:
    client = redis.Redis.from_url(MACHINE_REDIS_7)
    return build_cache(client, backend="auto")


@pytest.fixture
def scope(tenant_ids):
    return lambda user=None, embedder="test-embedder": CacheScope(tenant_ids(), embedder, user)

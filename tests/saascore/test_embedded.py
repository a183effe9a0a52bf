"""The embedded servers: idempotent, sockets only, Redis configured as a cache."""

import pytest
import redis
from django.conf import settings
from django.db import connection

from saascore.embedded import EmbeddedRedis, embedded_paths, start_all, status_all
from saascore.embedded.redis import EVICTION_POLICY

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL.startswith("unix://"), reason="external servers configured (REDIS_URL is set)"
)


def test_start_is_idempotent():
    first = start_all()
    second = start_all()
    assert first == second == status_all()
    assert all(state.startswith("running") for state in first.values())


def test_redis_listens_on_a_socket_only_and_evicts_only_keys_with_a_ttl():
    client = redis.Redis.from_url(settings.REDIS_URL)
    config = client.config_get("*")
    assert config["port"] == "0"
    assert config["maxmemory-policy"] == EVICTION_POLICY == "volatile-lru"
    assert int(config["maxmemory"]) > 0
    assert config["save"] == "" and config["appendonly"] == "no"
    assert config["dir"] == str(embedded_paths().redis_data)


@pytest.mark.django_db
def test_postgres_listens_on_a_socket_only():
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('listen_addresses'), current_setting('server_version_num')::int")
        listen, version = cursor.fetchone()
    assert listen == "" and version >= 180000


def test_a_second_redis_can_be_started_and_stopped(tmp_path):
    server = EmbeddedRedis(tmp_path / "data", tmp_path / "r.sock", maxmemory="16mb", search=False)
    try:
        assert server.start().startswith("running")
        client = redis.Redis.from_url(server.url)
        assert client.config_get("maxmemory")["maxmemory"] == str(16 * 1024 * 1024)
        assert client.command_list(pattern="ft.search") == []
    finally:
        assert server.stop() == "stopped"

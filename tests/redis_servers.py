"""Redis servers the tests start themselves, from the project's redis-server binary."""

import os
import signal
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import redis

from saascore.embedded import EmbeddedRedis
from tests.serving import free_port


@contextmanager
def private_redis(tmp_path: Path, **options):
    """A Redis of one test's own (to kill, or to fill past maxmemory)."""
    server = EmbeddedRedis(tmp_path / "redis", tmp_path / "redis.sock", **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def paused(server: EmbeddedRedis):
    """The server stopped with SIGSTOP (a stall: it keeps its data and its connections),
    continued on leaving the block."""
    pid = int((server.data_dir / "redis.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)


def _free_cluster_port() -> int:
    # The cluster bus listens on port + 10000: both must be free.
    while True:
        port = free_port()
        if port < 55000:
            try:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue


@contextmanager
def redis_cluster(tmp_path: Path, masters: int = 3):
    """A local Redis Cluster of ``masters`` masters on loopback, slots split evenly."""
    servers = []
    try:
        for n in range(masters):
            port = _free_cluster_port()
            server = EmbeddedRedis(
                tmp_path / f"node{n}",
                tmp_path / f"node{n}.sock",
                search=False,
                port=port,
                extra_args=("--cluster-enabled", "yes", "--cluster-config-file", f"{tmp_path}/node{n}.conf"),
            )
            server.start()
            servers.append((server, port))
        clients = [redis.Redis(host="127.0.0.1", port=port) for _, port in servers]
        per = 16384 // masters
        for n, client in enumerate(clients):
            last = 16383 if n == masters - 1 else (n + 1) * per - 1
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", n * per, last)
        for _, port in servers[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        deadline = time.monotonic() + 30
        while not all(c.cluster("INFO")["cluster_state"] == "ok" for c in clients):
            if time.monotonic() > deadline:
                raise RuntimeError("the test cluster did not converge")
            time.sleep(0.05)
        yield [port for _, port in servers]
    finally:
        for server, _ in servers:
            server.stop()

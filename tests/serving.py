"""Run the real gunicorn server against the test database, for tests over HTTP."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from django.db import connections

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url(alias: str = "default") -> str:
    """The URL of the test database as the application role (or the role of another alias)."""
    s = connections[alias].settings_dict
    if s["HOST"].startswith("/"):
        return f"postgresql://{quote(s['USER'])}:{quote(s['PASSWORD'] or '')}@/{s['NAME']}?host={quote(s['HOST'])}"
    return f"postgresql://{quote(s['USER'])}:{quote(s['PASSWORD'] or '')}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"


class Headers(dict):
    """Response headers by case-insensitive name (HTTP's rule; uvicorn sends them in lower case)."""

    def __init__(self, message) -> None:
        super().__init__((name.lower(), value) for name, value in message.items())

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default=None):
        return super().get(name.lower(), default)


def http(method: str, url: str, headers: dict | None = None, body: bytes | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, Headers(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, Headers(error.headers), json.loads(error.read() or b"null")


@dataclass
class Served:
    """A running gunicorn: its URL, its master process and its output so far (every line)."""

    base: str
    process: subprocess.Popen
    spool: Path  # its BILLING_SPOOL_DIR
    lines: list[str] = field(default_factory=list)

    def workers(self) -> list[int]:
        """The pids of the master's live workers."""
        return children_of(self.process.pid)


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it exited while we looked
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return sorted(found)


def accepted_by(pid: int, port: int) -> int:
    """Established TCP connections on local ``port`` that process ``pid`` holds (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    held = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            held += local_port == port and state == "01" and inode in inodes  # 01: ESTABLISHED
    return held


def _collect(stream, lines: list[str]) -> None:
    """Read the server's output as it comes (a full pipe would stall a busy server)."""
    for raw in iter(stream.readline, b""):
        lines.append(raw.decode(errors="replace").rstrip("\n"))


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.05):
    """Poll observable state until ``predicate()`` is true (returns its value), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return value


async def until(condition, what: str, timeout: float = 20) -> None:
    """``wait_until`` for a test's event loop: poll without blocking the loop."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


@contextmanager
def served(
    *, workers: int = 1, ai: dict | None = None, settings_module: str | None = None, **env: str
) -> Iterator[Served]:
    """A gunicorn serving the project against the test database; stopped afterwards.

    ``ai`` overrides ``settings.AI`` for this server, through ``tests/served_settings.py`` (the
    development settings, with static files and passwords as the test process has them), e.g. a
    short ``SPEND_RESERVATION_SECONDS``; ``env`` adds environment variables (``REDIS_URL``, ...).
    """
    port = free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module or ("tests.served_settings" if ai else "saascore.settings.local"),
        "SAASCORE_TEST_AI": json.dumps(ai or {}),
        "DATABASE_URL": test_database_url(),
        "DATABASE_OWNER_URL": "",
        "DATABASE_UNSCOPED_URL": test_database_url("unscoped"),
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "saascore/gunicorn_conf.py", "saascore.asgi:application"],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    spool = Path(environment.get("BILLING_SPOOL_DIR") or ROOT / "var" / "spool")
    server = Served(f"http://127.0.0.1:{port}", process, spool)
    reader = threading.Thread(target=_collect, args=(process.stdout, server.lines), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                reader.join(timeout=5)
                raise RuntimeError("gunicorn exited: " + "\n".join(server.lines)[-3000:])
            try:
                if http("GET", f"{server.base}/health/live")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer within 60 s")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(timeout=10)


@contextmanager
def gunicorn(output: list[str] | None = None, **env: str):
    """Yield the base URL of a gunicorn serving the project; stop it afterwards.
    ``output``, if given, receives the server's output lines once it has stopped."""
    server = None
    try:
        with served(**env) as server:
            yield server.base
    finally:
        if output is not None and server is not None:
            output.extend(server.lines)

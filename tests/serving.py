"""Run the real gunicorn server against the test database, for tests over HTTP."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
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


def http(method: str, url: str, headers: dict | None = None, body: bytes | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


@contextmanager
def gunicorn(output: list[str] | None = None, **env: str):
    """Yield the base URL of a gunicorn serving the project; stop it afterwards.
    ``output``, if given, receives the server's output lines once it has stopped."""
    port = free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "saascore.settings.local",
        "DATABASE_URL": test_database_url(),
        "DATABASE_OWNER_URL": "",
        "DATABASE_UNSCOPED_URL": test_database_url("unscoped"),
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "saascore/gunicorn_conf.py", "saascore.wsgi"],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {process.stdout.read().decode()[-3000:]}")
            try:
                if http("GET", f"{base}/health/live")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer within 60 s")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        if output is not None:
            output.extend(process.stdout.read().decode().splitlines())

"""The benchmark's own stack: embedded PostgreSQL + Redis under var/bench (not the
var/ that development and tests use), the fake upstream, gunicorn serving the
project as production does (``gunicorn -c saascore/gunicorn_conf.py
saascore.asgi:application``: uvicorn workers, one event loop each), and the peer,
the LiteLLM proxy (bench/peer_litellm.py), on the same upstream and Redis.

Import ``use_bench_services()`` before Django is set up: it points the embedded
services at var/bench. Everything started here is stopped here, by process id.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_VAR = ROOT / "var" / "bench"
BENCH_REDIS_MAXMEMORY = "2gb"  # no eviction during a run: every entry stays until its TTL


def use_bench_services() -> None:
    os.environ["SAASCORE_VAR_DIR"] = str(BENCH_VAR)
    os.environ["SAASCORE_REDIS_MAXMEMORY"] = BENCH_REDIS_MAXMEMORY
    for name in ("DATABASE_URL", "DATABASE_OWNER_URL", "DATABASE_UNSCOPED_URL", "REDIS_URL"):
        os.environ.pop(name, None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback only)
        return response.status


def _wait(url: str, process: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited; last log lines:\n{log.read_text()[-3000:]}")
        try:
            if _get(url) == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f} s; see {log}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen, timeout: float = 30.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- services, schema, shared rows ------------------------------------------------------


def services_up() -> dict:
    """Start the bench's PostgreSQL and Redis (idempotent), migrate, seed the global router examples."""
    from django.core.management import call_command

    from saascore.embedded import start_all

    status = start_all()
    call_command("migrate", verbosity=0, interactive=False)
    from ai.router.io import STARTER_EXAMPLES, parse_lines, router_examples_import
    from ai.router.models import RouterExample
    from tenants.scoping import unscoped_scope

    with unscoped_scope():
        present = RouterExample.objects.global_rows().exists()
    if not present:
        router_examples_import(rows=parse_lines(STARTER_EXAMPLES.read_text().splitlines()), tenant=None)
    return status


def redis_flush() -> None:
    """Empty the bench's own Redis (never the development one: its socket is under var/bench)."""
    import redis

    from saascore.embedded import EmbeddedRedis, embedded_paths

    paths = embedded_paths()
    assert str(paths.var).startswith(str(BENCH_VAR)), paths.var
    redis.Redis(unix_socket_path=str(EmbeddedRedis.main(paths).socket)).flushall()


def tenant_setup(*, slug: str, name: str, documents: list[dict], examples: list[dict], settings: dict):
    """A tenant with its documents ingested, its router examples, its AI settings, no rate limit, an API key."""
    from ai.rag.ingestion import document_ingest
    from ai.rag.models import Document
    from ai.rag.services import documents_bulk_upsert
    from ai.router.io import router_examples_import
    from ai.tenant_settings.models import TenantAISettings
    from billing.models import TenantBudget
    from tenants.models import Tenant
    from tenants.scoping import tenant_scope
    from tenants.services import api_key_create, tenant_create

    tenant = tenant_create(slug=slug, name=name, plan=Tenant.Plan.PRO)
    documents_bulk_upsert(tenant=tenant, rows=documents)
    with tenant_scope(tenant):
        ids = list(Document.objects.for_tenant(tenant).values_list("id", flat=True))
    for document_id in ids:
        document_ingest(tenant_id=tenant.pk, document_id=document_id)
    if examples:
        router_examples_import(rows=examples, tenant=tenant)
    with tenant_scope(tenant):
        TenantAISettings.objects.for_tenant(tenant).create(tenant=tenant, **settings)
        # No rate limit (the default is 600 a minute): the bench measures the gateway, not the limiter.
        TenantBudget.objects.for_tenant(tenant).create(tenant=tenant, requests_per_minute=None)
    _, key = api_key_create(tenant=tenant, name="bench")
    return tenant, key


# -- processes ----------------------------------------------------------------------------


@contextmanager
def upstream(*, seed: int, log_dir: Path, median_ms: float = 800.0, sigma: float = 0.6, fixed_ms: float = 0.0):
    """The fake OpenAI-compatible upstream in its own process; yields its base URL (…/v1).
    ``fixed_ms``: every chat completion sleeps that long (the held-in-flight step)."""
    port = free_port()
    log = log_dir / f"upstream-{port}.log"
    command = [sys.executable, str(ROOT / "bench" / "fake_upstream.py"), "--port", str(port), "--seed", str(seed)]
    command += ["--median-ms", str(median_ms), "--sigma", str(sigma), "--fixed-ms", str(fixed_ms)]
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(f"http://127.0.0.1:{port}/bench/health", process, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(process)


def upstream_calls(base_url: str) -> dict[str, dict]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/bench/calls", timeout=30) as response:  # noqa: S310
        return {call["ref"]: call for call in json.loads(response.read())["calls"]}


def upstream_reset(base_url: str) -> None:
    url = base_url.removesuffix("/v1") + "/bench/reset"
    request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310 (loopback only)
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass


GATEWAY_APP = "saascore.asgi:application"


@contextmanager
def gateway(*, upstream_url: str, log_dir: Path, semantic_tier: bool, workers: int = 2, whatif: str = ""):
    """gunicorn serving the project as production does (saascore/gunicorn_conf.py, its uvicorn
    workers, the ASGI application) against the bench's services; yields (base URL, master pid).

    The server settings are gunicorn_conf's own; of its environment the bench sets BIND and
    WEB_CONCURRENCY (2 workers) and leaves GUNICORN_TIMEOUT at its default. ``whatif``:
    patches of bench/whatif.py to apply in the workers (saturation experiments only).
    """
    port = free_port()
    log = log_dir / f"gunicorn-{port}.log"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.gateway_settings",
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "OPENAI_API_KEY": "bench-key-not-a-secret",
        "OPENAI_BASE_URL": upstream_url,
        "BENCH_SEMANTIC_TIER": "on" if semantic_tier else "off",
        "BENCH_WHATIF": whatif,
    }
    environment.pop("ANTHROPIC_API_KEY", None)
    config = "bench/gunicorn_whatif.py" if whatif else "saascore/gunicorn_conf.py"
    command = [sys.executable, "-m", "gunicorn", "-c", config, GATEWAY_APP]
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(f"http://127.0.0.1:{port}/health/live", process, log)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        _stop(process)


def connections_per_worker(pids: list[int], port: int) -> list[int]:
    """Established TCP connections each gunicorn worker holds (its clients' keep-alive connections)."""
    import psutil

    counts = []
    for pid in pids:
        try:
            found = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            found = []
        counts.append(sum(1 for c in found if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port))
    return counts


def worker_pids(master_pid: int, expected: int = 2, timeout: float = 30.0) -> list[int]:
    """The gunicorn workers' pids, once all ``expected`` have booted (the first answers before the last starts)."""
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        pids = [child.pid for child in psutil.Process(master_pid).children()]
        if len(pids) >= expected or time.monotonic() > deadline:
            return pids
        time.sleep(0.1)


def process_tree(master_pid: int, expected: int = 2, timeout: float = 30.0) -> list[int]:
    """A server's master and every process under it (the peer's uvicorn workers are its grandchildren)."""
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        master = psutil.Process(master_pid)
        pids = [master_pid] + [child.pid for child in master.children(recursive=True)]
        if len(pids) > expected or time.monotonic() > deadline:
            return pids
        time.sleep(0.1)


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes, summed (shared pages count in each)."""
    import psutil

    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            pass
    return total


class CpuUse:
    """Cores in use while a step runs: the whole machine, the gateway's workers, and the
    bench's PostgreSQL and Redis (their process trees under var/bench).

    On this shared machine, busy cores beyond those (and the load generator's and
    the upstream's) are other people's work: a figure to read results by.
    """

    def __init__(self, pids: list[int]) -> None:
        import psutil

        self._groups: dict[str, list] = {"gateway_workers_cores": [psutil.Process(pid) for pid in pids]}
        for name, pidfile in (("postgres_cores", "postgres/postmaster.pid"), ("redis_cores", "redis/redis.pid")):
            try:
                self._groups[name] = [psutil.Process(int((BENCH_VAR / pidfile).read_text().split()[0]))]
            except (OSError, ValueError, IndexError, psutil.Error):
                self._groups[name] = []

    @staticmethod
    def _seconds(process) -> float:
        """CPU seconds of a process and of its children, the exited ones (reaped) included.

        PostgreSQL starts a backend per connection and Django closes connections
        after CONN_MAX_AGE: the postmaster's children come and go during a step.
        """
        import psutil

        try:
            total = sum(process.cpu_times()[:4])
            for child in process.children(recursive=True):
                try:
                    total += sum(child.cpu_times()[:2])
                except psutil.Error:
                    pass
            return total
        except psutil.Error:
            return 0.0

    def _totals(self) -> dict[str, float]:
        return {name: sum(self._seconds(p) for p in group) for name, group in self._groups.items()}

    def __enter__(self) -> "CpuUse":
        import psutil

        self._wall = time.perf_counter()
        self._machine = psutil.cpu_times()
        self._before = self._totals()
        return self

    def __exit__(self, *exc) -> None:
        import psutil

        wall = time.perf_counter() - self._wall
        now, then = psutil.cpu_times(), self._machine
        busy = (sum(now) - now.idle - now.iowait) - (sum(then) - then.idle - then.iowait)
        self.result = {"machine_busy_cores": round(busy / wall, 2)}
        for name, total in self._totals().items():
            self.result[name] = round(max(0.0, total - self._before[name]) / wall, 2)

"""gunicorn settings: the ASGI application in uvicorn workers (saascore/gunicorn_worker.py).

Each worker is one process with one event loop: it holds any number of upstream
calls and streams in flight while it answers hits (docs/decisions.md). Serve with
``gunicorn -c saascore/gunicorn_conf.py saascore.asgi:application``.

Metrics: each worker is a process with its own counters, so prometheus_client
runs in multiprocess mode. Every worker writes its series to files in
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` merges the files of all workers,
the dead ones included (their counts still happened). The directory is the
operator's if set, else a new temporary one; either way it is emptied when the
server starts, and ``child_exit`` drops the live-only gauges of a dead worker.
The variable is set here, before the master imports prometheus_client, and the
workers inherit it.
"""

import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

from saascore.logs import gunicorn_logging_config, log_format

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "saascore.gunicorn_worker.Worker"
# GUNICORN_REUSE_PORT=1: each worker also listens on its own SO_REUSEPORT socket and the
# kernel spreads connections over the workers (saascore/gunicorn_worker.py). Off by default:
# a worker that exits (max_requests, a reload) resets the connections queued on its socket
# unless the host sets net.ipv4.tcp_migrate_req=1 (Linux >= 5.14).
reuse_port = os.environ.get("GUNICORN_REUSE_PORT", "") == "1"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 20
# How long a stopping worker waits for PostgreSQL to take the usage rows it holds.
WORKER_EXIT_LEDGER_SECONDS = 5.0
# No server access log: the application writes one line per request (logger saascore.access),
# with the path but not its query string (a client that puts its API key in the URL must not
# have it written to the log) and the request's ids.
accesslog = None
preload_app = False

# JSON lines unless LOG_FORMAT=plain; local development defaults to plain, as its settings do.
_local = os.environ.get("DJANGO_SETTINGS_MODULE") == "saascore.settings.local"
if log_format(default="plain" if _local else "json") == "json":
    logconfig_dict = gunicorn_logging_config(os.environ.get("LOG_LEVEL") or "INFO")

_OWN_METRICS_DIR = "SAASCORE_OWN_PROMETHEUS_MULTIPROC_DIR"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Kept across a configuration reload (HUP), which reads this file again.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="saascore-metrics-")
    os.environ[_OWN_METRICS_DIR] = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def _clear_metrics_dir() -> None:
    """A fresh start: no series of an earlier server run survive."""
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    for file in path.glob("*.db"):
        file.unlink()


def on_starting(server) -> None:
    """Empty the metrics directory; refuse to start against a database that cannot run the product."""
    _clear_metrics_dir()

    import django
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    django.setup()
    report = io.StringIO()  # through gunicorn's log, so that every line of the server is in its format
    try:
        call_command("check", databases=["default"], stdout=report, stderr=report)
    except SystemCheckError as exc:
        sys.stderr.write(f"{exc}\n")
        sys.exit(1)
    if "no issues" not in report.getvalue():
        server.log.warning("%s", report.getvalue().strip())


def post_worker_init(worker) -> None:
    """A new worker loads its embedding model and the active cache verifier before it takes
    requests (a first request must not stall for them), and sweeps pending cache invalidations at once (in the
    background, so a PostgreSQL outage does not hold its first requests), then periodically."""
    from ai.cache.invalidation import sweeping_start
    from ai.embeddings import get_embedder
    from ai.verifier.live import ActiveVerifier
    from billing.services import spool_flush
    from billing.spool_retry import drain_leftovers

    get_embedder().embed(["warm up"])
    ActiveVerifier().current()
    sweeping_start()
    drain_leftovers(spool_flush)  # a dead worker's journal and spool, in the background


def worker_exit(server, worker) -> None:
    """A worker that stops commits the usage rows it holds (hits answered before their commit);
    if PostgreSQL does not take them in time, they stay in its journal for the next drain."""
    from billing.group_commit import ledger
    from billing.journal import journal

    if ledger.wait_idle(timeout=WORKER_EXIT_LEDGER_SECONDS):
        journal.close()
    else:
        server.log.warning("worker %s stopped with usage rows uncommitted: its journal keeps them", worker.pid)


def child_exit(server, worker) -> None:
    """A worker is gone: its live-only gauges (e.g. the circuit breaker's) stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    """Remove the metrics directory if this server made it."""
    own = os.environ.get(_OWN_METRICS_DIR)
    if own and own == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(own, ignore_errors=True)

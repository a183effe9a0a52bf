"""The background sweeper of pending cache invalidations, one thread per process: the
thread and its timing only; what a sweep does is ``ai.cache.invalidation``'s.

Every process that answers from the cache (gunicorn workers: ``post_worker_init``
and the first ``get_cache()``) or changes what answers rest on (``db_worker``)
runs one: it sweeps at once, then every ``CACHE_INVALIDATION_SWEEP_SECONDS``, and
as soon as this process's Redis circuit breaker closes again. That interval is
the bound on how long another process may still serve a tenant's old answers after
Redis lost the tenant's invalidation (ai/cache/invalidation.py). None turns the
thread off (tests sweep by hand); ``invalidations_sweep()`` always works.

A sweep reads one small table (usually empty) and makes no Redis call when it is
empty. The thread never dies of an error: it logs and sweeps again later.
"""

import logging
import os
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import connections

logger = logging.getLogger("saascore.cache")

# Below this, sweeps (one SELECT each) would run back to back.
MIN_INTERVAL = 0.1

_lock = threading.Lock()
_thread: threading.Thread | None = None
_owner_pid = 0
_wake = threading.Event()
_stop = threading.Event()


def sweeper_start(sweep: Callable[[], object]) -> bool:
    """Run ``sweep`` in this process's sweeper thread, unless it runs or is turned off; True if it runs."""
    global _thread, _owner_pid
    interval = settings.CACHE_INVALIDATION_SWEEP_SECONDS
    if interval is None:
        return False
    with _lock:
        # A forked child inherits the module state but not the thread.
        if _thread is not None and _thread.is_alive() and _owner_pid == os.getpid():
            return True
        _stop.clear()
        _wake.set()  # sweep at once: what did others leave while this process was away?
        interval = max(float(interval), MIN_INTERVAL)
        _thread = threading.Thread(target=_loop, args=(interval, sweep), name="cache-invalidation-sweeper", daemon=True)
        _owner_pid = os.getpid()
        _thread.start()
    return True


def sweeper_wake(*_args) -> None:
    """Sweep now (the breaker closed: Redis answers again). Cheap and safe under any lock."""
    _wake.set()


def sweeper_stop(timeout: float = 10.0) -> None:
    """Stop the thread (tests that started one)."""
    global _thread
    with _lock:
        thread, _thread = _thread, None
    _stop.set()
    _wake.set()
    if thread is not None:
        thread.join(timeout)


def _loop(interval: float, sweep: Callable[[], object]) -> None:
    while not _stop.is_set():
        _wake.wait(interval)
        _wake.clear()
        if _stop.is_set():
            break
        try:
            sweep()
        except Exception:  # never let the sweeper die: the rows wait in PostgreSQL
            logger.exception("cache invalidation sweep failed")
        finally:
            for connection in connections.all(initialized_only=True):
                connection.close_if_unusable_or_obsolete()
    connections.close_all()

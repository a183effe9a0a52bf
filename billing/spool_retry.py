"""The background retry of the usage spool: any worker drains its host's spool.

A worker that spools a row retries every ``BILLING_SPOOL_RETRY_SECONDS`` while
rows wait. A worker whose insert just succeeded looks at the spool (one
directory listing, at most once per interval) and drains what any process of
the host left: a worker that died, a drain that was killed. ``None`` turns the
retry off (the tests drain by hand); ``manage.py billing_flush_spool`` always
works. Drains never overlap (billing/spool.py), so workers need no coordination.
"""

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connections

from billing.spool import DrainReport, spooled_files

logger = logging.getLogger("saascore.billing")

Flush = Callable[..., DrainReport]  # billing.services.spool_flush

_timer: threading.Timer | None = None
_timer_lock = threading.Lock()
_next_look = 0.0


def retry_later(flush: Flush) -> None:
    """Drain after the retry interval (once per process at a time)."""
    if settings.BILLING_SPOOL_RETRY_SECONDS is not None:
        _schedule(flush, settings.BILLING_SPOOL_RETRY_SECONDS)


def drain_leftovers(flush: Flush) -> None:
    """PostgreSQL just took a row: drain now if rows wait (looks at most once per interval)."""
    global _next_look
    retry, now = settings.BILLING_SPOOL_RETRY_SECONDS, time.monotonic()
    if retry is None or now < _next_look:
        return
    _next_look = now + retry
    if spooled_files():
        _schedule(flush, 0)


def _schedule(flush: Flush, delay: float) -> None:
    global _timer
    with _timer_lock:
        if _timer is not None and _timer.is_alive():
            return
        _timer = threading.Timer(delay, _run, args=(flush,))
        _timer.daemon = True
        _timer.start()


def _run(flush: Flush) -> None:
    global _timer
    try:
        flush(count=False)
    except Exception:  # never let the retry die: the rows are safe on disk
        logger.exception("usage spool drain failed")
    finally:
        connections.close_all()  # this thread's connections
    with _timer_lock:
        _timer = None
    if spooled_files():
        retry_later(flush)

"""Bounded thread pools that keep blocking work off the event loop.

- ``in_cpu(fn, ...)``: CPU work (an embedding, the verifier, the local router,
  the extractive answerer). ``AI["CPU_THREADS"]`` threads per process: the
  cores it may use; more would only queue on the GIL and the cores.
- ``in_db(fn, ...)``: a blocking PostgreSQL call (a cache miss of the row cache,
  retrieval, a reservation). ``AI["DB_THREADS"]`` threads per process, so at most
  that many connections per process serve the async path; each thread keeps its
  own Django connection and drops it after an error.

The event loop never waits on either except through ``await``.
"""

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import close_old_connections

from saascore.conf import ai_settings

T = TypeVar("T")
logger = logging.getLogger("saascore.pools")
_pools: dict[str, ThreadPoolExecutor] = {}


def _pool(name: str, size: int) -> ThreadPoolExecutor:
    pool = _pools.get(name)
    if pool is None:
        pool = _pools[name] = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)
    return pool


def cpu_pool() -> ThreadPoolExecutor:
    return _pool("cpu", ai_settings.CPU_THREADS)


async def in_cpu(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(cpu_pool(), functools.partial(fn, *args, **kwargs))


def _with_connection_care(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()  # a connection that failed (or outlived CONN_MAX_AGE) is not reused


async def in_db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    pool = _pool("db", ai_settings.DB_THREADS)
    call = functools.partial(_with_connection_care, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool, call)


_background: set[asyncio.Task] = set()


def in_background(work: Coroutine[Any, Any, Any]) -> None:
    """Run ``work`` on the loop without waiting for it (an exact alias, a last-used hint);
    its failure is logged, never raised into a request."""
    task = asyncio.get_running_loop().create_task(work)
    _background.add(task)
    task.add_done_callback(_finished)


def _finished(task: asyncio.Task) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.warning("background work failed: %r", task.exception())

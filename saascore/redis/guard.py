"""One guard for every Redis call on the request path: cache lookups and writes,
the rate limit, idempotency replays and single flight.

Guarantees:
- A call that fails answers its ``default`` (fail open), is logged and counted
  (``saascore_cache_errors_total{op}``).
- Only unreachability opens the circuit breaker: connection errors and timeouts.
  While it is open, calls are not made at all and answer their default at once,
  so a stalled Redis costs nothing after the first few requests; half-open lets
  one probe through.
- On the async path, a failure that is this process's own does not open it: a
  full connection pool (a local queue), or a timeout while the event loop was
  stalled (``saascore.loop_stall``: the reply may have arrived while the loop was
  busy). Such a call answers its default and is counted as ``{op}_overloaded``;
  the breaker stays as it was, so a burst of requests does not turn every cache
  hit into a miss for the breaker's cool-down.
- A Redis that answers with an error (an out-of-memory refusal of a write, a
  wrong type) is alive: it is counted, and the breaker stays closed for the
  reads that still work.

Not guaranteed: that a default is the right answer for the caller; each caller
chooses what "Redis could not say" means for it.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis
import redis.asyncio
from django.conf import settings
from django.core.signals import setting_changed

from saascore import loop_stall, metrics
from saascore.conf import ai_settings
from saascore.redis import ops
from saascore.redis.breaker import BreakerState, CircuitBreaker
from saascore.redis.connection import async_twin, redis_client
from saascore.redis.ops import Op

logger = logging.getLogger("saascore.cache")
T = TypeVar("T")

# A read this busy process failed is asked again until this long after its first attempt
# (and at least once): while the burst that stalled the loop is being parsed, a retry can
# fail the same way, and a hit whose lookup gives up is answered as a miss behind the burst
# (an upstream call, paid). A Redis that is down fails at once (connection refused) or opens
# the breaker; only this process's own congestion is waited out.
BUSY_READ_SECONDS = 3.0
_SAME = object()  # ``busy`` not given: a busy process answers ``default`` as on any failure
# The server could not be reached in time: this is what opens the breaker.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)


class RedisGuard:
    def __init__(self, client: redis.Redis, breaker: CircuitBreaker | None = None) -> None:
        self.client = client
        self.breaker = breaker or CircuitBreaker(on_change=_breaker_metric)

    @property
    def closed(self) -> bool:
        """Is Redis believed reachable (breaker closed)?"""
        return self.breaker.state is BreakerState.CLOSED

    def call(self, op: str, fn: Callable[[redis.Redis], T], default: T) -> T:
        """``fn(client)``, or ``default`` when the breaker is open or the call fails."""
        if not self.breaker.allow():
            metrics.CACHE_ERRORS.labels(op=f"{op}_breaker_open").inc()
            return default
        try:
            result = fn(self.client)
        except UNREACHABLE as exc:
            self._unreachable(op, exc)
            return default
        except redis.RedisError as exc:
            self._refused(op, exc)
            return default
        self.breaker.record_success()
        return result

    def run(self, name: str, op: Callable[[], Op[T]], default: T) -> T:
        """The operation ``op()`` (saascore/redis/ops.py) driven with the sync client."""
        return self.call(name, lambda client: ops.run(client, op()), default)

    async def arun(
        self, name: str, op: Callable[[], Op[T]], default: T, *, reads_only: bool = False, busy: object = _SAME
    ) -> T:
        """The same operation driven with this event loop's asyncio client of the same server.
        ``reads_only``: the operation may run again, so one that this busy process failed (its
        reply most likely there, unread) is tried again for up to BUSY_READ_SECONDS before
        answering ``default``: a hit that loses its lookup to a burst becomes a miss behind it.
        ``busy``: what to answer instead of ``default`` when every attempt failed on this busy
        process (Redis itself answered): a limiter refuses then rather than admit uncounted."""
        retry_for = BUSY_READ_SECONDS if reads_only else None
        return await self.acall(name, lambda client: ops.arun(client, op()), default, retry_for=retry_for, busy=busy)

    async def acall(
        self, name: str, fn: Callable[[redis.asyncio.Redis], Awaitable[T]], default: T, *,
        retry_for: float | None = None, busy: object = _SAME,
    ) -> T:  # fmt: skip
        """``await fn(client)`` with this event loop's asyncio client of the same server (a library
        that sends its own commands: the key limiter, billing/limiter.py), under the same breaker.
        ``retry_for``: seconds during which a failure of this busy process is tried again (None: once)."""
        if not self.breaker.allow():
            metrics.CACHE_ERRORS.labels(op=f"{name}_breaker_open").inc()
            return default
        loop_stall.watch()
        deadline = None if retry_for is None else time.monotonic() + retry_for
        while True:
            try:
                result = await fn(async_twin(self.client))
            except UNREACHABLE as exc:
                if not (_pool_full(exc) or loop_stall.stalled(ai_settings.REDIS_SOCKET_TIMEOUT / 2)):
                    self._unreachable(name, exc)
                    return default
                self._overloaded(name, exc)
                if deadline is None or time.monotonic() >= deadline:
                    return default if busy is _SAME else busy
                continue
            except redis.RedisError as exc:
                self._refused(name, exc)
                return default
            self.breaker.record_success()
            return result

    def _unreachable(self, name: str, exc: Exception) -> None:
        self.breaker.record_failure()
        metrics.CACHE_ERRORS.labels(op=name).inc()
        logger.warning("redis %s failed, answering without it: %s: %s", name, type(exc).__name__, exc)

    def _overloaded(self, name: str, exc: Exception) -> None:
        self.breaker.release_probe()
        metrics.CACHE_ERRORS.labels(op=f"{name}_overloaded").inc()
        logger.warning("redis %s not answered in time by this busy process: %s: %s", name, type(exc).__name__, exc)

    def _refused(self, name: str, exc: Exception) -> None:
        self.breaker.record_success()  # it answered: reachable, whatever it said
        metrics.CACHE_ERRORS.labels(op=name).inc()
        logger.warning("redis %s refused: %s: %s", name, type(exc).__name__, exc)


def _pool_full(exc: Exception) -> bool:
    """redis-py's BlockingConnectionPool found no free connection within its timeout."""
    return isinstance(exc, redis.ConnectionError) and "No connection available" in str(exc)


def _breaker_metric(state: BreakerState) -> None:
    metrics.CACHE_BREAKER_STATE.set(0 if state is BreakerState.CLOSED else 1)
    logger.warning("redis circuit breaker is now %s", state.value)


_shared: dict[str, RedisGuard] = {}


def shared_guard(url: str | None = None) -> RedisGuard:
    """The process's guard of ``url`` (default ``settings.REDIS_URL``): one breaker for every
    request-path call to that server, whichever app makes it."""
    url = url or settings.REDIS_URL
    guard = _shared.get(url)
    if guard is None:
        guard = _shared.setdefault(url, RedisGuard(redis_client(url)))
    return guard


def _forget_guards(*, setting: str, **kwargs) -> None:
    if setting in ("AI", "REDIS_URL"):
        _shared.clear()


setting_changed.connect(_forget_guards)

"""Single flight: of concurrent identical misses in one scope, one calls upstream.

The first caller takes a short Redis lock (``SET NX PX``) and leads; the
process's lock keeper renews the lock while the leader works, however long its
model chain takes. The others follow: they poll the exact tier for the leader's
answer, backing off, for as long as the lock lives (up to ``max_wait``, the
leader's own worst case). An async follower waits on the event loop, holding
no thread.

- The leader finished without a cacheable answer: it leaves a short "done"
  marker, and the followers go upstream themselves (at once, in parallel).
- The leader died (a killed worker): nobody renews its lock, it expires, and one
  follower takes the lead (``SET NX`` again); the rest keep following.
- Redis unreachable (the guard's breaker open, or a call failing): everyone
  leads. The cache fails open; it never blocks an answer.

Works across threads, workers and hosts, because the lock lives in Redis. Every
step is an operation (saascore/redis/ops.py), driven sync or async.
"""

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from saascore.conf import ai_settings
from saascore.redis.guard import RedisGuard
from saascore.redis.ops import Batch, Op, Sleep, ok, one

# Lead: take the lock and clear the "done" of an earlier flight of the same question.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 1
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

DONE_TTL = 30.0  # how long followers can still learn that the leader finished
POLL_FIRST, POLL_MAX = 0.01, 0.25


def lock_ttl() -> float:
    """Seconds a leader's lock lives without renewal: how soon a dead leader is replaced."""
    return ai_settings.SINGLE_FLIGHT_LOCK_TTL


@dataclass
class Flight:
    """A miss in flight. ``leader`` calls upstream (and must ``release``); the others ``wait``."""

    guard: RedisGuard | None
    lock_key: str
    leader: bool
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    held: bool = False  # a lock in Redis is ours (and the keeper renews it)

    @property
    def done_key(self) -> str:
        return f"{self.lock_key}:done"

    # -- operations ---------------------------------------------------------------

    def _acquire(self) -> Op[bool]:
        ttl_ms = str(int(lock_ttl() * 1000))
        (taken,) = yield one("EVAL", _ACQUIRE, 2, self.lock_key, self.done_key, self.token, ttl_ms)
        return bool(ok(taken))

    def _release(self) -> Op[None]:
        done_ms = str(int(DONE_TTL * 1000))
        (reply,) = yield one("EVAL", _RELEASE, 2, self.lock_key, self.done_key, self.token, done_ms)
        ok(reply)

    def _follow(self, fetch: Callable[[], Op[object | None]], max_wait: float) -> Op[object | None]:
        deadline = time.monotonic() + max_wait
        pause = POLL_FIRST
        while time.monotonic() < deadline:
            found = yield from fetch()
            if found is not None:
                return found
            working, finished = (
                bool(ok(r)) for r in (yield Batch([("EXISTS", self.lock_key), ("EXISTS", self.done_key)]))
            )
            if finished and not working:
                return (yield from fetch())  # the leader finished: its answer, or nothing cacheable
            if not working:  # no lock and no "done": the leader died; one of us leads now
                if (yield from self._acquire()):
                    self._lead()
                    return (yield from fetch())  # it may have answered just before it died
            yield Sleep(pause)
            pause = min(pause * 1.5, POLL_MAX)
        return None

    # -- sync and async entry points --------------------------------------------------

    def _lead(self) -> None:
        self.leader, self.held = True, True
        _keeper.hold(self)

    def _releasing(self) -> bool:
        if not self.held:
            return False
        self.held = False
        _keeper.drop(self)
        return True

    def release(self) -> None:
        """The leader is done: free the lock and tell the followers. A no-op for a follower."""
        if self._releasing():
            self.guard.run("single_flight_release", self._release, None)

    async def arelease(self) -> None:
        if self._releasing():
            await self.guard.arun("single_flight_release", self._release, None)

    def wait(self, fetch: Callable[[], Op[object | None]], max_wait: float) -> object | None:
        """Follow the leader: its answer from ``fetch`` (an exact-tier operation), or None.

        None means: go upstream. If this caller took over from a dead leader,
        ``leader`` is now True and the caller must ``release`` when done.
        """
        if self.guard is None:
            return None
        return self.guard.run("single_flight_poll", lambda: self._follow(fetch, max_wait), None)

    async def await_(self, fetch: Callable[[], Op[object | None]], max_wait: float) -> object | None:
        if self.guard is None:
            return None
        return await self.guard.arun("single_flight_poll", lambda: self._follow(fetch, max_wait), None)


def _started(guard: RedisGuard, lock_key: str) -> Flight:
    flight = Flight(guard=guard, lock_key=lock_key, leader=True)
    if not guard.closed:
        flight.guard = None  # Redis believed down: everyone leads, without a lock
    return flight


def _settled(flight: Flight, taken: bool | None) -> Flight:
    if taken is None:
        flight.guard = None
    elif taken:
        flight._lead()
    else:
        flight.leader = False
    return flight


def take_off(guard: RedisGuard, lock_key: str) -> Flight:
    """Become the leader of ``lock_key``, or a follower of the current leader.

    Without Redis (breaker open, or the call failing) everyone leads, without a lock.
    """
    flight = _started(guard, lock_key)
    if flight.guard is None:
        return flight
    return _settled(flight, guard.run("single_flight_lock", flight._acquire, None))


async def atake_off(guard: RedisGuard, lock_key: str) -> Flight:
    flight = _started(guard, lock_key)
    if flight.guard is None:
        return flight
    return _settled(flight, await guard.arun("single_flight_lock", flight._acquire, None))


class _LockKeeper:
    """One daemon thread per process renews the locks its leaders hold, three times a TTL."""

    def __init__(self) -> None:
        self._flights: dict[int, Flight] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, flight: Flight) -> None:
        with self._lock:
            self._flights[id(flight)] = flight
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="single-flight-keeper", daemon=True)
                self._thread.start()
        self._wake.set()  # a shorter TTL may apply from now on

    def drop(self, flight: Flight) -> None:
        with self._lock:
            self._flights.pop(id(flight), None)

    def _run(self) -> None:
        while True:
            self._wake.wait(timeout=lock_ttl() / 3)
            self._wake.clear()
            ttl_ms = str(int(lock_ttl() * 1000))
            with self._lock:
                flights = list(self._flights.values())
            for flight in flights:
                flight.guard.call(
                    "single_flight_renew",
                    lambda client, f=flight, ms=ttl_ms: client.eval(_RENEW, 1, f.lock_key, f.token, ms),
                    None,
                )


_keeper = _LockKeeper()

"""How many requests look up, and how many misses prepare, at once in a process (issue 14:
hits while 1,000 misses are held).

A miss costs about 30 ms of the worker's CPU before its upstream call: the embedding (CPU
pool), routing, the spend reservation and retrieval (DB pool). A burst of misses arriving
together used to prepare all at once, interleaved, and every request of the worker (exact
hits, which need none of it) waited behind them on the event loop, the GIL and the pools.

``AI["MISS_PREPARE_CONCURRENCY"]`` permits per event loop (one loop per worker process) cap
that: a miss takes a permit once the exact tier has missed (before its embedding) and gives
it back just before its upstream call, so the rest of a burst waits in line, costing nothing
but a coroutine, and the upstream still holds every miss in flight at once. 0: no gate.

- Exact hits never take a permit. A semantic hit does (it needs the embedding and the route
  before the semantic tier can answer it): in a burst it waits its turn behind the misses
  that came before it.
- Nothing is refused: a miss waits for its permit however long the line is.
- A single-flight follower gives its permit back while it waits for its leader, and takes
  one again if it must generate after all.
- A streamed miss gives it back once its reservation and retrieval are done, before its
  stream starts (ai/streaming.py).
- The permit is a ``Permit`` used with ``async with``: a request cancelled while it waits or
  prepares (its client went away) never keeps one.

Before that, the door (``AI["LOOKUP_CONCURRENCY"]`` per event loop, 0: none): a request
enters it before its admission (the rate limit) and leaves once the exact tier has answered
it (a hit, after its ledger row) or missed (before it waits for a permit). A burst of 1,000
requests that looked up all at once held the process's 64 Redis connections for as long as
the busy loop took to read their replies, and the hits asked meanwhile lost their lookups
and were answered as misses behind the burst. With the door the lookups that run at once
fit the pool, and the rest wait costing a coroutine each, **newest first**: a burst's late
arrivals (the hits asked while it is being admitted) do not wait for its early ones. One that
has waited ``OLDEST_FIRST_AFTER`` seconds goes first, so a request is never left behind for
good under sustained overload. Nothing is refused.
"""

import asyncio
import time
import weakref
from collections import deque

from saascore.conf import ai_settings

_gates: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[int, asyncio.Semaphore]]" = (
    weakref.WeakKeyDictionary()
)


def _gate() -> asyncio.Semaphore | None:
    """This loop's semaphore (a new one when the setting changed), or None with the gate off."""
    size = ai_settings.MISS_PREPARE_CONCURRENCY
    if not size:
        return None
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None or gate[0] != size:
        gate = _gates[loop] = (size, asyncio.Semaphore(size))
    return gate[1]


OLDEST_FIRST_AFTER = 10.0  # seconds a request waits at the door before it goes first


class Door:
    """``size`` places; those who find none wait, newest first (oldest first once one has
    waited ``OLDEST_FIRST_AFTER``). A place that is left goes straight to the next waiter."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._inside = 0
        self._waiting: deque[tuple[float, asyncio.Future]] = deque()

    async def enter(self) -> None:
        if self._inside < self.size and not self._waiting:
            self._inside += 1
            return
        waiter = (time.monotonic(), asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        try:
            await waiter[1]
        except asyncio.CancelledError:
            if waiter[1].done() and not waiter[1].cancelled():
                self.leave()  # it was handed a place as it was cancelled: pass it on
            else:
                self._waiting.remove(waiter)
            raise

    def leave(self) -> None:
        while self._waiting:
            oldest = self._waiting[0]
            waited = time.monotonic() - oldest[0]
            _, future = self._waiting.popleft() if waited >= OLDEST_FIRST_AFTER else self._waiting.pop()
            if not future.done():
                future.set_result(None)  # the place changes hands: as many inside
                return
        self._inside -= 1


_doors: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Door]" = weakref.WeakKeyDictionary()


def _door() -> Door | None:
    """This loop's door (a new one when the setting changed), or None without one."""
    size = ai_settings.LOOKUP_CONCURRENCY
    if not size:
        return None
    loop = asyncio.get_running_loop()
    door = _doors.get(loop)
    if door is None or door.size != size:
        door = _doors[loop] = Door(size)
    return door


class Permit:
    """One request's place at the door, then among the misses preparing at once; both are
    given back on exit at the latest.

    async with Permit() as permit:
        await permit.enter()      # the door: admission and the exact tier
        ...
        await permit.acquire()    # leaves the door, waits its turn (a no-op while held)
        ...                       # embed, route, reserve, retrieve
        permit.release()          # just before the upstream call (a no-op once released)
    """

    __slots__ = ("_door", "_held")

    def __init__(self) -> None:
        self._held: asyncio.Semaphore | None = None
        self._door: Door | None = None

    async def enter(self) -> None:
        if self._door is None and (door := _door()) is not None:
            await door.enter()  # cancelled while waiting: nothing taken
            self._door = door

    def leave(self) -> None:
        if self._door is not None:
            self._door.leave()
            self._door = None

    async def acquire(self) -> None:
        self.leave()
        if self._held is None and (gate := _gate()) is not None:
            await gate.acquire()  # cancelled while waiting: nothing taken
            self._held = gate

    def release(self) -> None:
        self.leave()
        if self._held is not None:
            self._held.release()
            self._held = None

    async def __aenter__(self) -> "Permit":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

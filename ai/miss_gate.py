"""How many misses prepare at once in a process (issue 14: hits while 1,000 misses are held).

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

Before the gate, a request passed the door (saascore/door.py), which it leaves when it
takes a permit (or gives one back): the door is for admission and the exact tier.
"""

import asyncio

from saascore import door
from saascore.conf import ai_settings
from saascore.per_loop import PerLoop

_gates = PerLoop(asyncio.Semaphore)


def _gate() -> asyncio.Semaphore | None:
    """This loop's semaphore (a new one when the setting changed), or None with the gate off."""
    return _gates.get(ai_settings.MISS_PREPARE_CONCURRENCY)


class Permit:
    """One request's place among the misses preparing at once; released on exit at the latest.
    Taking it (or giving it back) leaves the door first (saascore/door.py).

    async with Permit() as permit:
        ...                       # the exact tier: no permit
        await permit.acquire()    # leaves the door, waits its turn (a no-op while held)
        ...                       # embed, route, reserve, retrieve
        permit.release()          # just before the upstream call (a no-op once released)
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: asyncio.Semaphore | None = None

    async def acquire(self) -> None:
        door.leave()
        if self._held is None and (gate := _gate()) is not None:
            await gate.acquire()  # cancelled while waiting: nothing taken
            self._held = gate

    def release(self) -> None:
        door.leave()
        if self._held is not None:
            self._held.release()
            self._held = None

    async def __aenter__(self) -> "Permit":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

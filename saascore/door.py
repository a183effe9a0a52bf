"""The door: how many requests per process are between their arrival and the exact tier's
answer at once (issue 14: hits while 1,000 misses are held).

A burst of 1,000 requests used to be parsed, authenticated, admitted and looked up all at
once on one worker's event loop: they held the process's 64 Redis connections for as long as
the busy loop took to read their replies, the hits asked meanwhile lost their lookups and were
answered as misses behind the burst, and those that got through met every step of the burst's
arrival work first. ``AI["LOOKUP_CONCURRENCY"]`` places per event loop (one loop per worker)
cap that: the query paths take a place before Django builds their request (saascore/asgi.py),
and leave it once the exact tier has answered (a hit, once its response is built, before it
is sent: saascore/asgi.py) or missed (a miss, when it waits for the miss gate,
ai/miss_gate.py; an embeddings request once admitted). The rest wait, costing a coroutine each,
**newest first**: a burst's late arrivals (the hits asked while it is being let in) do not
wait for its early ones. One that has waited ``OLDEST_FIRST_AFTER`` seconds goes first, so
no request is left behind for good under sustained overload (adaptive LIFO with an age
limit). Nothing is refused. 0: no door.

    async with door.entered():    # waits for a place (a no-op where one is held already)
        ...                       # the request, its admission, the exact tier
        door.leave()              # (a miss) before it waits for anything else
"""

import asyncio
import time
from collections import deque
from contextlib import asynccontextmanager, suppress
from contextvars import ContextVar

from saascore.conf import ai_settings
from saascore.per_loop import PerLoop

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
            else:  # not yet passed over by leave(): out of the line (once passed over, it is gone)
                with suppress(ValueError):
                    self._waiting.remove(waiter)
            raise

    def leave(self) -> None:
        while self._waiting:
            waited = time.monotonic() - self._waiting[0][0]
            _, future = self._waiting.popleft() if waited >= OLDEST_FIRST_AFTER else self._waiting.pop()
            if not future.done():
                future.set_result(None)  # the place changes hands: as many inside
                return
        self._inside -= 1


class _Place:
    """A request's place: the door it holds, until it leaves (shared by the request's tasks)."""

    __slots__ = ("door",)

    def __init__(self, door: Door | None) -> None:
        self.door = door


_doors = PerLoop(Door)
_place: ContextVar[_Place | None] = ContextVar("door_place", default=None)


def this_loops() -> Door | None:
    """This loop's door (a new one when the setting changed), or None without one."""
    return _doors.get(ai_settings.LOOKUP_CONCURRENCY)


@asynccontextmanager
async def entered():
    """Hold a place of this loop's door for the body, unless this request holds one already."""
    if _place.get() is not None:
        yield
        return
    door = this_loops()
    if door is not None:
        await door.enter()  # cancelled while waiting: nothing taken
    place = _Place(door)
    token = _place.set(place)
    try:
        yield
    finally:
        _place.reset(token)
        _leave(place)


def leave() -> None:
    """Give this request's place back now (a no-op without one, or once given back)."""
    place = _place.get()
    if place is not None:
        _leave(place)


def _leave(place: _Place) -> None:
    if place.door is not None:
        place.door.leave()
        place.door = None

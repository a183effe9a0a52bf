"""Was this event loop stalled? A heartbeat per loop that tells a slow server from a busy loop.

An asyncio read that times out says only that the reply was not *processed* in time. When
the loop itself was busy (a burst of a thousand requests arriving at once, each parsed,
authenticated and looked up on the same thread) past the timeout, the reply may have been
sitting in the socket all along: the timer and the reply become ready in the same turn and
the timer wins. Counting such timeouts against the server opens its circuit breaker, and
a burst then turns every cache hit into a miss for the breaker's cool-down, which makes the
burst worse (measured: docs/benchmarks.md, issue 14's held-in-flight step).

A task per loop wakes every ``PERIOD`` seconds and records how late it woke. The loop was
stalled for a caller when the heartbeat is overdue now, or woke more than ``threshold``
late within the last ``WINDOW`` seconds. Cost: 20 wake-ups a second per loop.
"""

import asyncio
import weakref

PERIOD = 0.05
WINDOW = 1.0


class _Heartbeat:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.last = loop.time()
        self.lateness = 0.0
        self.late_at = float("-inf")
        self.task = loop.create_task(self._beat(), name="loop-stall-heartbeat")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(PERIOD)
            now = self.loop.time()
            late = now - self.last - PERIOD
            if late > self.lateness or now - self.late_at > WINDOW:
                self.lateness, self.late_at = late, now
            self.last = now

    def stalled(self, threshold: float) -> bool:
        now = self.loop.time()
        overdue = now - self.last - PERIOD
        return overdue > threshold or (self.lateness > threshold and now - self.late_at <= WINDOW)


_beats: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Heartbeat]" = weakref.WeakKeyDictionary()


def watch() -> None:
    """Start this loop's heartbeat (once per loop); call it from the loop before relying on ``stalled``."""
    loop = asyncio.get_running_loop()
    beat = _beats.get(loop)
    if beat is None or beat.task.done():
        _beats[loop] = _Heartbeat(loop)


def stalled(threshold: float) -> bool:
    """Has the running loop been unable to run its callbacks for more than ``threshold``
    seconds, now or within the last WINDOW seconds? False for a loop not watched."""
    beat = _beats.get(asyncio.get_running_loop())
    return beat is not None and beat.stalled(threshold)

"""A circuit breaker for Redis: after repeated failures, stop calling for a while.

closed --(N consecutive failures)--> open --(cool-down)--> half-open
half-open lets one call through: success closes, failure opens again.
While open, callers get an immediate miss instead of waiting for a timeout.
"""

import threading
import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._clock = clock
        self._listeners: list[Callable[[BreakerState], None]] = [on_change] if on_change else []
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._current()

    def _current(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_after:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def subscribe(self, listener: Callable[[BreakerState], None]) -> None:
        """Call ``listener(state)`` on every change, under the breaker's lock: keep it short."""
        self._listeners.append(listener)

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            for listener in self._listeners:
                listener(state)

    def allow(self) -> bool:
        """May a call go out now? In half-open, only one probe at a time."""
        with self._lock:
            state = self._current()
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
                self._probe_in_flight = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._probe_in_flight = False
            self._set(BreakerState.CLOSED)

    def release_probe(self) -> None:
        """A call ended saying nothing about the server (this process was too busy to tell):
        no change, except that a half-open breaker may send its next probe."""
        with self._lock:
            self._probe_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._probe_in_flight = False
            if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
                self._set(BreakerState.OPEN)

"""One object per event loop (one loop per worker process), built again when its size setting changes."""

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """``build(size)`` once per running loop and size; ``None`` for size 0 (the feature is off)."""

    def __init__(self, build: Callable[[int], T]) -> None:
        self._build = build
        self._built: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[int, T]] = weakref.WeakKeyDictionary()

    def get(self, size: int) -> T | None:
        if not size:
            return None
        loop = asyncio.get_running_loop()
        built = self._built.get(loop)
        if built is None or built[0] != size:
            built = self._built[loop] = (size, self._build(size))
        return built[1]

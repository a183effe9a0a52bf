"""The one per-process cache of rows read on every request (settings, budgets, prices,
route tables, router example sets).

Entries live a few seconds (``AI["ROW_CACHE_SECONDS"]``), so an edit made in
another process reaches this one within that time, without a restart; a save
or delete in this process drops the cache at once (``forget_on_change``). An
entry costly to load can carry a fingerprint (a cheap query, such as a count
and the newest change): when it expires and the fingerprint has not moved, it
is kept for another period instead of loaded again.
"""

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from django.db.models.signals import post_delete, post_save

MAX_ENTRIES = 10_000


class TTLCache:
    def __init__(self, name: str, seconds: Callable[[], float]) -> None:
        self.name = name
        self._seconds = seconds
        self._entries: dict[Hashable, tuple[float, Any, Hashable]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], Any], *, fingerprint: Callable[[], Hashable] | None = None) -> Any:
        seconds = self._seconds()
        now = time.monotonic()
        found = self._entries.get(key)
        if found is not None and now - found[0] < seconds:
            return found[1]
        # The print is taken before the load: a change between the two is seen at the next check.
        mark = fingerprint() if fingerprint else None
        if found is not None and fingerprint is not None and mark == found[2]:
            value = found[1]
        else:
            value = load()
        if seconds > 0:
            with self._lock:
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries.clear()
                self._entries[key] = (now, value, mark)
        return value

    def clear(self, **kwargs) -> None:
        with self._lock:
            self._entries.clear()

    def forget_on_change(self, *models) -> "TTLCache":
        for model in models:
            uid = f"ttl-{self.name}-{model._meta.label}"
            post_save.connect(self.clear, sender=model, weak=False, dispatch_uid=f"{uid}-save")
            post_delete.connect(self.clear, sender=model, weak=False, dispatch_uid=f"{uid}-delete")
        return self

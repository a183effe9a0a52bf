"""The one per-process cache of rows read on every request (settings, budgets, prices,
route tables, router example sets).

Entries live a few seconds (``AI["ROW_CACHE_SECONDS"]``), so an edit made in
another process reaches this one within that time (and the moment its
background refresh takes), without a restart; a save or delete in this process
drops the cache at once (``forget_on_change``). An
entry costly to load can carry a fingerprint (a cheap query, such as a count
and the newest change): when it expires and the fingerprint has not moved, it
is kept for another period instead of loaded again.
"""

import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, close_old_connections
from django.db.models.signals import post_delete, post_save

from saascore.pools import in_db

logger = logging.getLogger("saascore.ttl")

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class _Entry:
    at: float
    value: Any
    mark: Hashable


# One background thread refreshes expired entries of every cache, one key at a time.
_refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="row-cache-refresh")


class TTLCache:
    """A request never waits on PostgreSQL for an entry it has seen: an expired entry is
    answered as it was while one background refresh loads it again, and kept if that fails
    (PostgreSQL down). Only a cold entry (never loaded, or forgotten on a save) is loaded
    by the caller, and an async caller does that off the event loop (``aget``)."""

    def __init__(self, name: str, seconds: Callable[[], float]) -> None:
        self.name = name
        self._seconds = seconds
        self._entries: dict[Hashable, _Entry] = {}
        self._refreshing: set[Hashable] = set()
        self._lock = threading.Lock()
        self._loading: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, load: Callable[[], Any], *, fingerprint: Callable[[], Hashable] | None = None) -> Any:
        found = self._known(key, load, fingerprint)
        return found.value if found is not None else self._load(key, load, fingerprint)

    async def aget(
        self, key: Hashable, load: Callable[[], Any], *, fingerprint: Callable[[], Hashable] | None = None
    ) -> Any:
        found = self._known(key, load, fingerprint)
        return found.value if found is not None else await in_db(self._load, key, load, fingerprint)

    def _known(self, key: Hashable, load, fingerprint) -> _Entry | None:
        """The entry to answer with, if there is one; an expired one is refreshed in the background."""
        seconds = self._seconds()
        found = self._entries.get(key)
        if found is None or seconds <= 0:
            return None
        if time.monotonic() - found.at >= seconds:
            self._refresh_later(key, load, fingerprint)
        return found

    def _load(self, key: Hashable, load: Callable[[], Any], fingerprint) -> Any:
        """Load one key at a time: callers that find the same key cold (a fresh worker under
        load) wait for one load instead of each running it."""
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            found = self._entries.get(key)
            if found is not None and time.monotonic() - found.at < self._seconds():
                return found.value  # loaded while this caller waited
            return self._load_now(key, load, fingerprint)

    def _load_now(self, key: Hashable, load: Callable[[], Any], fingerprint) -> Any:
        now = time.monotonic()
        found = self._entries.get(key)
        # The print is taken before the load: a change between the two is seen at the next check.
        mark = fingerprint() if fingerprint else None
        value = found.value if found is not None and fingerprint is not None and mark == found.mark else load()
        if self._seconds() > 0:
            with self._lock:
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries.clear()
                    self._loading.clear()
                self._entries[key] = _Entry(now, value, mark)
        return value

    def _refresh_later(self, key: Hashable, load, fingerprint) -> None:
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)
        _refresher.submit(self._refresh, key, load, fingerprint)

    def _refresh(self, key: Hashable, load, fingerprint) -> None:
        try:
            self._load(key, load, fingerprint)
        except DatabaseError as exc:  # PostgreSQL unavailable: the entry serves as it was until it answers
            logger.warning("row cache %s kept an expired entry, its refresh failed: %s", self.name, exc)
        finally:
            with self._lock:
                self._refreshing.discard(key)
            close_old_connections()

    def clear(self, **kwargs) -> None:
        with self._lock:
            self._entries.clear()

    def forget_on_change(self, *models) -> "TTLCache":
        for model in models:
            uid = f"ttl-{self.name}-{model._meta.label}"
            post_save.connect(self.clear, sender=model, weak=False, dispatch_uid=f"{uid}-save")
            post_delete.connect(self.clear, sender=model, weak=False, dispatch_uid=f"{uid}-delete")
        return self

"""The tenants this process must not answer from the cache: one of their invalidations
is pending (Redis did not take it). A dict lookup on the hot path, no SQL.

A hold is released only by a generation bump that began after the hold was taken:
whatever made someone hold the tenant was committed before the hold, so such a bump
covers it. Holds carry increasing tokens for that comparison; a bump notes the
latest token (``mark``) before it starts, and on success releases the tenant only if
nobody held it again since.
"""

import itertools
import threading
from collections.abc import Iterable

from saascore import metrics


class PendingTenants:
    def __init__(self) -> None:
        self._held: dict[int, int] = {}  # tenant id -> token of its latest hold
        self._tokens = itertools.count(1)
        self._last = 0
        self._lock = threading.Lock()

    def __contains__(self, tenant_id: int) -> bool:
        return tenant_id in self._held  # one dict lookup (atomic under the GIL): no lock on the hot path

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, tenant_id: int) -> None:
        """Stop answering the tenant from the cache until a later bump succeeds."""
        with self._lock:
            self._last = self._held[tenant_id] = next(self._tokens)
            self._publish()

    def mark(self) -> int:
        """The latest hold's token: take it before a bump, release with it after."""
        with self._lock:
            return self._last

    def release(self, tenant_ids: Iterable[int], *, mark: int) -> None:
        """A bump (or a look at PostgreSQL) that began at ``mark`` settled these tenants."""
        with self._lock:
            for tenant_id in tenant_ids:
                if self._held.get(tenant_id, mark + 1) <= mark:
                    del self._held[tenant_id]
            self._publish()

    def held(self) -> set[int]:
        with self._lock:
            return set(self._held)

    def _publish(self) -> None:
        metrics.CACHE_INVALIDATIONS_PENDING.set(len(self._held))


# The process's own: the cache consults it, the after-commit hook and the sweeper fill and empty it.
PENDING = PendingTenants()

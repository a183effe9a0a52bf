"""Group commit of the usage ledger, for the async path: no transaction per request.

A request hands its usage to the process's writer and awaits it. The writer
thread takes every row waiting, prices it (prices are cached per process), and
writes them with one transaction per tenant: its row-level security scope and one
INSERT that also moves the month's counter (billing/services.py); then it wakes
each request with its priced row. The connection is kept between batches (closed
only after an error), so a batch costs its own round trips and no health check.
Under load the batches grow by themselves (rows arriving during a commit wait for the next); idle, a
row waits for one round trip.

Guarantees:
- A request answers only once its row is committed, or spooled and fsync'd
  (billing/spool.py): a worker killed with SIGKILL loses no row of a request it
  answered. The ledger's unique key keeps it one row per request id.
- PostgreSQL unavailable or stalled: the batch is spooled within
  ``WRITE_TIMEOUT`` seconds, and for ``BACKOFF_SECONDS`` after, rows go straight
  to the spool; the requests are answered meanwhile, from the cache.
- A row PostgreSQL refuses for itself (a bug): the batch is written row by row,
  and only that row's request gets the error.

Not guaranteed: an order between the rows of one batch.
"""

import asyncio
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import close_old_connections

from billing.services import POSTGRES_UNAVAILABLE, Usage, insert_rows, price_usage, spool_unwritten
from catalog.pricing import ZERO
from saascore.db.base import client_timeout

logger = logging.getLogger("saascore.billing")

WRITE_TIMEOUT = 1.0  # the writer's bound on each wait for PostgreSQL
BACKOFF_SECONDS = 2.0  # after a failure, rows are spooled without trying PostgreSQL
MAX_BATCH = 500


@dataclass
class _Pending:
    tenant_id: int
    usage: Usage
    when: datetime
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    row: dict | None = None


class LedgerWriter:
    def __init__(self) -> None:
        self._waiting: list[_Pending] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._down_until = 0.0

    async def arecord(self, *, tenant_id: int, usage: Usage) -> dict:
        """Record one request's usage; returns the row's values once it is durable."""
        loop = asyncio.get_running_loop()
        pending = _Pending(tenant_id, usage, datetime.now(UTC), loop, loop.create_future())
        with self._lock:
            self._waiting.append(pending)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ledger-group-commit", daemon=True)
                self._thread.start()
        self._wake.set()
        return await pending.future

    def _run(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                if not self._waiting:
                    self._wake.clear()
            if batch:
                self._write(batch)

    def _write(self, batch: list[_Pending]) -> None:
        try:
            priced = [pending for pending in batch if self._priced(pending)]
            if time.monotonic() < self._down_until:
                self._spool(priced)
            else:
                self._commit(priced)
        except Exception as exc:  # never leave a request waiting
            logger.exception("ledger batch failed")
            close_old_connections()
            for pending in batch:
                _resolve(pending, error=exc)

    def _priced(self, pending: _Pending) -> bool:
        """Price the row; if PostgreSQL cannot even give a price, spool it unpriced (it is priced
        at its own time when written) and answer with cost 0. False: nothing left to write."""
        usage, when = pending.usage, pending.when
        pending.row = {
            **usage.__dict__,
            "tenant_id": pending.tenant_id,
            "created_at": when,
            "cost": ZERO,
            "saved": ZERO,
        }
        try:
            pending.row["cost"], pending.row["saved"] = price_usage(usage, when)
        except POSTGRES_UNAVAILABLE as exc:
            logger.error("usage row for request %s spooled unpriced, PostgreSQL unavailable: %s", usage.request_id, exc)
            spool_unwritten({**pending.row, "cost": None, "saved": None})
            _resolve(pending)
            return False
        return True

    def _commit(self, batch: list[_Pending]) -> None:
        by_tenant: dict[int, list[_Pending]] = defaultdict(list)
        for pending in batch:
            by_tenant[pending.tenant_id].append(pending)
        for tenant_id, group in by_tenant.items():
            if time.monotonic() < self._down_until:
                self._spool(group)
            else:
                self._commit_tenant(tenant_id, group)

    def _commit_tenant(self, tenant_id: int, group: list[_Pending]) -> None:
        """One transaction per tenant, whose scope is the transaction's own (no savepoint):
        BEGIN, the scope, one INSERT, COMMIT."""
        try:
            with client_timeout(WRITE_TIMEOUT):
                insert_rows(tenant_id, [pending.row for pending in group])
        except POSTGRES_UNAVAILABLE as exc:
            close_old_connections()  # a broken connection is not reused
            logger.error("ledger batch of %d rows spooled, PostgreSQL unavailable: %s", len(group), exc)
            self._down_until = time.monotonic() + BACKOFF_SECONDS
            self._spool(group)
            return
        except Exception as exc:
            if len(group) == 1:
                raise
            logger.warning("ledger batch refused (%s): writing its rows one by one", exc)
            for pending in group:  # find the row PostgreSQL refuses; the others go in
                try:
                    self._commit_tenant(tenant_id, [pending])
                except Exception as refused:
                    _resolve(pending, error=refused)
            return
        for pending in group:
            _resolve(pending)

    def _spool(self, batch: list[_Pending]) -> None:
        for pending in batch:
            spool_unwritten(pending.row)
            _resolve(pending)


def _resolve(pending: _Pending, error: Exception | None = None) -> None:
    def settle() -> None:
        if pending.future.done():
            return
        if error is None:
            pending.future.set_result(pending.row)
        else:
            pending.future.set_exception(error)

    pending.loop.call_soon_threadsafe(settle)


ledger = LedgerWriter()

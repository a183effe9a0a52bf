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
  (billing/spool.py), or, for a cache hit (``journaled``), written to the process's
  journal (billing/journal.py), which the spool's drain replays if the process dies:
  a worker killed with SIGKILL loses no row of a request it answered. The ledger's
  unique key keeps it one row per request id.
- A journaled row is priced on the event loop from the process's price cache (a price
  it has not read yet is read off the loop); one the journal cannot take waits for its
  commit like any other.
- A stopping worker commits the rows it holds (``wait_idle``, from gunicorn's
  ``worker_exit``); a killed one leaves them to its journal.
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

from django.conf import settings
from django.db import close_old_connections

from billing import spool_retry
from billing.journal import Segment, journal
from billing.services import (
    POSTGRES_UNAVAILABLE,
    Usage,
    aprice_usage,
    insert_rows,
    price_usage,
    spool_flush,
    spool_unwritten,
)
from catalog.pricing import ZERO
from saascore.db.base import client_timeout

logger = logging.getLogger("saascore.billing")

WRITE_TIMEOUT = 1.0  # the writer's bound on each wait for PostgreSQL
BACKOFF_SECONDS = 2.0  # after a failure, rows are spooled without trying PostgreSQL
MAX_BATCH = 500


@dataclass(eq=False)
class _Pending:
    tenant_id: int
    usage: Usage
    when: datetime
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future | None = None  # None: journaled, the request did not wait
    row: dict | None = None
    segment: Segment | None = None  # the journal's segment that holds the row
    settled: bool = False


class LedgerWriter:
    def __init__(self) -> None:
        self._waiting: list[_Pending] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._writing = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._down_until = 0.0

    async def arecord(self, *, tenant_id: int, usage: Usage, journaled: bool = False) -> dict:
        """Record one request's usage; returns the row's values once it is durable: committed,
        spooled, or (``journaled``, for a cache hit) in the journal."""
        when = datetime.now(UTC)
        if journaled and settings.BILLING_JOURNAL_HITS:
            pending = await self._journaled(tenant_id, usage, when)
            if pending is not None:
                self._enqueue(pending)
                return pending.row
        loop = asyncio.get_running_loop()
        pending = _Pending(tenant_id, usage, when, loop, loop.create_future())
        self._enqueue(pending)
        return await pending.future

    async def _journaled(self, tenant_id: int, usage: Usage, when: datetime) -> _Pending | None:
        """The row priced and in the journal; None if it cannot be (it then waits for its commit)."""
        try:
            cost, saved = await aprice_usage(usage, when)
        except POSTGRES_UNAVAILABLE:
            return None  # a price not read yet, and PostgreSQL down: the writer spools it unpriced
        pending = _Pending(tenant_id, usage, when, row=_row(tenant_id, usage, when, cost, saved))
        try:
            pending.segment = journal.append(pending.row)
        except OSError as exc:
            logger.error("the usage journal refused a row, its request waits for the commit: %s", exc)
            return None
        return pending

    def _enqueue(self, pending: _Pending) -> None:
        with self._lock:
            self._waiting.append(pending)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ledger-group-commit", daemon=True)
                self._thread.start()
        self._wake.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every row handed over is written (a stopping worker); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._waiting or self._writing:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not (self._thread and self._thread.is_alive()):
                    return False
                self._idle.wait(remaining)
        return True

    def _run(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                if not self._waiting:
                    self._wake.clear()
                self._writing = bool(batch)
            if batch:
                self._write(batch)
            with self._idle:
                self._writing = False
                self._idle.notify_all()

    def _write(self, batch: list[_Pending]) -> None:
        try:
            priced = [pending for pending in batch if pending.segment or self._priced(pending)]
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
        pending.row = _row(pending.tenant_id, usage, when, ZERO, ZERO)
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
        spool_retry.drain_leftovers(spool_flush)  # a dead worker's journal or spool, at most once per interval

    def _spool(self, batch: list[_Pending]) -> None:
        for pending in batch:
            spool_unwritten(pending.row)
            _resolve(pending)


def _row(tenant_id: int, usage: Usage, when: datetime, cost, saved) -> dict:
    return {**usage.__dict__, "tenant_id": tenant_id, "created_at": when, "cost": cost, "saved": saved}


def _resolve(pending: _Pending, error: Exception | None = None) -> None:
    """Wake the request with its row (or the error), or, for a journaled row, settle it in the
    journal: written, or spooled since it failed; a row the spool refuses too stays in the journal."""
    if pending.future is None:
        if not pending.settled:
            pending.settled = error is None or spool_unwritten(pending.row)
            if pending.settled:
                journal.settle(pending.segment)
        return

    def settle() -> None:
        if pending.future.done():
            return
        if error is None:
            pending.future.set_result(pending.row)
        else:
            pending.future.set_exception(error)

    pending.loop.call_soon_threadsafe(settle)


ledger = LedgerWriter()

"""Cache invalidation that is never lost.

A change to what a tenant's answers rest on (its documents, its AI settings) moves
the tenant's cache generation in Redis once it commits (``SemanticCache.invalidate``).
That bump fails open: Redis unreachable, the circuit breaker open, a write refused.
If Redis later answers again with its data, entries built from the old text would
serve until their TTL. So the obligation is durable:

- The change's own transaction writes a ``PendingInvalidation`` row (one per tenant
  and transaction): a commit always leaves either the row or a moved generation,
  even if the process dies before its commit hook runs.
- After the commit, the hook holds the tenant in this process (``PENDING``: not
  answered from the cache), bumps, and on success deletes its row and releases it.
- Otherwise the row waits. Every process sweeps (``ai/cache/sweeper.py``) every
  ``CACHE_INVALIDATION_SWEEP_SECONDS`` and as soon as its breaker closes: it holds
  every tenant with a row, bumps, deletes exactly the rows it saw, releases.

Guarantees:
- The process whose bump failed never answers the tenant from the cache again until
  a later bump succeeded.
- Every other process stops within one sweep interval (plus one sweep) of the
  commit: its sweep either applies the row or holds the tenant.
- A row is deleted only after a bump that began after the row's commit.
- Tenants are apart: a row names one tenant, is deleted under that tenant's
  Row-Level Security scope, and its bump moves that tenant's generation only.

Not guaranteed: a process whose Redis works while PostgreSQL is unreachable cannot
learn of a row (the bound counts from PostgreSQL's return); a bump that a Redis
primary acknowledged and lost in a failover to a replica it had not reached.
"""

import logging
from dataclasses import dataclass, field
from enum import StrEnum

from django.db import DatabaseError, connections, transaction

from ai.cache import cache_built, get_cache
from ai.cache.models import PendingInvalidation
from ai.cache.pending import PENDING
from ai.cache.semantic import SemanticCache
from ai.cache.sweeper import sweeper_start, sweeper_wake
from saascore import metrics
from saascore.redis.breaker import BreakerState
from tenants.scoping import tenant_scope

logger = logging.getLogger("saascore.cache")

# Rows one sweep reads at most; more wait for the next sweep (seconds later).
SWEEP_BATCH = 5000


def _cache() -> SemanticCache:
    return get_cache()


class _AfterCommit:
    """The hook of one transaction's invalidation of one tenant (see ``invalidation_record``)."""

    def __init__(self, tenant_id: int, row_id: int) -> None:
        self.tenant_id = tenant_id
        self.row_id = row_id
        self.ran = False

    def __call__(self) -> None:
        self.ran = True
        PENDING.hold(self.tenant_id)
        mark = PENDING.mark()
        if _cache().invalidate(self.tenant_id) is None:
            metrics.CACHE_INVALIDATIONS.labels(outcome="deferred").inc()
            logger.warning("cache invalidation of tenant %s deferred: Redis did not take it", self.tenant_id)
            _sweep_soon()
            return
        metrics.CACHE_INVALIDATIONS.labels(outcome="applied").inc()
        PENDING.release([self.tenant_id], mark=mark)
        _forget(self.tenant_id, [self.row_id])


def _registered(using: str, tenant_id: int) -> bool:
    """Has this transaction already written the tenant's row (its hook still waits for the commit)?

    Django drops a hook with the savepoint it was registered in, as PostgreSQL drops the row.
    """
    return any(
        isinstance(hook, _AfterCommit) and hook.tenant_id == tenant_id and not hook.ran
        for _, hook, _ in connections[using].run_on_commit
    )


def invalidation_record(*, tenant_id: int, using: str) -> None:
    """Inside the transaction of a change to the tenant's answers: invalidate its cache once
    it commits, and durably so (a rollback leaves the cache alone)."""
    if connections[using].in_atomic_block and _registered(using, tenant_id):
        return
    row = PendingInvalidation(tenant_id=tenant_id)
    row.save(using=using, force_insert=True)
    transaction.on_commit(_AfterCommit(tenant_id, row.pk), using=using, robust=True)


class FlushOutcome(StrEnum):
    FLUSHED = "flushed"
    DEFERRED = "deferred"  # Redis refused; recorded, a sweep applies it
    FAILED = "failed"  # Redis refused and PostgreSQL could not record it


def cache_flush(*, tenant_id: int) -> FlushOutcome:
    """An operator's flush: a new generation now, or, if Redis refuses, a pending invalidation
    that every process applies (and meanwhile holds) as for a changed document."""
    if _cache().invalidate(tenant_id) is not None:
        return FlushOutcome.FLUSHED
    try:
        with tenant_scope(tenant_id):
            invalidation_record(tenant_id=tenant_id, using="default")
    except DatabaseError:
        logger.exception("cache flush of tenant %s failed and could not be recorded", tenant_id)
        return FlushOutcome.FAILED
    return FlushOutcome.DEFERRED


@dataclass
class Sweep:
    """What one sweep saw and did."""

    applied: list[int] = field(default_factory=list)  # tenants whose generation moved
    waiting: list[int] = field(default_factory=list)  # tenants Redis still refused
    error: str = ""  # PostgreSQL could not be read


def invalidations_sweep(*, cache: SemanticCache | None = None) -> Sweep:
    """Apply the pending invalidations of every tenant: hold, bump, delete the rows seen, release."""
    cache = cache or _cache()
    report = Sweep()
    before = PENDING.mark()
    try:
        rows = list(PendingInvalidation.objects.unscoped().order_by("id").values_list("tenant_id", "id")[:SWEEP_BATCH])
    except DatabaseError as exc:
        report.error = f"{type(exc).__name__}: {exc}"
        logger.warning("pending cache invalidations could not be read: %s", report.error)
        _bump_held(cache, report)
        return report
    seen: dict[int, list[int]] = {}
    for tenant_id, row_id in rows:
        seen.setdefault(tenant_id, []).append(row_id)
    if len(rows) < SWEEP_BATCH:  # every row was read: held before the read and no row left means applied
        PENDING.release(PENDING.held() - seen.keys(), mark=before)
    for tenant_id, row_ids in seen.items():
        PENDING.hold(tenant_id)
        mark = PENDING.mark()
        if cache.invalidate(tenant_id) is None:
            report.waiting.append(tenant_id)
            continue
        metrics.CACHE_INVALIDATIONS.labels(outcome="swept").inc()
        PENDING.release([tenant_id], mark=mark)
        _forget(tenant_id, row_ids)
        report.applied.append(tenant_id)
    if report.applied:
        logger.info("applied pending cache invalidations of %d tenant(s)", len(report.applied))
    return report


def _bump_held(cache: SemanticCache, report: Sweep) -> None:
    """PostgreSQL cannot say what is pending, but this process knows whom it holds: a bump
    after the hold covers what made it, so the tenant is answered from the cache again
    without waiting for PostgreSQL. Its rows stay for a later sweep (one more bump)."""
    for tenant_id in sorted(PENDING.held()):
        mark = PENDING.mark()
        if cache.invalidate(tenant_id) is None:
            report.waiting.append(tenant_id)
            continue
        PENDING.release([tenant_id], mark=mark)
        report.applied.append(tenant_id)


def _forget(tenant_id: int, row_ids: list[int]) -> None:
    """Delete rows a successful bump covered; if PostgreSQL fails, a later sweep bumps again (harmless)."""
    try:
        with tenant_scope(tenant_id):
            PendingInvalidation.objects.for_tenant(tenant_id).filter(pk__in=row_ids).delete()
    except DatabaseError as exc:
        logger.warning("applied cache invalidation of tenant %s, its row stays for now: %s", tenant_id, exc)


def _sweep_soon() -> None:
    sweeping_start()


def sweeping_start() -> bool:
    """Start this process's sweeper of pending invalidations (ai/cache/sweeper.py)."""
    return sweeper_start(invalidations_sweep)


def _on_cache_built(sender, *, cache: SemanticCache, **kwargs) -> None:
    """A process that answers from the cache sweeps in the background, and at once when its
    Redis breaker closes again."""
    cache.breaker.subscribe(lambda state: state is BreakerState.CLOSED and sweeper_wake())
    sweeping_start()


cache_built.connect(_on_cache_built, dispatch_uid="ai-cache-invalidation-sweeper")

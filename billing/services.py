"""Billing writes: the usage ledger and budget admission.

The ledger is append-only: ``usage_record`` inserts with ON CONFLICT DO NOTHING
on (tenant, request_id), so a retried request is billed once. If PostgreSQL
cannot take the row (down, timed out, read-only) it goes to a local spool and
is written later, by any worker of the host or ``billing_flush_spool``
(billing/spool.py). An error of the row itself is a bug and is raised.

Admission is atomic across processes: a row lock on the tenant's month counter.
Each admitted request reserves ``max_request_cost``; settling replaces the
reservation by the actual cost. Concurrent requests therefore cannot spend past
the limit by more than one request's maximum cost.
"""

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import redis
from django.db import InterfaceError, InternalError, OperationalError, ProgrammingError, connection

from ai import metrics
from ai.conf import ai_settings
from billing import spool_retry
from billing.models import SpendCounter, TenantBudget, UsageRecord
from billing.pricing import ZERO, cost_of
from billing.spool import DrainReport, Unavailable, drain, spool
from saascore.ttl import TTLCache
from tenants.models import Tenant
from tenants.scoping import tenant_scope

logger = logging.getLogger("saascore.billing")


@dataclass(frozen=True)
class Usage:
    """What one request consumed, as the pipeline reports it."""

    request_id: str
    source: str
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    router_model: str = ""
    router_input_tokens: int = 0
    router_output_tokens: int = 0
    embedding_model: str = ""
    embedding_tokens: int = 0
    # For a cache hit: the original answer's tokens, priced at `model` (the routed one) as `saved`.
    saved_input_tokens: int = 0
    saved_output_tokens: int = 0
    cached_question: str = ""


def price_usage(usage: Usage, when: datetime) -> tuple[Decimal, Decimal]:
    """(cost, saved) of a request at the prices in force at ``when``."""
    cost = (
        cost_of(usage.model, usage.input_tokens, usage.output_tokens, when)
        + cost_of(usage.router_model, usage.router_input_tokens, usage.router_output_tokens, when)
        + cost_of(usage.embedding_model, usage.embedding_tokens, 0, when)
    )
    saved = cost_of(usage.model, usage.saved_input_tokens, usage.saved_output_tokens, when)
    return cost, saved


# PostgreSQL cannot take a row now: down or restarting, out of connections, a timeout, or
# read-only after a failover (SQLSTATE 25006 arrives as InternalError). Such a row is spooled.
# Errors of the row itself (DataError, IntegrityError, ProgrammingError) are bugs: they propagate.
POSTGRES_UNAVAILABLE = (OperationalError, InterfaceError, InternalError)
_FIELDS = [field for field in UsageRecord._meta.concrete_fields if not field.primary_key]
_INSERT = (
    f"INSERT INTO {UsageRecord._meta.db_table} ({', '.join(field.column for field in _FIELDS)}) "
    f"VALUES ({', '.join(['%s'] * len(_FIELDS))}) ON CONFLICT (tenant_id, request_id) DO NOTHING"
)


def _insert(row: dict) -> bool:
    """Insert-or-ignore on the ledger's unique key: True if the row went in, False if it was there.

    Raw SQL because the ORM's ``bulk_create(ignore_conflicts=True)`` cannot
    say which; the spool's drain reports replays that the key absorbed.
    """
    record = UsageRecord(**row)
    values = [field.get_db_prep_save(field.pre_save(record, True), connection) for field in _FIELDS]
    with tenant_scope(record.tenant_id), connection.cursor() as cursor:
        cursor.execute(_INSERT, values)
        return cursor.rowcount == 1


def usage_record(*, tenant: Tenant, usage: Usage, when: datetime | None = None) -> dict:
    """Record one request's usage; returns the row's values (cost and saved in Decimal).

    If PostgreSQL cannot take the row now, it waits in the local spool
    (billing/spool.py) and a background retry writes it later. If it cannot
    even price the row, the row waits unpriced and is priced, at ``when``, as it
    is written; the values returned then say cost and saved 0.
    """
    when = when or datetime.now(UTC)
    row = {**usage.__dict__, "tenant_id": tenant.pk, "created_at": when, "cost": ZERO, "saved": ZERO}
    try:
        row["cost"], row["saved"] = price_usage(usage, when)
    except POSTGRES_UNAVAILABLE as exc:
        logger.error("usage row for request %s spooled unpriced, PostgreSQL unavailable: %s", usage.request_id, exc)
        _spool({**row, "cost": None, "saved": None})
        return row
    try:
        _insert(row)
    except POSTGRES_UNAVAILABLE as exc:
        logger.error("usage row for request %s spooled, PostgreSQL unavailable: %s", usage.request_id, exc)
        _spool(row)
    else:
        spool_retry.drain_leftovers(spool_flush)
    return row


def _spool(row: dict) -> None:
    try:
        spool(row)
    except OSError as exc:  # the disk refuses too: this log line is the row's last record
        metrics.USAGE_SPOOL.labels(event="lost").inc()
        values = {key: str(value) for key, value in row.items() if key != "cached_question"}
        logger.critical("usage row NOT recorded, the spool refused it (%s): %s", exc, values)
        return
    metrics.USAGE_SPOOL.labels(event="spooled").inc()
    spool_retry.retry_later(spool_flush)


def spool_flush(*, wait: bool = False, requeue: bool = False, count: bool = True) -> DrainReport:
    """Write the spooled rows into the ledger (idempotent: the unique key absorbs replays)."""
    report = drain(_write_spooled, wait=wait, requeue=requeue, count=count)
    metrics.USAGE_SPOOL.labels(event="written").inc(report.written)
    metrics.USAGE_SPOOL.labels(event="duplicate").inc(report.duplicates)
    metrics.USAGE_SPOOL.labels(event="set_aside").inc(report.set_aside)
    return report


_USAGE_FIELDS = tuple(Usage.__dataclass_fields__)


def _write_spooled(row: dict) -> bool:
    """Write one spooled row. PostgreSQL unavailable, or refusing every row alike (a missing grant
    or migration: ProgrammingError), becomes ``Unavailable``: the drain stops and keeps the rows,
    rather than set aside every one of them; an error of this row counts an attempt against it."""
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    try:
        if row["cost"] is None:  # spooled before it could be priced: price it at its own time
            usage = Usage(**{name: row[name] for name in _USAGE_FIELDS})
            row["cost"], row["saved"] = price_usage(usage, row["created_at"])
        row.update(cost=Decimal(row["cost"]), saved=Decimal(row["saved"]))
        return _insert(row)
    except (*POSTGRES_UNAVAILABLE, ProgrammingError) as exc:
        raise Unavailable(str(exc).strip()) from exc


# -- admission ------------------------------------------------------------------


class AdmissionRefused(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict, retry_after: int) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details, self.retry_after = (
            status,
            code,
            message,
            details,
            retry_after,
        )


@dataclass(frozen=True)
class Admission:
    tenant_id: int
    period: str
    reserved: Decimal
    token: str
    limit: Decimal | None = None  # the monthly spend limit when admitted
    alert_ratio: Decimal | None = None


def _period(now: datetime) -> str:
    return now.strftime("%Y-%m")


def _next_month(now: datetime) -> datetime:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def budget_for(tenant: Tenant) -> TenantBudget:
    """The tenant's limits (read-only; cached per process for ``AI["ROW_CACHE_SECONDS"]``)."""
    return _budgets.get(tenant.pk, lambda: _load_budget(tenant))


def _load_budget(tenant: Tenant) -> TenantBudget:
    with tenant_scope(tenant):
        return TenantBudget.objects.for_tenant(tenant).first() or TenantBudget(tenant=tenant)


_budgets = TTLCache("tenant-budgets", lambda: ai_settings.ROW_CACHE_SECONDS).forget_on_change(TenantBudget)


_RATE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


def _rate_check(client: redis.Redis | None, tenant: Tenant, limit: int | None, now: float) -> None:
    if not limit or client is None:
        return
    window = int(now // 60)
    try:
        count = int(client.eval(_RATE, 1, f"{tenant.redis_tag}:rate:{window}", 120))
    except redis.RedisError as exc:
        logger.warning("rate limit not checked, Redis unavailable: %s", exc)  # fail open: money is checked in PG
        return
    if count > limit:
        retry_after = max(1, 60 - int(now % 60))
        raise AdmissionRefused(
            429,
            "rate_limited",
            f"More than {limit} requests per minute.",
            {"limit": "requests_per_minute", "requests_per_minute": limit, "retry_after_seconds": retry_after},
            retry_after,
        )


def admit(*, tenant: Tenant, client: redis.Redis | None = None, now: datetime | None = None) -> Admission:
    """Check the rate limit and reserve the request's maximum cost, or raise AdmissionRefused."""
    now = now or datetime.now(UTC)
    budget = budget_for(tenant)
    _rate_check(client, tenant, budget.requests_per_minute, time.time())
    period = _period(now)
    limit = budget.monthly_spend_limit
    if limit is None:
        # Nothing to reserve against: only what a request costs touches the counter (settle).
        return Admission(tenant.pk, period, ZERO, uuid.uuid4().hex)
    reserve = budget.max_request_cost
    with tenant_scope(tenant):
        counter = _locked_counter(tenant.pk, period)
        if counter.committed + counter.reserved + reserve > limit:
            resets = _next_month(now)
            raise AdmissionRefused(
                402,
                "budget_exceeded",
                "The monthly spend limit is reached.",
                {
                    "limit": "monthly_spend",
                    "limit_usd": str(limit),
                    "spent_usd": str(counter.committed.quantize(Decimal("0.000001"))),
                    "in_flight_usd": str(counter.reserved.quantize(Decimal("0.000001"))),
                    "resets_at": resets.isoformat().replace("+00:00", "Z"),
                },
                int((resets - now).total_seconds()),
            )
        counter.reserved += reserve
        counter.save(update_fields=["reserved"])
    return Admission(tenant.pk, period, reserve, uuid.uuid4().hex, limit, budget.soft_alert_ratio)


def _locked_counter(tenant_id: int, period: str) -> SpendCounter:
    """The tenant's spend counter of the period, created if missing, locked until the transaction ends."""
    SpendCounter.objects.for_tenant(tenant_id).bulk_create(
        [SpendCounter(tenant_id=tenant_id, period=period)], ignore_conflicts=True
    )
    return SpendCounter.objects.for_tenant(tenant_id).select_for_update().get(period=period)


def settle(*, admission: Admission, cost: Decimal) -> None:
    """Replace the admission's reservation by what the request really cost."""
    if not cost and not admission.reserved:
        return  # a free answer (a cache hit) of a tenant without a spend limit changes no counter
    with tenant_scope(admission.tenant_id):
        counter = _locked_counter(admission.tenant_id, admission.period)
        before = counter.committed
        counter.reserved = max(ZERO, counter.reserved - admission.reserved)
        counter.committed += cost
        counter.save(update_fields=["reserved", "committed"])
    if admission.limit:
        alert_at = admission.limit * admission.alert_ratio
        if before < alert_at <= counter.committed:
            metrics.BUDGET_ALERTS.inc()
            logger.warning(
                "tenant %s passed %s of its monthly spend limit: $%s of $%s",
                admission.tenant_id,
                admission.alert_ratio,
                counter.committed,
                admission.limit,
            )


def budget_status(*, tenant: Tenant, now: datetime | None = None) -> dict:
    """This month's spend against the tenant's limit, for the API and the dashboard."""
    budget = budget_for(tenant)
    with tenant_scope(tenant):
        counter = SpendCounter.objects.for_tenant(tenant).filter(period=_period(now or datetime.now(UTC))).first()
    spent = counter.committed if counter else ZERO
    limit = budget.monthly_spend_limit
    return {
        "monthly_spend_limit_usd": None if limit is None else str(limit),
        "spent_usd": str(spent.quantize(Decimal("0.000001"))),
        "soft_alert": bool(limit and spent >= limit * budget.soft_alert_ratio),
        "requests_per_minute": budget.requests_per_minute,
    }

"""Billing writes: the usage ledger and budget admission.

The ledger is append-only: ``usage_record`` inserts with ON CONFLICT DO NOTHING
on (tenant, request_id), so a retried request is billed once. If PostgreSQL is
down the row goes to a local spool and is written later (billing/spool.py).

Admission is atomic across processes: a row lock on the tenant's month counter.
Each admitted request reserves ``max_request_cost``; settling replaces the
reservation by the actual cost. Concurrent requests therefore cannot spend past
the limit by more than one request's maximum cost.
"""

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import redis
from django.db import DatabaseError, InterfaceError, OperationalError

from ai import metrics
from ai.conf import ai_settings
from billing.models import SpendCounter, TenantBudget, UsageRecord
from billing.pricing import ZERO, cost_of
from billing.spool import drain, spool
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


def _insert(row: dict) -> None:
    with tenant_scope(row["tenant_id"]):
        UsageRecord.objects.bulk_create([UsageRecord(**row)], ignore_conflicts=True)


def usage_record(*, tenant: Tenant, usage: Usage, when: datetime | None = None) -> dict:
    """Record one request's usage; returns the row's values (cost and saved in Decimal)."""
    when = when or datetime.now(UTC)
    cost, saved = price_usage(usage, when)
    row = {**usage.__dict__, "tenant_id": tenant.pk, "created_at": when, "cost": cost, "saved": saved}
    try:
        _insert(row)
    except (OperationalError, InterfaceError) as exc:
        logger.error("usage row for request %s spooled, PostgreSQL unavailable: %s", usage.request_id, exc)
        spool(row)
        _schedule_flush()
    return row


def spool_flush() -> int:
    """Write the spooled rows; returns how many went in (duplicates are ignored)."""

    def write(row: dict) -> None:
        row["cost"], row["saved"] = Decimal(row["cost"]), Decimal(row["saved"])
        row["created_at"] = datetime.fromisoformat(row["created_at"])
        _insert(row)

    return drain(write)


_flusher: threading.Timer | None = None
_flusher_lock = threading.Lock()
FLUSH_RETRY_SECONDS = 10.0


def _schedule_flush() -> None:
    global _flusher
    with _flusher_lock:
        if _flusher is not None and _flusher.is_alive():
            return
        _flusher = threading.Timer(FLUSH_RETRY_SECONDS, _flush_in_background)
        _flusher.daemon = True
        _flusher.start()


def _flush_in_background() -> None:
    global _flusher
    try:
        spool_flush()
    except DatabaseError:
        pass
    with _flusher_lock:
        _flusher = None
    from billing.spool import spooled_files

    if spooled_files():
        _schedule_flush()


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

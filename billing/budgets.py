"""A tenant's limits and where its month stands against them (reads, and the soft alert)."""

import logging
from datetime import UTC, datetime
from decimal import Decimal

from django.db.models import Sum

from billing.models import SpendCounter, SpendReservation, TenantBudget
from billing.webhooks import budget_alert_record
from catalog.pricing import ZERO
from saascore import metrics
from saascore.conf import ai_settings
from saascore.ttl import TTLCache
from tenants.scoping import tenant_scope

logger = logging.getLogger("saascore.billing")
MICRODOLLAR = Decimal("0.000001")


def budget_for(tenant: object) -> TenantBudget:
    """The tenant's limits (read-only; cached per process for ``AI["ROW_CACHE_SECONDS"]``)."""
    tenant_id = getattr(tenant, "pk", tenant)
    return _budgets.get(tenant_id, lambda: _load_budget(tenant_id))


async def abudget_for(tenant: object) -> TenantBudget:
    """``budget_for`` for async callers: read off the loop when this process has not read it yet."""
    tenant_id = getattr(tenant, "pk", tenant)
    return await _budgets.aget(tenant_id, lambda: _load_budget(tenant_id))


def _load_budget(tenant_id: int) -> TenantBudget:
    with tenant_scope(tenant_id):
        return TenantBudget.objects.for_tenant(tenant_id).first() or TenantBudget(tenant_id=tenant_id)


_budgets = TTLCache("tenant-budgets", lambda: ai_settings.ROW_CACHE_SECONDS).forget_on_change(TenantBudget)


def budget_alert_check(*, tenant_id: int, before: Decimal, after: Decimal) -> None:
    """The month's spend moved from ``before`` to ``after``: did it pass the soft alert level?"""
    budget = budget_for(tenant_id)
    limit = budget.monthly_spend_limit
    if limit and before < limit * budget.soft_alert_ratio <= after:
        _alert(tenant_id, None, datetime.now(UTC).strftime("%Y-%m"), limit, budget.soft_alert_ratio, after)


def key_alert_check(
    *, tenant_id: int, api_key_id: int, period: str, limit: Decimal, ratio: Decimal, before: Decimal,
    after: Decimal,
) -> None:  # fmt: skip
    """A key's spend of ``period`` moved from ``before`` to ``after``: did it pass its soft level?"""
    if limit and before < limit * ratio <= after:
        _alert(tenant_id, api_key_id, period, limit, ratio, after)


def _alert(tenant_id: int, api_key_id: int | None, period: str, limit: Decimal, ratio: Decimal, after: Decimal) -> None:
    """The metric, the log line and the webhook (recorded once per tenant or key and period)."""
    metrics.BUDGET_ALERTS.inc()
    who = f"key {api_key_id} of tenant {tenant_id}" if api_key_id else f"tenant {tenant_id}"
    what = "monthly spend limit" if api_key_id is None else ("daily" if len(period) == 10 else "monthly") + " budget"
    logger.warning(
        "%s passed %s of its %s (%s): $%s of $%s", who, ratio, what, period, after.quantize(MICRODOLLAR), limit
    )
    budget_alert_record(tenant_id=tenant_id, api_key_id=api_key_id, period=period, limit=limit, spent=after)


def in_flight(*, tenant_id: int, now: datetime) -> Decimal:
    """What admitted requests that have not finished may still spend (live reservations)."""
    found = (
        SpendReservation.objects.for_tenant(tenant_id)
        .filter(expires_at__gt=now)
        .aggregate(total=Sum("amount"))["total"]
    )
    return found or ZERO


def budget_status(*, tenant, now: datetime | None = None) -> dict:
    """This month's spend against the tenant's limit, for the API and the dashboard."""
    now = now or datetime.now(UTC)
    budget = budget_for(tenant)
    with tenant_scope(tenant):
        counter = SpendCounter.objects.for_tenant(tenant).filter(period=now.strftime("%Y-%m")).first()
        reserved = in_flight(tenant_id=tenant.pk, now=now)
    spent = counter.committed if counter else ZERO
    limit = budget.monthly_spend_limit
    return {
        "monthly_spend_limit_usd": None if limit is None else str(limit),
        "spent_usd": str(spent.quantize(MICRODOLLAR)),
        "in_flight_usd": str(reserved.quantize(MICRODOLLAR)),
        "soft_alert": bool(limit and spent >= limit * budget.soft_alert_ratio),
        "requests_per_minute": budget.requests_per_minute,
        "max_request_cost_usd": str(budget.max_request_cost),
    }

"""An API key's own budget: a spend limit per UTC month or day, inside its tenant's.

Admission (billing/admission.py: ``reserve``) locks the key's counter of the period, as the
tenant's, and refuses (402, ``details.scope`` "key") when what the key spent, what its admitted
requests may still spend and this request's maximum would pass the key's budget. The counters
move with the ledger's own INSERT (billing/services.py), for keys that have a budget.

Not guaranteed: a budget set in the middle of a period starts from the ledger's sum of the
period when its counter is first made (a row written at that very moment may be missed).
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Sum

from billing.models import KeySpendCounter, SpendReservation, UsageRecord
from catalog.pricing import ZERO
from tenants.models import ApiKey

MICRODOLLAR = Decimal("0.000001")


def key_period(api_key: ApiKey, when: datetime) -> str:
    """The key's budget period that ``when`` falls in: ``YYYY-MM`` or ``YYYY-MM-DD`` (UTC)."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d" if api_key.budget_period == ApiKey.BudgetPeriod.DAILY else "%Y-%m")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """[start, end) of a ``YYYY-MM`` or ``YYYY-MM-DD`` period, UTC."""
    if len(period) == 10:
        start = datetime.strptime(period, "%Y-%m-%d").replace(tzinfo=UTC)
        return start, start + timedelta(days=1)
    start = datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start, start.replace(year=year, month=month)


def _locked_key_counter(tenant_id: int, api_key: ApiKey, period: str) -> KeySpendCounter:
    counters = KeySpendCounter.objects.for_tenant(tenant_id)
    if not counters.filter(api_key_id=api_key.pk, period=period).exists():
        start, end = period_bounds(period)
        spent = (
            UsageRecord.objects.for_tenant(tenant_id)
            .filter(api_key_id=api_key.pk, created_at__gte=start, created_at__lt=end)
            .aggregate(total=Sum("cost"))["total"]
        )
        seed = KeySpendCounter(tenant_id=tenant_id, api_key_id=api_key.pk, period=period, committed=spent or ZERO)
        counters.bulk_create([seed], ignore_conflicts=True)
    return counters.select_for_update().get(api_key_id=api_key.pk, period=period)


def key_in_flight(*, tenant_id: int, api_key_id: int, now: datetime) -> Decimal:
    found = (
        SpendReservation.objects.for_tenant(tenant_id)
        .filter(api_key_id=api_key_id, expires_at__gt=now)
        .aggregate(total=Sum("amount"))["total"]
    )
    return found or ZERO


def key_budget_check(*, tenant_id: int, api_key: ApiKey, max_cost: Decimal, now: datetime) -> dict | None:
    """Inside the admission's transaction: None if the key may spend ``max_cost`` more this
    period (its counter stays locked until the transaction ends), else the refusal's figures."""
    period = key_period(api_key, now)
    counter = _locked_key_counter(tenant_id, api_key, period)
    reserved = key_in_flight(tenant_id=tenant_id, api_key_id=api_key.pk, now=now)
    if counter.committed + reserved + max_cost <= api_key.budget_usd:
        return None
    resets = period_bounds(period)[1]
    return {
        "limit": f"{api_key.budget_period}_key_budget",
        "scope": "key",
        "api_key_id": api_key.pk,
        "limit_usd": str(api_key.budget_usd),
        "spent_usd": str(counter.committed.quantize(MICRODOLLAR)),
        "in_flight_usd": str(reserved.quantize(MICRODOLLAR)),
        "resets_at": resets.isoformat().replace("+00:00", "Z"),
    }


def key_budget_status(*, tenant_id: int, api_key: ApiKey, now: datetime | None = None) -> dict:
    """The key's budget this period, for the API (no lock)."""
    now = now or datetime.now(UTC)
    period = key_period(api_key, now)
    counter = KeySpendCounter.objects.for_tenant(tenant_id).filter(api_key_id=api_key.pk, period=period).first()
    spent = counter.committed if counter else ZERO
    limit = api_key.budget_usd
    return {
        "budget_usd": None if limit is None else str(limit),
        "period": period,
        "spent_usd": str(spent.quantize(MICRODOLLAR)),
        "soft_alert": bool(limit and spent >= limit * api_key.soft_alert_ratio),
    }

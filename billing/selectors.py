"""Billing reads: the usage ledger summed for APIs, dashboard and reports.

Every figure is a sum over ``UsageRecord`` rows in SQL, in Decimal: the API, the
dashboard and ``billing_report`` read the same functions, so they agree.
"""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import CharField, Count, F, Func, Q, Sum
from django.db.models.functions import TruncDay

from billing.models import UsageRecord
from catalog.selectors import price_at
from saascore.conf import ai_settings
from tenants.models import ApiKey, Tenant
from tenants.scoping import tenant_scope

HIT_SOURCES = (UsageRecord.Source.CACHE_EXACT, UsageRecord.Source.CACHE_SEMANTIC)
ZERO = Decimal(0)


def day_range(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00 UTC, end+1 00:00 UTC): ``end`` is inclusive. A client may name the last day
    Python knows (9999-12-31), which has no next day: its range then ends at ``datetime.max``."""
    high = (
        datetime.max.replace(tzinfo=UTC)
        if end == date.max
        else datetime.combine(end + timedelta(days=1), time.min, UTC)
    )
    return datetime.combine(start, time.min, UTC), high


def month_to_date(now: datetime | None = None) -> tuple[date, date]:
    now = now or datetime.now(UTC)
    return now.date().replace(day=1), now.date()


def _rows(tenant: Tenant, start: date, end: date):
    low, high = day_range(start, end)
    return UsageRecord.objects.for_tenant(tenant).filter(created_at__gte=low, created_at__lt=high)


_TOTALS = {
    "requests": Count("id"),
    "cost": Sum("cost"),
    "saved": Sum("saved"),
    "input_tokens": Sum("input_tokens"),
    "output_tokens": Sum("output_tokens"),
    "hits": Count("id", filter=Q(source__in=HIT_SOURCES)),
    "misses": Count("id", filter=Q(source=UsageRecord.Source.LLM)),
}


def _clean(totals: dict) -> dict:
    for key in ("cost", "saved"):
        totals[key] = totals[key] or ZERO
    for key in ("input_tokens", "output_tokens"):
        totals[key] = totals[key] or 0
    answered = totals["hits"] + totals["misses"]
    totals["hit_ratio"] = round(totals["hits"] / answered, 4) if answered else 0.0
    return totals


def usage_summary(*, tenant: Tenant, start: date, end: date) -> dict:
    """Totals, requests by source and the model mix for [start, end] (UTC days, inclusive)."""
    with tenant_scope(tenant):
        rows = _rows(tenant, start, end)
        totals = _clean(rows.aggregate(**_TOTALS))
        by_source = dict(rows.values_list("source").annotate(n=Count("id")).order_by())
        model_mix = dict(
            rows.filter(source=UsageRecord.Source.LLM).values_list("model").annotate(n=Count("id")).order_by()
        )
    totals["by_source"] = {source: by_source.get(source, 0) for source in UsageRecord.Source.values}
    totals["model_mix"] = dict(sorted(model_mix.items(), key=lambda item: -item[1]))
    totals["from"], totals["to"] = start, end
    return totals


def usage_since(*, tenant: Tenant, since: datetime) -> dict:
    """Totals (requests, hits, hit ratio, cost, saved, tokens) since a moment, e.g. the last 24 hours."""
    with tenant_scope(tenant):
        rows = UsageRecord.objects.for_tenant(tenant).filter(created_at__gte=since)
        return _clean(rows.aggregate(**_TOTALS))


GROUPS = {
    "day": TruncDay("created_at", tzinfo=UTC),
    "model": F("model"),
    "source": F("source"),
    "key": F("api_key_id"),
    "user": F("end_user"),
    # A row with several tags counts under each of them (the groups then sum to more than the whole).
    "tag": Func(F("tags"), function="unnest", output_field=CharField()),
}


def usage_series(*, tenant: Tenant, start: date, end: date, group_by: str, limit: int | None = None) -> list[dict]:
    """Totals per day, model, source, API key, end user or tag (``limit``: the costliest groups only).
    Rows without a key, user or tag are one group whose key is null or empty."""
    with tenant_scope(tenant):
        rows = _rows(tenant, start, end).annotate(key=GROUPS[group_by]).values("key").annotate(**_TOTALS)
        rows = rows.order_by("-cost", "key")[:limit] if limit else rows.order_by("key")
        series = [_clean(dict(row)) for row in rows]
        names = _key_names(tenant, [row["key"] for row in series]) if group_by == "key" else {}
    for row in series:
        if group_by == "day":
            row["key"] = row["key"].date()
        if group_by == "key":
            row["label"] = names.get(row["key"], "(no key)" if row["key"] is None else "(deleted key)")
    return series


def _key_names(tenant: Tenant, key_ids: list) -> dict[int, str]:
    return dict(ApiKey.objects.for_tenant(tenant).filter(pk__in=[k for k in key_ids if k]).values_list("pk", "name"))


def usage_by_day_and_source(*, tenant: Tenant, start: date, end: date) -> dict[tuple[date, str], int]:
    """Request counts per (UTC day, source), for the dashboard's stacked chart."""
    with tenant_scope(tenant):
        rows = (
            _rows(tenant, start, end)
            .annotate(day=TruncDay("created_at", tzinfo=UTC))
            .values("day", "source")
            .annotate(n=Count("id"))
        )
        return {(row["day"].date(), row["source"]): row["n"] for row in rows}


def top_cached_questions(*, tenant: Tenant, start: date, end: date, limit: int = 10) -> list[dict]:
    with tenant_scope(tenant):
        rows = (
            _rows(tenant, start, end)
            .filter(source__in=HIT_SOURCES)
            .exclude(cached_question="")
            .values("cached_question")
            .annotate(hits=Count("id"), saved=Sum("saved"))
            .order_by("-hits", "cached_question")[:limit]
        )
        return [{"question": r["cached_question"], "hits": r["hits"], "saved": r["saved"] or ZERO} for r in rows]


def roi_report(*, tenant: Tenant, start: date, end: date) -> dict:
    """Actual cost against the naive baseline: every request answered by one premium model
    (``AI["BASELINE_MODEL"]``), no cache (the tokens of each answer, fresh or cached, at that price)."""
    baseline_model = ai_settings.BASELINE_MODEL
    price = price_at(model=baseline_model)
    summary = usage_summary(tenant=tenant, start=start, end=end)
    with tenant_scope(tenant):
        tokens = _rows(tenant, start, end).aggregate(
            input=Sum("input_tokens") + Sum("saved_input_tokens"),
            output=Sum("output_tokens") + Sum("saved_output_tokens"),
        )
    baseline_input, baseline_output = tokens["input"] or 0, tokens["output"] or 0
    baseline = price.cost(baseline_input, baseline_output) if price else ZERO
    actual = summary["cost"]
    return {
        "tenant": tenant.slug,
        "from": start,
        "to": end,
        "queries": summary["requests"],
        "cache_hits": summary["hits"],
        "hits_exact": summary["by_source"][UsageRecord.Source.CACHE_EXACT],
        "hits_semantic": summary["by_source"][UsageRecord.Source.CACHE_SEMANTIC],
        "llm_calls": summary["misses"],
        "errors": summary["by_source"][UsageRecord.Source.ERROR],
        "model_mix": summary["model_mix"],
        "baseline_model": baseline_model,
        "baseline_tokens": baseline_input + baseline_output,
        "actual_tokens": summary["input_tokens"] + summary["output_tokens"],
        "baseline_cost": baseline,
        "actual_cost": actual,
        "savings": baseline - actual,
        "savings_ratio": float((baseline - actual) / baseline) if baseline else 0.0,
        "cache_saved": summary["saved"],
    }

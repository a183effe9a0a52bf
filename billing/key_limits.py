"""The one writer of an API key's own limits: each checked to sit inside its tenant's.

A key's requests per minute may not exceed the tenant's, its budget not the tenant's monthly
limit (a daily budget neither), its models must be priced in the catalog (the tenant's route
table still decides which of them a request may reach). Saving moves the tenant's key
generation (ai/signals.py), so every worker applies the new limits within a second.
"""

import json
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction

from billing.budgets import budget_for
from catalog.selectors import price_at
from tenants.models import CACHE_CONTROLS, LIMIT_FIELDS, ApiKey, Tenant
from tenants.scoping import tenant_scope

MAX_MODELS = 50
MAX_METADATA_CHARS = 2000


def _positive(values: dict, name: str, errors: dict) -> None:
    value = values.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        errors[name] = "a whole number, at least 1, or null"


def _money(value, name: str, errors: dict) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        errors[name] = 'an amount in USD, e.g. "25.00"'
        return None
    if not amount.is_finite() or amount <= 0 or amount >= Decimal("1e10"):
        errors[name] = "more than 0, or null"
        return None
    return amount.quantize(Decimal("0.0001"))


def key_limits_clean(*, tenant: Tenant, values: dict) -> dict:
    """``values`` checked and normalised, or ValidationError naming each bad field."""
    errors: dict[str, str] = {}
    unknown = set(values) - set(LIMIT_FIELDS)
    if unknown:
        errors[sorted(unknown)[0]] = f"unknown; the limits are: {', '.join(LIMIT_FIELDS)}"
    for name in ("requests_per_minute", "tokens_per_minute", "max_parallel_requests"):
        _positive(values, name, errors)
    models = values.get("allowed_models", [])
    if not isinstance(models, list) or len(models) > MAX_MODELS or not all(isinstance(m, str) for m in models):
        errors["allowed_models"] = f"a list of at most {MAX_MODELS} model names"
    elif unknown_models := [m for m in models if price_at(model=m) is None]:
        errors["allowed_models"] = f"not in the model catalog: {', '.join(unknown_models[:5])}"
    controls = values.get("cache_controls")
    if controls is not None and (not isinstance(controls, list) or not set(controls) <= set(CACHE_CONTROLS)):
        errors["cache_controls"] = f"null (all), or a list of: {', '.join(CACHE_CONTROLS)}"
    metadata = values.get("metadata", {})
    if not isinstance(metadata, dict) or len(json.dumps(metadata)) > MAX_METADATA_CHARS:
        errors["metadata"] = f"an object of at most {MAX_METADATA_CHARS} characters as JSON"
    if values.get("budget_period", ApiKey.BudgetPeriod.MONTHLY) not in ApiKey.BudgetPeriod.values:
        errors["budget_period"] = "monthly or daily"
    clean = dict(values)
    if "budget_usd" in values:
        clean["budget_usd"] = _money(values["budget_usd"], "budget_usd", errors)
    if "soft_alert_ratio" in values:
        ratio = _money(values["soft_alert_ratio"], "soft_alert_ratio", errors)
        if ratio is not None and ratio > 1:
            errors["soft_alert_ratio"] = "a share of the budget, over 0 and at most 1"
        clean["soft_alert_ratio"] = ratio or Decimal("0.8")
    if not errors:
        _inside_tenant(tenant, clean, errors)
    if errors:
        raise ValidationError(errors)
    return clean


def _inside_tenant(tenant: Tenant, values: dict, errors: dict) -> None:
    budget = budget_for(tenant)
    rpm = values.get("requests_per_minute")
    if rpm and budget.requests_per_minute and rpm > budget.requests_per_minute:
        errors["requests_per_minute"] = f"at most the tenant's {budget.requests_per_minute}"
    amount = values.get("budget_usd")
    if amount and budget.monthly_spend_limit is not None and amount > budget.monthly_spend_limit:
        errors["budget_usd"] = f"at most the tenant's monthly limit, ${budget.monthly_spend_limit}"


def api_key_limits_set(*, tenant: Tenant, key_id: int, values: dict) -> ApiKey:
    """Set some of a key of ``tenant``'s limits (ApiKey.DoesNotExist for another tenant's key)."""
    clean = key_limits_clean(tenant=tenant, values=values)
    with tenant_scope(tenant), transaction.atomic():
        api_key = ApiKey.objects.for_tenant(tenant).select_for_update().get(pk=key_id)
        for name, value in clean.items():
            setattr(api_key, name, value)
        api_key.save(update_fields=list(clean))
    return api_key

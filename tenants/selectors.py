"""Reads for tenants and API keys."""

from django.db.models import QuerySet

from tenants.models import ApiKey, Tenant
from tenants.scoping import tenant_scope


def api_key_list(*, tenant: Tenant) -> list[ApiKey]:
    with tenant_scope(tenant):
        return list(ApiKey.objects.for_tenant(tenant).order_by("-created_at"))


def api_key_get(*, tenant: Tenant, key_id: int) -> ApiKey:
    """Raises ApiKey.DoesNotExist for another tenant's key: it does not exist for this one."""
    with tenant_scope(tenant):
        return ApiKey.objects.for_tenant(tenant).get(pk=key_id)


def api_key_history(*, tenant: Tenant, key_id: int, limit: int = 200) -> list:
    """The key's audit trail, newest first (tenants/audit.py); ApiKey.DoesNotExist when this tenant
    has no such key, and never had one: another tenant's key has no history here."""
    with tenant_scope(tenant):
        rows = list(_history(tenant).filter(id=key_id)[:limit])
    if not rows:
        raise ApiKey.DoesNotExist(f"No API key {key_id}.")
    return rows


def _history(tenant: Tenant) -> QuerySet:
    return ApiKey.history.model.objects.for_tenant(tenant).order_by("-history_date", "-history_id")

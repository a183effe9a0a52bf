"""Reads for tenants and API keys."""

from tenants.models import ApiKey, Tenant
from tenants.scoping import tenant_scope


def api_key_list(*, tenant: Tenant) -> list[ApiKey]:
    with tenant_scope(tenant):
        return list(ApiKey.objects.for_tenant(tenant).order_by("-created_at"))


def api_key_get(*, tenant: Tenant, key_id: int) -> ApiKey:
    """Raises ApiKey.DoesNotExist for another tenant's key: it does not exist for this one."""
    with tenant_scope(tenant):
        return ApiKey.objects.for_tenant(tenant).get(pk=key_id)

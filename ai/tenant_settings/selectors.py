"""Reads of tenant AI settings, cached per process for ``AI["ROW_CACHE_SECONDS"]``."""

from ai.tenant_settings.models import TenantAISettings
from saascore.conf import ai_settings
from saascore.ttl import TTLCache
from tenants.scoping import tenant_scope


def settings_for(tenant) -> TenantAISettings:
    """The tenant's saved settings, or the defaults (unsaved) when it has none. Read-only:
    the object is shared for ``AI["ROW_CACHE_SECONDS"]`` by the requests of this process."""
    return _settings_cache.get(getattr(tenant, "pk", tenant), lambda: _load_settings(tenant))


def _load_settings(tenant) -> TenantAISettings:
    with tenant_scope(tenant):
        found = TenantAISettings.objects.for_tenant(tenant).first()
    return found or TenantAISettings(tenant_id=getattr(tenant, "pk", tenant))


_settings_cache = TTLCache("tenant-ai-settings", lambda: ai_settings.ROW_CACHE_SECONDS).forget_on_change(
    TenantAISettings
)


async def asettings_for(tenant) -> TenantAISettings:
    """``settings_for`` for async callers: a tenant this process has not read yet is read off the loop."""
    return await _settings_cache.aget(getattr(tenant, "pk", tenant), lambda: _load_settings(tenant))

"""Tenant AI settings: validated edits with an audit trail, and the tenant's cache panel."""

from datetime import timedelta

from django.conf import settings as django_settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone

from ai.cache import CacheScope, get_cache
from ai.cache.invalidation import FlushOutcome, cache_flush
from ai.cache.selectors import invalidation_pending_since
from ai.embeddings import get_embedder
from ai.tenant_settings.models import TenantAISettings, TenantSettingsChange
from ai.tenant_settings.services import tenant_settings_save
from billing.selectors import usage_since
from tenants.access import request_tenants_managed
from tenants.admin import TenantOwnedAdmin
from tenants.models import Tenant


def cache_panel(tenant: Tenant) -> dict:
    """What the tenant's cache holds and did over the last 24 hours (from the ledger)."""
    embedder = get_embedder()
    usage = usage_since(tenant=tenant, since=timezone.now() - timedelta(hours=24))
    return {
        "entries": get_cache().entry_count(CacheScope(tenant.pk, embedder.id), embedder.dim),
        "requests": usage["requests"],
        "hits": usage["hits"],
        "hit_ratio": usage["hit_ratio"],
        "saved": usage["saved"],
        "cost": usage["cost"],
        "invalidation_pending_since": invalidation_pending_since(tenant_id=tenant.pk),
    }


@admin.register(TenantAISettings)
class TenantAISettingsAdmin(TenantOwnedAdmin):
    list_display = ["tenant", "cache_enabled", "threshold_standard", "threshold_strict", "confidence_floor",
                    "router_mode", "updated_at"]  # fmt: skip
    fieldsets = [
        (None, {"fields": ["tenant"]}),
        ("Cache", {"fields": ["cache_enabled", "cache_scope", "cache_ttl_seconds", "threshold_standard",
                              "threshold_strict", "confidence_floor"]}),
        ("Router", {"fields": ["router_mode", "router_llm_model", "cascade_threshold", "local_fallback"]}),
        ("Documents", {"fields": ["chunk_tokens", "chunk_overlap"]}),
    ]  # fmt: skip
    actions = ["flush_cache"]
    change_form_template = "admin/ai/tenantaisettings/change_form.html"

    def get_readonly_fields(self, request, obj=None):
        return ["tenant"] if obj else []

    def save_model(self, request, obj, form, change):
        changes = tenant_settings_save(settings=obj, user=request.user)
        if changes:
            messages.info(
                request, "Recorded: " + "; ".join(str(c) for c in changes) + ". Every worker uses it within seconds."
            )

    def get_urls(self):
        flush = self.admin_site.admin_view(self.flush_view)
        return [path("<int:pk>/flush/", flush, name="ai_tenantaisettings_flush"), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if obj is not None and self.has_view_permission(request, obj):
            extra["cache_panel"] = cache_panel(obj.tenant)
            extra["flush_url"] = reverse("admin:ai_tenantaisettings_flush", args=[obj.pk])
            extra["changes"] = TenantSettingsChange.objects.unscoped().filter(tenant_id=obj.tenant_id)[:20]
        return super().change_view(request, object_id, form_url, extra)

    def flush_view(self, request, pk: int):
        obj = get_object_or_404(self.get_queryset(request), pk=pk)
        if request.method != "POST" or not self.has_change_permission(request, obj):
            raise PermissionDenied
        self._flush(request, [obj.tenant_id])
        return redirect(reverse("admin:ai_tenantaisettings_change", args=[pk]))

    @admin.action(description="Flush the cache of the selected tenants")
    def flush_cache(self, request, queryset):
        self._flush(request, [s.tenant_id for s in queryset])

    def _flush(self, request, tenant_ids: list[int]) -> None:
        managed = request_tenants_managed(request)
        if not all(tenant_id in managed for tenant_id in tenant_ids):
            raise PermissionDenied
        outcomes = [cache_flush(tenant_id=t) for t in tenant_ids]
        flushed = outcomes.count(FlushOutcome.FLUSHED)
        deferred = outcomes.count(FlushOutcome.DEFERRED)
        failed = outcomes.count(FlushOutcome.FAILED)
        if flushed:
            messages.success(request, f"Flushed the cache of {flushed} tenant(s): no earlier answer is served.")
        if deferred:
            messages.error(
                request,
                f"Redis did not take the flush: the cache of {deferred} tenant(s) is NOT flushed yet. It is "
                "recorded and applied as soon as Redis takes it; meanwhile no worker answers those tenants "
                f"from the cache (each within {django_settings.CACHE_INVALIDATION_SWEEP_SECONDS or 0:g} s).",
            )
        if failed:
            messages.error(
                request,
                f"Redis did not take the flush and PostgreSQL could not record it: the cache of {failed} "
                "tenant(s) is NOT flushed. Try again.",
            )


@admin.register(TenantSettingsChange)
class TenantSettingsChangeAdmin(TenantOwnedAdmin):
    """The audit trail: read-only for everyone."""

    list_display = ["changed_at", "tenant", "user", "field", "old_value", "new_value"]
    list_filter = ["field", "tenant"]
    tenant_admin_can_edit = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

"""Operator console for the gateway (staff see every tenant; see tenants/SCOPING.md)."""

from django.contrib import admin, messages

from ai.rag.ingest import document_ingest
from ai.rag.models import Document
from ai.router.examples import router_example_save
from ai.router.models import RouterExample, RouteRule
from ai.tenant_settings import TenantAISettings
from tenants.admin import TenantOwnedAdmin


@admin.register(TenantAISettings)
class TenantAISettingsAdmin(TenantOwnedAdmin):
    list_display = [
        "tenant",
        "cache_enabled",
        "threshold_standard",
        "threshold_strict",
        "confidence_floor",
        "router_mode",
    ]
    fieldsets = [
        (None, {"fields": ["tenant"]}),
        ("Cache", {"fields": ["cache_enabled", "cache_scope", "cache_ttl_seconds", "threshold_standard",
                              "threshold_strict", "confidence_floor"]}),
        ("Router", {"fields": ["router_mode", "router_llm_model", "cascade_threshold", "local_fallback"]}),
        ("Documents", {"fields": ["chunk_tokens", "chunk_overlap"]}),
    ]  # fmt: skip


@admin.register(RouterExample)
class RouterExampleAdmin(TenantOwnedAdmin):
    list_display = ["text", "intent", "complexity", "cache_strategy", "tenant", "embedder_id"]
    list_filter = ["intent", "complexity", "cache_strategy", "tenant"]
    search_fields = ["text", "note"]
    fields = ["tenant", "text", "intent", "complexity", "cache_strategy", "note"]

    def save_model(self, request, obj, form, change):
        router_example_save(example=obj)  # embeds the text when it changed


@admin.register(RouteRule)
class RouteRuleAdmin(TenantOwnedAdmin):
    list_display = ["intent", "complexity", "model", "fallbacks", "tenant"]
    list_filter = ["intent", "complexity", "tenant"]


@admin.register(Document)
class DocumentAdmin(TenantOwnedAdmin):
    list_display = ["title", "tenant", "status", "chunk_count", "updated_at"]
    list_filter = ["status", "tenant"]
    search_fields = ["title"]
    readonly_fields = ["status", "error", "chunk_count", "created_at", "updated_at"]
    fields = ["tenant", "title", "source", "content", *readonly_fields]
    actions = ["reingest"]

    @admin.action(description="Re-ingest the selected documents now")
    def reingest(self, request, queryset):
        count = 0
        for document in queryset:
            document_ingest(tenant_id=document.tenant_id, document_id=document.pk)
            count += 1
        messages.success(request, f"Re-ingested {count} document(s).")

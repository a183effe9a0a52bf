"""Operator console for the gateway (staff see every tenant; see tenants/SCOPING.md)."""

from django.contrib import admin, messages
from django.db import transaction

from ai.rag.ingest import document_ingest
from ai.rag.models import Document
from ai.router.examples import router_example_save
from ai.router.models import RouterExample, RouteRule
from ai.tenant_settings import TenantAISettings
from ai.verifier.models import LabelledPair, VerifierModel
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


@admin.register(LabelledPair)
class LabelledPairAdmin(admin.ModelAdmin):
    """Pairs operators mark right or wrong; ``manage.py train_verifier`` learns from them."""

    list_display = ["text_a", "text_b", "same", "created_by", "created_at"]
    list_filter = ["same"]
    search_fields = ["text_a", "text_b", "note"]
    fields = ["text_a", "text_b", "same", "note"]

    def save_model(self, request, obj, form, change):
        obj.created_by = obj.created_by or request.user
        super().save_model(request, obj, form, change)


@admin.register(VerifierModel)
class VerifierModelAdmin(admin.ModelAdmin):
    list_display = ["__str__", "active", "min_score", "verify_below", "created_at"]
    fields = ["embedder_id", "min_score", "verify_below", "active", "report", "created_at"]
    readonly_fields = ["embedder_id", "report", "created_at"]
    actions = ["activate", "retire"]

    def has_add_permission(self, request):
        return False  # trained by manage.py train_verifier

    @admin.action(description="Make the selected verifier the live cache's")
    def activate(self, request, queryset):
        if queryset.count() != 1:
            messages.error(request, "Select exactly one verifier to activate.")
            return
        with transaction.atomic():
            VerifierModel.objects.filter(active=True).update(active=False)
            queryset.update(active=True)
        messages.success(request, "Activated; every worker picks it up within seconds.")

    @admin.action(description="Stop using the selected verifiers")
    def retire(self, request, queryset):
        queryset.update(active=False)
        messages.success(request, "The cache no longer asks a verifier.")

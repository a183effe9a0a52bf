from django.contrib import admin, messages

from ai.verifier.models import LabelledPair, VerifierModel
from tenants.access import request_tenants_managed
from tenants.admin import TenantOwnedAdmin


@admin.register(LabelledPair)
class LabelledPairAdmin(TenantOwnedAdmin):
    """Pairs marked right or wrong: global ones by operators, a tenant's from its feedback on cached
    answers (``POST /api/v1/ai/feedback``) or its admins. ``manage.py train_verifier [--tenant]``
    learns from them; a tenant's pairs teach only its own verifier."""

    list_display = ["text_a", "text_b", "same", "tenant", "source", "created_at"]
    list_filter = ["same", "source", "tenant"]
    search_fields = ["text_a", "text_b", "note", "request_id"]
    fields = ["tenant", "text_a", "text_b", "same", "note", "source", "request_id"]
    readonly_fields = ["source", "request_id"]

    def save_model(self, request, obj, form, change):
        obj.created_by = obj.created_by or request.user
        super().save_model(request, obj, form, change)


@admin.register(VerifierModel)
class VerifierModelAdmin(TenantOwnedAdmin):
    """Trained by ``manage.py train_verifier``; a tenant's serves it alone, a global one every tenant
    without its own. Tenant admins see their tenant's (read-only); operators activate them."""

    tenant_admin_can_edit = False
    list_display = ["__str__", "tenant", "active", "min_score", "verify_below", "created_at"]
    list_filter = ["active", "tenant"]
    fields = ["tenant", "embedder_id", "min_score", "verify_below", "active", "report", "created_at"]
    readonly_fields = ["tenant", "embedder_id", "report", "created_at"]
    actions = ["activate", "retire"]

    def has_add_permission(self, request):
        return False  # trained by manage.py train_verifier

    def get_actions(self, request):
        return super().get_actions(request) if request_tenants_managed(request).every else {}

    @admin.action(description="Make the selected verifier its tenant's (or the global) live one")
    def activate(self, request, queryset):
        if queryset.count() != 1:
            messages.error(request, "Select exactly one verifier to activate.")
            return
        chosen = queryset.get()
        siblings = VerifierModel.objects.unscoped().filter(tenant_id=chosen.tenant_id, active=True)
        siblings.exclude(pk=chosen.pk).update(active=False)
        queryset.update(active=True)
        messages.success(request, "Activated; every worker picks it up within seconds.")

    @admin.action(description="Stop using the selected verifiers")
    def retire(self, request, queryset):
        queryset.update(active=False)
        messages.success(request, "The cache falls back to the global verifier, else the shipped default.")

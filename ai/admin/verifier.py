from django.contrib import admin, messages
from django.db import transaction

from ai.verifier.models import LabelledPair, VerifierModel
from tenants.admin import OperatorOnlyAdmin


@admin.register(LabelledPair)
class LabelledPairAdmin(OperatorOnlyAdmin):
    """Pairs operators mark right or wrong; ``manage.py train_verifier`` learns from them.
    Verifiers serve every tenant's cache, so only operators see or change them."""

    list_display = ["text_a", "text_b", "same", "created_by", "created_at"]
    list_filter = ["same"]
    search_fields = ["text_a", "text_b", "note"]
    fields = ["text_a", "text_b", "same", "note"]

    def save_model(self, request, obj, form, change):
        obj.created_by = obj.created_by or request.user
        super().save_model(request, obj, form, change)


@admin.register(VerifierModel)
class VerifierModelAdmin(OperatorOnlyAdmin):
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

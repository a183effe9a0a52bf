from django.contrib import admin

from catalog.models import ModelPrice
from tenants.admin import GlobalAuditTrailAdmin, OperatorOnlyAdmin
from tenants.audit_admin import AuditedAdmin


@admin.register(ModelPrice)
class ModelPriceAdmin(AuditedAdmin, OperatorOnlyAdmin):
    list_display = ["model", "provider", "input_per_million", "output_per_million", "effective_from"]
    list_filter = ["provider", "model"]

    def has_change_permission(self, request, obj=None):
        return False  # a price change is a new row: history is never rewritten


admin.site.register(ModelPrice.history.model, GlobalAuditTrailAdmin)

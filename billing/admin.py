from django.contrib import admin

from billing.models import TenantBudget, UsageRecord
from tenants.admin import TenantOwnedAdmin


@admin.register(TenantBudget)
class TenantBudgetAdmin(TenantOwnedAdmin):
    """Limits are the operator's: a tenant admin reads their budget but cannot change it
    (``max_request_cost=0`` or no monthly limit would admit everything)."""

    tenant_admin_can_edit = False
    list_display = ["tenant", "requests_per_minute", "monthly_spend_limit", "soft_alert_ratio", "max_request_cost"]


@admin.register(UsageRecord)
class UsageRecordAdmin(TenantOwnedAdmin):
    list_display = ["created_at", "tenant", "source", "model", "input_tokens", "output_tokens", "cost", "saved"]
    list_filter = ["source", "tenant"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # the ledger is append-only

    def has_delete_permission(self, request, obj=None):
        return False

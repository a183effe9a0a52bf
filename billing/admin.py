from django.contrib import admin

from billing.models import BudgetAlert, TenantBudget, UsageRecord
from billing.webhooks import new_secret
from tenants.admin import TenantAuditTrailAdmin, TenantOwnedAdmin
from tenants.audit_admin import AuditedAdmin


@admin.register(TenantBudget)
class TenantBudgetAdmin(AuditedAdmin, TenantOwnedAdmin):
    """Limits are the operator's: a tenant admin reads their budget but cannot change it
    (``max_request_cost=0`` or no monthly limit would admit everything)."""

    tenant_admin_can_edit = False
    list_display = ["tenant", "requests_per_minute", "monthly_spend_limit", "soft_alert_ratio", "max_request_cost"]

    def save_model(self, request, obj, form, change):
        if obj.alert_webhook_url and not obj.alert_webhook_secret:
            obj.alert_webhook_secret = new_secret()  # the receiver's key to check X-Saascore-Signature
        super().save_model(request, obj, form, change)


admin.site.register(TenantBudget.history.model, TenantAuditTrailAdmin)


@admin.register(BudgetAlert)
class BudgetAlertAdmin(TenantOwnedAdmin):
    """Budget alerts and their webhook deliveries: a record, read-only for everyone."""

    list_display = ["created_at", "tenant", "key_ref", "period", "spent_usd", "limit_usd", "status", "attempts"]
    list_filter = ["status", "tenant"]
    tenant_admin_can_edit = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(TenantOwnedAdmin):
    list_display = ["created_at", "tenant", "source", "model", "api_key_id", "end_user", "tags", "input_tokens",
                    "output_tokens", "cost", "saved"]  # fmt: skip
    list_filter = ["source", "tenant"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # the ledger is append-only

    def has_delete_permission(self, request, obj=None):
        return False

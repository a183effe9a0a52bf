from django.contrib import admin, messages

from tenants.models import ApiKey, Membership, Tenant
from tenants.services import api_key_create, api_key_revoke


class TenantOwnedAdmin(admin.ModelAdmin):
    """Admin for tenant-owned models; staff requests run unscoped (AdminScopeMiddleware)."""

    def get_queryset(self, request):
        return self.model.objects.unscoped().select_related("tenant")


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "plan", "active", "created_at"]
    list_filter = ["plan", "active"]
    search_fields = ["slug", "name"]


@admin.register(Membership)
class MembershipAdmin(TenantOwnedAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    autocomplete_fields = ["user"]


@admin.register(ApiKey)
class ApiKeyAdmin(TenantOwnedAdmin):
    list_display = ["name", "display", "tenant", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["tenant"]
    fields = ["tenant", "name", "expires_at", "display", "created_at", "revoked_at", "last_used_at"]
    readonly_fields = ["display", "created_at", "revoked_at", "last_used_at"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "tenant"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        api_key, key = api_key_create(
            tenant=obj.tenant, name=obj.name, expires_at=obj.expires_at, created_by=request.user
        )
        obj.pk = api_key.pk
        messages.warning(request, f"New API key (copy it now, it is not shown again): {key}")

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for api_key in queryset:
            api_key_revoke(tenant=api_key.tenant, key_id=api_key.pk)
        messages.success(request, f"Revoked {queryset.count()} key(s).")

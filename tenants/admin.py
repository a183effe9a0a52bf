from django.contrib import admin, messages
from django.db.models import Q

from tenants.models import ApiKey, Membership, Tenant
from tenants.scoping import unscoped_scope
from tenants.services import api_key_create, api_key_revoke

MANAGING_ROLES = (Membership.Role.OWNER, Membership.Role.ADMIN)


def managed_tenant_ids(user) -> frozenset[int] | None:
    """The tenants a tenant admin manages in the admin; None for an operator, who sees every tenant.

    Operators are superusers and staff without any membership. Staff with memberships
    manage only the tenants where they are owner or admin (none, if only a viewer).
    """
    if user.is_superuser:
        return None
    with unscoped_scope():
        roles = list(Membership.objects.unscoped().filter(user=user).values_list("tenant_id", "role"))
    if not roles:
        return None
    return frozenset(tenant for tenant, role in roles if role in MANAGING_ROLES)


def request_managed_tenants(request) -> frozenset[int] | None:
    if not hasattr(request, "managed_tenant_ids"):
        request.managed_tenant_ids = managed_tenant_ids(request.user)
    return request.managed_tenant_ids


class TenantOwnedAdmin(admin.ModelAdmin):
    """Admin for tenant-owned (or tenant-or-global) models.

    Operators see every tenant (AdminScopeMiddleware runs their requests unscoped).
    A tenant admin sees and edits only their tenants' rows, and global rows read-only;
    ``tenant_admin_can_edit = False`` makes the model read-only for them.
    """

    tenant_admin_can_edit = True

    def _has_global_rows(self) -> bool:
        return self.model._meta.get_field("tenant").null

    def get_queryset(self, request):
        queryset = self.model.objects.unscoped().select_related("tenant")
        managed = request_managed_tenants(request)
        if managed is None:
            return queryset
        visible = Q(tenant_id__in=managed)
        if self._has_global_rows():
            visible |= Q(tenant__isnull=True)
        return queryset.filter(visible)

    def _tenant_admin(self, request) -> frozenset[int] | None:
        return request_managed_tenants(request) if request.user.is_active and request.user.is_staff else None

    def has_module_permission(self, request):
        return bool(self._tenant_admin(request)) or super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        managed = self._tenant_admin(request)
        if managed is None:
            return super().has_view_permission(request, obj)
        return obj is None or obj.tenant_id is None or obj.tenant_id in managed

    def has_change_permission(self, request, obj=None):
        managed = self._tenant_admin(request)
        if managed is None:
            return super().has_change_permission(request, obj)
        return bool(managed) and self.tenant_admin_can_edit and (obj is None or obj.tenant_id in managed)

    def has_add_permission(self, request):
        managed = self._tenant_admin(request)
        if managed is None:
            return super().has_add_permission(request)
        return bool(managed) and self.tenant_admin_can_edit

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        managed = request_managed_tenants(request)
        if db_field.name == "tenant" and managed is not None:
            kwargs["queryset"] = Tenant.objects.filter(pk__in=managed)
            kwargs["required"] = True  # global rows are the operators'
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "plan", "active", "created_at"]
    list_filter = ["plan", "active"]
    search_fields = ["slug", "name"]


@admin.register(Membership)
class MembershipAdmin(TenantOwnedAdmin):
    tenant_admin_can_edit = False  # a tenant admin must not grant roles
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

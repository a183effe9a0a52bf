"""The admin's tenancy: who sees which rows is decided by tenants/access.py, nowhere else.

Operators see and change every tenant's rows. A tenant admin sees only the rows of
the tenants they manage, and global rows read-only; another tenant's objects do
not exist for them (404 on change, delete and history URLs, absent from lists,
filters and autocomplete). Django model permissions never widen that: a staff
user is an operator only by being a superuser.
"""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Q
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django_tasks_db.models import DBTaskResult

from tenants.access import is_operator, request_tenants_managed
from tenants.audit_admin import AuditedAdmin, AuditTrailMixin
from tenants.models import LIMIT_FIELDS, ApiKey, Membership, Tenant
from tenants.scoping import TenantOrGlobalModel
from tenants.services import api_key_create, api_key_revoke

# Held on the unsaved admin instance between save_model and response_add, in memory only.
_PLAINTEXT_ATTRIBUTE = "_plaintext_key"


class MissingIs404Admin(admin.ModelAdmin):
    """An object outside the admin's queryset does not exist: 404, not Django's redirect with a message."""

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object.")
        return obj


class OperatorOnlyAdmin(admin.ModelAdmin):
    """Global data (prices, verifiers, users): operators only, whatever Django permissions say."""

    def has_module_permission(self, request):
        return is_operator(request.user) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return is_operator(request.user) and super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return is_operator(request.user) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return is_operator(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return is_operator(request.user) and super().has_delete_permission(request, obj)


class ManagedTenantFilter(admin.RelatedFieldListFilter):
    """The changelist's tenant filter lists only the tenants the user manages."""

    def field_choices(self, field, request, model_admin):
        managed = request_tenants_managed(request)
        ordering = self.field_admin_ordering(field, request, model_admin)
        return field.get_choices(include_blank=False, limit_choices_to=managed.q("pk"), ordering=ordering)


class TenantOwnedAdmin(MissingIs404Admin):
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
        managed = request_tenants_managed(request)
        if managed.every:
            return queryset
        if not managed:
            return queryset.none()
        visible = managed.q()
        if self._has_global_rows():
            visible |= Q(tenant__isnull=True)
        return queryset.filter(visible)

    def get_list_filter(self, request):
        return [(f, ManagedTenantFilter) if f == "tenant" else f for f in super().get_list_filter(request)]

    def has_module_permission(self, request):
        managed = request_tenants_managed(request)
        return super().has_module_permission(request) if managed.every else bool(managed)

    def has_view_permission(self, request, obj=None):
        managed = request_tenants_managed(request)
        if managed.every:
            return super().has_view_permission(request, obj)
        return bool(managed) and (obj is None or obj.tenant_id is None or obj.tenant_id in managed)

    def has_change_permission(self, request, obj=None):
        managed = request_tenants_managed(request)
        if managed.every:
            return super().has_change_permission(request, obj)
        return bool(managed) and self.tenant_admin_can_edit and (obj is None or obj.tenant_id in managed)

    def has_add_permission(self, request):
        managed = request_tenants_managed(request)
        if managed.every:
            return super().has_add_permission(request)
        return bool(managed) and self.tenant_admin_can_edit

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        managed = request_tenants_managed(request)
        if db_field.name == "tenant" and not managed.every:
            kwargs["queryset"] = managed.tenants()
            kwargs["required"] = True  # global rows are the operators'
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class TenantAuditTrailAdmin(AuditTrailMixin, TenantOwnedAdmin):
    """Read-only list of a tenant-owned model's changes (tenants/audit.py): a tenant admin sees
    their tenants' changes only, and the global rows' where the model has them."""

    tenant_admin_can_edit = False
    list_display = [*AuditTrailMixin.list_display, "tenant"]
    list_filter = ["history_type", "tenant"]

    def _has_global_rows(self) -> bool:
        # simple-history makes every copied foreign key nullable: ask the model, not the column.
        return issubclass(self.model, TenantOrGlobalModel)


class GlobalAuditTrailAdmin(AuditTrailMixin, OperatorOnlyAdmin):
    """Read-only list of a global model's changes (prices): operators only."""


@admin.register(Tenant)
class TenantAdmin(MissingIs404Admin):
    """Operators create and change tenants (plan and ``active`` are theirs); a tenant admin
    sees their own tenants' rows, read-only, and no other tenant exists for them."""

    list_display = ["slug", "name", "plan", "active", "created_at"]
    list_filter = ["plan", "active"]
    search_fields = ["slug", "name"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(request_tenants_managed(request).q("pk"))

    def has_module_permission(self, request):
        managed = request_tenants_managed(request)
        return super().has_module_permission(request) if managed.every else bool(managed)

    def has_view_permission(self, request, obj=None):
        managed = request_tenants_managed(request)
        if managed.every:
            return super().has_view_permission(request, obj)
        return bool(managed) and (obj is None or obj in managed)

    def has_add_permission(self, request):
        return is_operator(request.user) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return is_operator(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return is_operator(request.user) and super().has_delete_permission(request, obj)


@admin.register(Membership)
class MembershipAdmin(TenantOwnedAdmin):
    tenant_admin_can_edit = False  # a tenant admin must not grant roles
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    autocomplete_fields = ["user"]


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin, TenantOwnedAdmin):
    """A new key is shown once, on the page that answers the POST creating it.

    The plain key never reaches the session, a cookie, the messages framework or the
    admin's LogEntry: it lives in this request's memory and in that one response.
    """

    list_display = ["name", "display", "tenant", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["tenant"]
    fieldsets = [
        (None, {"fields": ["tenant", "name", "expires_at", "display", "created_at", "revoked_at", "last_used_at"]}),
        ("Own limits (inside the tenant's, which still apply)", {"fields": [
            "allowed_models", "requests_per_minute", "tokens_per_minute", "max_parallel_requests", "budget_usd",
            "budget_period", "soft_alert_ratio", "cache_controls", "metadata",
        ]}),
    ]  # fmt: skip
    readonly_fields = ["display", "created_at", "revoked_at", "last_used_at"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "tenant"] if obj else self.readonly_fields

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        for name in ("budget_period", "soft_alert_ratio"):  # a post without them keeps the model's default
            if name in form.base_fields:
                form.base_fields[name].required = False
        return form

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        limits = {name: getattr(obj, name) for name in LIMIT_FIELDS}
        api_key, key = api_key_create(
            tenant=obj.tenant, name=obj.name, expires_at=obj.expires_at, created_by=request.user, limits=limits
        )
        obj.pk, obj.prefix, obj.hashed_key, obj.created_at = (
            api_key.pk, api_key.prefix, api_key.hashed_key, api_key.created_at
        )  # fmt: skip
        setattr(obj, _PLAINTEXT_ATTRIBUTE, key)

    def response_add(self, request, obj, post_url_continue=None):
        key = obj.__dict__.pop(_PLAINTEXT_ATTRIBUTE, None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Copy the new API key now",
            "api_key": obj,
            "plaintext": key,
            "change_url": reverse("admin:tenants_apikey_change", args=[obj.pk]),
            "changelist_url": reverse("admin:tenants_apikey_changelist"),
            "add_url": reverse("admin:tenants_apikey_add"),
        }
        response = TemplateResponse(request, "admin/tenants/apikey/created.html", context)
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for api_key in queryset:
            api_key_revoke(tenant=api_key.tenant, key_id=api_key.pk)
        messages.success(request, f"Revoked {queryset.count()} key(s).")


admin.site.register(ApiKey.history.model, TenantAuditTrailAdmin)


def _operators_only(model) -> None:
    """Re-register another app's admin so that only operators reach it."""
    current = type(admin.site.get_model_admin(model))
    admin.site.unregister(model)
    admin.site.register(model, type(f"Operator{current.__name__}", (OperatorOnlyAdmin, current), {}))


# Users, groups and background tasks span every tenant (a task's arguments and traceback may
# carry a tenant's data): operators only, whatever Django permissions a staff user holds.
for _model in (get_user_model(), Group, DBTaskResult):
    _operators_only(_model)

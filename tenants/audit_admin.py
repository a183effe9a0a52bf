"""The audit trail in the admin (tenants/audit.py): a history page per object, and a read-only
list of each audited model's changes.

Both follow the admin's tenancy (tenants/admin.py, ``TenantAuditTrailAdmin``): another
tenant's object, and so its history, does not exist for a tenant admin (404). Past versions
are shown, never restored: a revert would bypass the services' checks (a key's limits inside
its tenant's), and simple-history's revert form saves on POST whatever the change permission
says.
"""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.http import Http404
from simple_history.admin import SimpleHistoryAdmin


def changes_text(record) -> str:
    """``field: old → new; ...`` from the diff recorded with the change."""
    changes = record.history_changes or {}
    return "; ".join(f"{field}: {old!r} → {new!r}" for field, (old, new) in changes.items()) or "-"


class AuditedAdmin(SimpleHistoryAdmin):
    """Mixin of an audited model's admin: its "History" page lists the object's recorded changes."""

    object_history_list_template = "admin/audit/object_history_list.html"

    def history_view(self, request, object_id, extra_context=None):
        if self.get_object(request, unquote(object_id)) is None:  # outside the admin's queryset: 404
            raise Http404("No such object.")
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        raise Http404("Past versions are listed on the history page; they are not restored from the admin.")

    def set_history_delta_changes(self, request, historical_records, foreign_keys_are_objs=True) -> None:
        for record in historical_records:  # the diff was recorded with each change: no query per row
            record.changes_text = changes_text(record)


class AuditTrailMixin(admin.ModelAdmin):
    """A read-only list of an audited model's history rows (with TenantOwnedAdmin or OperatorOnlyAdmin)."""

    list_display = ["history_date", "object_id", "change_kind", "history_actor", "changes"]
    list_display_links = ["history_date"]
    list_filter = ["history_type"]
    date_hierarchy = "history_date"

    @admin.display(description="object")
    def object_id(self, record) -> int:
        return record.id

    @admin.display(description="fields: old → new")
    def changes(self, record) -> str:
        return changes_text(record)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # the trail is append-only

    def has_delete_permission(self, request, obj=None):
        return False

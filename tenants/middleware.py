from collections.abc import Callable
from contextlib import nullcontext

from django.http import HttpRequest, HttpResponse

from tenants.access import request_tenants_managed
from tenants.audit import acting_as
from tenants.scoping import tenant_scope, unscoped_scope


def _admin_scope(request: HttpRequest):
    """The database scope of an admin request, from the tenants the user manages (tenants/access.py).

    Operators: unscoped. One managed tenant: that tenant's scope, so Row-Level Security
    backs the admin's own filtering. Several: unscoped, the admin's filtering alone
    (tenants/SCOPING.md). None: no scope at all, so the database shows no tenant row.
    """
    managed = request_tenants_managed(request)
    if managed.every:
        return unscoped_scope()
    if managed.single is not None:
        return tenant_scope(managed.single)
    return unscoped_scope() if managed else nullcontext()


class AdminScopeMiddleware:
    """The Django admin is the operators' console, and the tenant admins' for their own tenants.

    Admin requests are short and make no network calls, so one transaction per
    request is fine here. What they change is recorded as the signed-in user's (tenants/audit.py).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if request.path.startswith("/admin/") and user is not None and user.is_active and user.is_staff:
            with _admin_scope(request), acting_as(user=user):
                return self.get_response(request)
        return self.get_response(request)

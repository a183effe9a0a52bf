from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from tenants.scoping import tenant_scope, unscoped_scope


class AdminScopeMiddleware:
    """The Django admin is the operators' console: staff requests see every tenant.

    A tenant admin who manages exactly one tenant works inside that tenant's scope,
    so Row-Level Security backs the admin's own filtering (tenants/admin.py).

    Admin requests are short and make no network calls, so one transaction per
    request is fine here.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if request.path.startswith("/admin/") and user is not None and user.is_active and user.is_staff:
            from tenants.admin import request_managed_tenants

            managed = request_managed_tenants(request)
            scope = tenant_scope(next(iter(managed))) if managed and len(managed) == 1 else unscoped_scope()
            with scope:
                return self.get_response(request)
        return self.get_response(request)

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from tenants.scoping import unscoped_scope


class AdminScopeMiddleware:
    """The Django admin is the operators' console: staff requests see every tenant.

    Admin requests are short and make no network calls, so one transaction per
    request is fine here.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if request.path.startswith("/admin/") and user is not None and user.is_active and user.is_staff:
            with unscoped_scope():
                return self.get_response(request)
        return self.get_response(request)

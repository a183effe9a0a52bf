import logging
import re
import uuid
from collections.abc import Callable

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse

from saascore.api.errors import (
    DATABASE_RETRY_AFTER,
    body_too_large,
    database_unavailable_response,
    error_response,
    is_api_path,
    max_body_bytes,
)
from saascore.db.base import database_unavailable
from saascore.logs import request_id_var, tenant_id_var

logger = logging.getLogger("saascore.errors")

# Django turns these into 4xx through handler400/403/404 (JSON on API paths).
_HANDLED_BY_DJANGO = (Http404, PermissionDenied, BadRequest, SuspiciousOperation)
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


class RequestIdMiddleware:
    """Every request gets an id (the caller's X-Request-ID when it is safe), echoed back
    and set in ``saascore.logs.request_id_var`` for its log lines."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        # Log lines of this request carry its id, and its tenant once authentication knows it;
        # both are cleared when the response is closed (saascore.logs.clear_request_context),
        # after Django's own 4xx/5xx line and gunicorn's access line.
        request_id_var.set(request.request_id)
        tenant_id_var.set(None)
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class ApiErrorMiddleware:
    """API paths: refuse oversized bodies up front, and never let an exception
    reach Django's debug page or a bare 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api_path(request.path):
            limit = max_body_bytes()
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return error_response(400, "bad_request", "Content-Length is not a number.")
            if length > limit:
                return body_too_large(limit)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if database_unavailable(exception):
            logger.warning("database unavailable in %s: %s", request.path, type(exception).__name__)
            if is_api_path(request.path):
                return database_unavailable_response()
            response = HttpResponse("The service cannot reach its database right now. Retry shortly.", status=503)
            response["Retry-After"] = str(DATABASE_RETRY_AFTER)
            return response
        if not is_api_path(request.path) or isinstance(exception, _HANDLED_BY_DJANGO):
            return None
        logger.exception("unhandled error in %s (request %s)", request.path, getattr(request, "request_id", "-"))
        return error_response(500, "internal_error")

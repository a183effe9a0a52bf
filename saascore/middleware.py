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
from saascore.logs import client_request_id_var, request_id_var, tenant_id_var

logger = logging.getLogger("saascore.errors")

# Django turns these into 4xx through handler400/403/404 (JSON on API paths).
_HANDLED_BY_DJANGO = (Http404, PermissionDenied, BadRequest, SuspiciousOperation)
# A caller's own request id: echoed and logged, never a key of anything.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@+/=-]{1,128}$")
_CLIENT_ID_HEADERS = (("HTTP_X_CLIENT_REQUEST_ID", "X-Client-Request-Id"), ("HTTP_X_REQUEST_ID", "X-Request-ID"))


class RequestIdMiddleware:
    """Every request gets the server's own id (``request.request_id``): the ledger's key,
    the ``request_id`` of every log line, sent back as ``X-Request-ID``.

    A caller's id (``X-Client-Request-Id``, or ``X-Request-ID``) is a correlation id only:
    logged as ``client_request_id`` and echoed as ``X-Client-Request-Id``. On API paths
    one that is malformed or longer than 128 characters is refused with 400, so that
    nothing a client controls reaches a log line unchecked.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = uuid.uuid4().hex
        request.client_request_id = None
        # Log lines of this request carry its id, and its tenant once authentication knows it;
        # both are cleared when the response is closed (saascore.logs.clear_request_context),
        # after Django's own 4xx/5xx line and gunicorn's access line.
        request_id_var.set(request.request_id)
        tenant_id_var.set(None)
        client_request_id_var.set(None)
        refused = self._client_id(request)
        response = refused or self.get_response(request)
        response["X-Request-ID"] = request.request_id
        if request.client_request_id:
            response["X-Client-Request-Id"] = request.client_request_id
        return response

    def _client_id(self, request: HttpRequest) -> HttpResponse | None:
        for meta, header in _CLIENT_ID_HEADERS:
            value = request.META.get(meta)
            if value is None:
                continue
            if not _CLIENT_REQUEST_ID.match(value):
                if not is_api_path(request.path):
                    continue  # pages ignore it
                return error_response(
                    400,
                    "invalid_request_id",
                    f"{header} must be 1 to 128 characters: letters, digits and . _ : @ + / = - only.",
                    {"header": header},
                )
            if request.client_request_id is None:
                request.client_request_id = value
                client_request_id_var.set(value)
        return None


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

"""One JSON error shape for every 4xx/5xx on API paths:

    {"error": {"code": "not_found", "message": "...", "details": {...}}}

Nothing here ever puts a stack trace in a response: unexpected exceptions are
logged with the request id and answered with a generic 500.
"""

import logging

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from saascore.db.base import database_unavailable

logger = logging.getLogger("saascore.errors")


class ApiError(Exception):
    """An error the product answers on purpose, with a status and a code a client can act on.

    Raise a subclass anywhere below a view (billing's ``AdmissionRefused``, ai's
    ``UpstreamFailed``); the exception handler answers it in the one error shape,
    with ``Retry-After`` when ``retry_after`` is set.
    """

    status: int = 400
    code: str = "error"

    def __init__(
        self, message: str, *, details: dict | None = None, retry_after: int | None = None, status: int | None = None,
        code: str | None = None, headers: dict | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.message, self.details, self.retry_after = message, details or {}, retry_after
        self.status, self.code = status or self.status, code or self.code
        self.headers = dict(headers or {})  # more response headers (the rate-limit figures of a 429)

    def response(self) -> JsonResponse:
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, self.retry_after))
        return error_response(self.status, self.code, self.message, self.details, headers)


API_PREFIXES = ("/api/", "/v1/", "/health/", "/metrics")

_MESSAGES = {
    400: "The request is malformed.",
    401: "Authentication is required.",
    403: "You do not have permission to do this.",
    404: "Not found.",
    405: "Method not allowed.",
    413: "The request body is too large.",
    415: "Unsupported media type.",
    429: "Too many requests.",
    500: "Internal error. The request id in X-Request-ID identifies it in our logs.",
}


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def error_response(status: int, code: str, message: str | None = None, details=None, headers=None) -> JsonResponse:
    body = {"error": {"code": code, "message": message or _MESSAGES.get(status, "Error."), "details": details or {}}}
    response = JsonResponse(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _message_and_details(exc: exceptions.APIException) -> tuple[str, object]:
    detail = exc.detail
    if isinstance(exc, exceptions.ValidationError):
        return "The request is invalid; see details for each field.", detail
    if isinstance(detail, str):
        return str(detail), {}
    return _MESSAGES.get(exc.status_code, "Error."), detail


# Seconds a client should wait before retrying when PostgreSQL is unavailable.
DATABASE_RETRY_AFTER = 5


def database_unavailable_response() -> JsonResponse:
    return error_response(
        503,
        "database_unavailable",
        "The service cannot reach its database right now; nothing was done. Retry shortly.",
        {"retry_after_seconds": DATABASE_RETRY_AFTER},
        {"Retry-After": str(DATABASE_RETRY_AFTER)},
    )


def exception_handler(exc, context):
    """DRF's handler, with our body shape; unexpected exceptions become a logged 500."""
    if database_unavailable(exc):
        logger.warning("database unavailable: %s: %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return database_unavailable_response()
    if isinstance(exc, ApiError):
        return exc.response()
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, ObjectDoesNotExist):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        request = context.get("request")
        logger.exception("unhandled error in %s", getattr(request, "path", "?"))
        return error_response(500, "internal_error")
    if isinstance(exc, exceptions.ParseError):
        code, message, details = "malformed_request", f"The request body could not be parsed: {exc.detail}", {}
    else:
        code = exc.default_code if isinstance(exc, exceptions.APIException) else "error"
        message, details = _message_and_details(exc)
    headers = {name: value for name, value in response.items() if name in ("WWW-Authenticate", "Retry-After", "Allow")}
    return error_response(response.status_code, code, message, details, headers)


def handler404(request: HttpRequest, exception: Exception):
    if is_api_path(request.path):
        return error_response(404, "not_found", f"No endpoint at {request.path}.")
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest):
    if is_api_path(request.path):
        return error_response(500, "internal_error")
    return defaults.server_error(request)


def handler400(request: HttpRequest, exception: Exception):
    if is_api_path(request.path):
        return error_response(400, "bad_request")
    return defaults.bad_request(request, exception)


def handler403(request: HttpRequest, exception: Exception):
    if is_api_path(request.path):
        return error_response(403, "permission_denied")
    return defaults.permission_denied(request, exception)


def body_too_large(limit: int) -> JsonResponse:
    return error_response(
        413, "body_too_large", f"The request body is larger than {limit} bytes.", {"limit_bytes": limit}
    )


def max_body_bytes() -> int:
    return settings.API_MAX_BODY_BYTES

import logging
import re
import time
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.security import SecurityMiddleware
from django_prometheus.middleware import Metrics

from saascore.api.errors import (
    DATABASE_RETRY_AFTER,
    body_too_large,
    database_unavailable_response,
    error_response,
    is_api_path,
    max_body_bytes,
)
from saascore.api.openai_errors import is_openai_path, reshaped
from saascore.db.base import database_unavailable
from saascore.logs import client_request_id_var, request_id_var, tenant_id_var

logger = logging.getLogger("saascore.errors")
access = logging.getLogger("saascore.access")

# Django turns these into 4xx through handler400/403/404 (JSON on API paths).
_HANDLED_BY_DJANGO = (Http404, PermissionDenied, BadRequest, SuspiciousOperation)
# A caller's own request id: echoed and logged, never a key of anything.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@+/=-]{1,128}$")
_CLIENT_ID_HEADERS = (("HTTP_X_CLIENT_REQUEST_ID", "X-Client-Request-Id"), ("HTTP_X_REQUEST_ID", "X-Request-ID"))


class Hybrid:
    """A middleware that runs natively under WSGI and ASGI: no thread hop on the async path
    (Django's ``MiddlewareMixin`` hops to a thread and back for each hook)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self.__acall__(request)
        response = self.before(request)
        return self.after(request, response or self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        response = self.before(request)
        return self.after(request, response or await self.get_response(request))

    def before(self, request: HttpRequest) -> HttpResponse | None:
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response


class RequestIdMiddleware(Hybrid):
    """Every request gets the server's own id (``request.request_id``): the ledger's key,
    the ``request_id`` of every log line, sent back as ``X-Request-ID``.

    A caller's id (``X-Client-Request-Id``, or ``X-Request-ID``) is a correlation id only:
    logged as ``client_request_id`` and echoed as ``X-Client-Request-Id``. On API paths
    one that is malformed or longer than 128 characters is refused with 400, so that
    nothing a client controls reaches a log line unchecked.

    Each request ends with one access line (``saascore.access``): method, path without
    its query string (a client that puts a key in the URL must not have it logged),
    status, duration, and the request's ids.
    """

    def before(self, request: HttpRequest) -> HttpResponse | None:
        request.started = time.perf_counter()
        request.request_id = uuid.uuid4().hex
        request.client_request_id = None
        # Log lines of this request carry its id, and its tenant once authentication knows it;
        # both are cleared when the response is closed (saascore.logs.clear_request_context),
        # after Django's own 4xx/5xx line and gunicorn's access line.
        request_id_var.set(request.request_id)
        tenant_id_var.set(None)
        client_request_id_var.set(None)
        return self._client_id(request)

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        response["X-Request-ID"] = request.request_id
        if request.client_request_id:
            response["X-Client-Request-Id"] = request.client_request_id
        milliseconds = (time.perf_counter() - request.started) * 1000
        access.info(
            '"%s %s" %s %.1fms',
            request.method,
            request.path,
            response.status_code,
            milliseconds,
            extra={"method": request.method, "path": request.path, "status": response.status_code,
                   "duration_ms": round(milliseconds, 2), "remote": request.META.get("REMOTE_ADDR")},
        )  # fmt: skip
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


class ApiErrorMiddleware(Hybrid):
    """API paths: refuse oversized bodies up front, and never let an exception
    reach Django's debug page or a bare 500."""

    def before(self, request: HttpRequest) -> HttpResponse | None:
        if is_api_path(request.path):
            limit = max_body_bytes()
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return error_response(400, "bad_request", "Content-Length is not a number.")
            if length > limit:
                return body_too_large(limit)
        return None

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


class OpenAIErrorMiddleware(Hybrid):
    """The OpenAI-compatible API (``/v1/``) answers its errors in OpenAI's shape
    (saascore/api/openai_errors.py); it sits outside every middleware that makes errors."""

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return reshaped(response) if is_openai_path(request.path) else response


class HttpMetricsMiddleware(Hybrid):
    """The request series of django-prometheus (``django_http_*``: requests, responses by
    status, latency) for the lean async stack, whose hooks run inline (django-prometheus's
    own middleware hops to a thread for each). Dashboards and alerts read the same series."""

    def before(self, request: HttpRequest) -> None:
        request.prometheus_started = time.perf_counter()
        http_metrics().requests_total.inc()
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        found = http_metrics()
        status = str(response.status_code)
        found.responses_total.inc()
        found.responses_by_status.labels(status).inc()
        found.responses_by_status_view_method.labels(status, "<lean>", request.method).inc()
        found.requests_latency_before.observe(time.perf_counter() - request.prometheus_started)
        return response


class SecurityHeadersMiddleware(Hybrid, SecurityMiddleware):
    """Django's SecurityMiddleware (HTTPS redirect, HSTS, nosniff, referrer policy) with its
    hooks inline: they read settings and headers only."""

    def __init__(self, get_response) -> None:
        SecurityMiddleware.__init__(self, get_response)
        Hybrid.__init__(self, get_response)

    def before(self, request: HttpRequest) -> HttpResponse | None:
        return self.process_request(request)

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return self.process_response(request, response)


def http_metrics():
    return Metrics.get_instance()

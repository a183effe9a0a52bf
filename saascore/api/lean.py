"""Async endpoints for the hot path, without DRF's sync dispatch.

Under ASGI, DRF's ``APIView`` dispatch is synchronous: each request would cross
to a thread and back. The gateway's hot endpoints (the query, and the
OpenAI-compatible ones) are plain Django async views built with
``async_endpoint``: the DRF ``APIView`` subclass stays as the description the
OpenAPI schema is generated from (its ``@extend_schema``), and requests go to an
async handler that answers exactly as DRF would, in the same order:

405 (method) -> 406 (``Accept``/``?format=``) -> 401 (key) -> 415 (content type)
-> 400 (body, fields) -> the handler, with every error in the one error shape
(``saascore/api/errors.py``: ApiError, DRF's exceptions, 503 for the database).
"""

import logging
from collections.abc import Awaitable, Callable

from asgiref.sync import markcoroutinefunction
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, serializers

from saascore.api.errors import exception_handler
from saascore.api.parsers import loads_bounded

logger = logging.getLogger("saascore.api")
JSON = "application/json"
AUTH_HEADER = 'Bearer realm="api"'

Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


def async_endpoint(
    view_class, handler: Handler, *, methods: tuple[str, ...] = ("POST",), produces: tuple[str, ...] = (JSON,)
):
    """A Django async view that answers with ``handler`` and is documented by ``view_class``;
    ``produces``: the media types it can answer (an ``Accept`` of none of them is a 406)."""
    documented = view_class.as_view()

    async def endpoint(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            if request.method not in methods:
                raise exceptions.MethodNotAllowed(request.method)
            negotiate(request, produces)
            response = await handler(request, *args, **kwargs)
        except Exception as exc:  # the one error shape; unexpected ones logged as 500
            response = error_for(exc, request)
            if isinstance(exc, exceptions.MethodNotAllowed):
                response["Allow"] = ", ".join(methods)
        return response

    markcoroutinefunction(endpoint)
    # drf-spectacular finds the operation through these, as on any DRF view.
    endpoint.cls, endpoint.initkwargs, endpoint.view_class = documented.cls, documented.initkwargs, view_class
    endpoint.csrf_exempt = True
    return endpoint


def error_for(exc: Exception, request: HttpRequest) -> HttpResponse:
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        exc.auth_header = AUTH_HEADER
    response = exception_handler(exc, {"request": request})
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response["WWW-Authenticate"] = AUTH_HEADER
    return response


def negotiate(request: HttpRequest, produces: tuple[str, ...] = (JSON,)) -> None:
    """JSON is what these endpoints produce (a stream, also ``text/event-stream``): anything else
    asked for is a 406."""
    wanted = request.GET.get("format")
    if wanted is not None and wanted != "json":
        raise exceptions.NotAcceptable("No representation in that format; this endpoint has: json.")
    if request.headers.get("Accept") and not any(request.accepts(media) for media in produces):
        raise exceptions.NotAcceptable(f"This endpoint answers {' or '.join(produces)} only.")


def json_body(request: HttpRequest):
    """The request's JSON body, bounded (saascore/api/parsers.py): 415 for another type, 400 when
    malformed. As DRF: no body, or no content type, reads as no data (the fields then say what is missing)."""
    media_type = request.content_type or ""
    if not media_type or not request.body:
        return {}
    if media_type != JSON and not media_type.endswith("+json"):
        raise exceptions.UnsupportedMediaType(media_type or "(none)")
    charset = request.encoding or "utf-8"
    try:
        text = request.body.decode(charset)
    except (UnicodeError, LookupError) as exc:  # UnicodeError: a codec such as punycode failing its own way
        raise exceptions.ParseError(f"JSON parse error - {exc}") from None
    return loads_bounded(text)


def validated(serializer_class: type[serializers.Serializer], data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def json_response(body: dict, *, status: int = 200, headers: dict | None = None) -> JsonResponse:
    response = JsonResponse(body, status=status, json_dumps_params={"separators": (",", ":")})
    for name, value in (headers or {}).items():
        response[name] = value
    return response

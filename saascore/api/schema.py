"""The OpenAPI schema's conventions, in one place: every operation declares the errors it can answer.

drf-spectacular documents what a view says it returns (its 2xx). ``AutoSchema`` (the project's
``DEFAULT_SCHEMA_CLASS``) adds the error responses that the project's layers answer for any
operation, derived from what the operation is, so no view can forget them:

====  ===================================================================  =========================
code  when                                                                 which operations
====  ===================================================================  =========================
400   malformed or invalid input; an unsafe ``X-Request-ID``               every one
401   no API key, or an invalid, revoked or expired one                    views that need a key
404   the id in the path names nothing of this tenant                      with a path parameter
406   ``Accept`` (or ``?format=``) names nothing the operation produces    every one
413   a body over ``API_MAX_BODY_BYTES`` (refused before it is read past it)  with a request body
415   a body in a media type the operation does not parse                  with a request body
503   PostgreSQL unavailable, with ``Retry-After``                         every one
====  ===================================================================  =========================

All share one body, the ``Error`` component (``saascore/api/errors.py``:
``{"error": {"code", "message", "details"}}``), and every response carries ``X-Request-ID``.
Errors only some operations answer (409 on a duplicate title, 402/422/429/502 on the query) stay
declarative, in the view's ``@extend_schema(responses=...)``, through ``error_doc``.

Not guaranteed: that the view really answers what it declares; ``tests/saascore/test_api_fuzz.py``
checks that against the running application with schemathesis.
"""

import uritemplate
from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

BODY_METHODS = ("POST", "PUT", "PATCH")


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable, e.g. `not_found`, `invalid`, `rate_limited`.")
    message = serializers.CharField(help_text="What went wrong, for a person.")
    details = serializers.JSONField(help_text="Per-field errors or the figures behind the error; `{}` if none.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


def error_doc(description: str) -> OpenApiResponse:
    """An error response in the project's one shape, for ``@extend_schema(responses={code: ...})``."""
    return OpenApiResponse(ErrorSerializer, description=description)


RETRY_AFTER_CODES = (402, 429, 503)

_CLIENT_ID = {"type": "string", "pattern": r"^[A-Za-z0-9._:@+/=-]{1,128}$"}
_CLIENT_ID_HELP = (
    "Your own id for this request, for correlation only (1 to 128 of letters, digits and `. _ : @ + / = -`; "
    "anything else is a 400): written in our logs and echoed as `X-Client-Request-Id`."
)
_HEADERS = [
    OpenApiParameter("X-Client-Request-Id", _CLIENT_ID, OpenApiParameter.HEADER, description=_CLIENT_ID_HELP),
    OpenApiParameter(
        "X-Request-ID", _CLIENT_ID, OpenApiParameter.HEADER, description="The same as `X-Client-Request-Id`."
    ),
    OpenApiParameter(
        "X-Request-ID",
        str,
        OpenApiParameter.HEADER,
        response=True,
        required=True,
        description="Our id of this request (the ledger's and our logs' key): quote it when you report a problem.",
    ),
    OpenApiParameter(
        "X-Client-Request-Id",
        str,
        OpenApiParameter.HEADER,
        response=True,
        description="Your correlation id, when you sent one.",
    ),
    OpenApiParameter(
        "Retry-After",
        int,
        OpenApiParameter.HEADER,
        response=list(RETRY_AFTER_CODES),
        required=True,
        description="Seconds to wait before trying again.",
    ),
    OpenApiParameter(
        "WWW-Authenticate",
        str,
        OpenApiParameter.HEADER,
        response=[401],
        required=True,
        description='`Bearer realm="api"`: send the API key as `Authorization: Bearer <key>`.',
    ),
]


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema, plus the errors and headers every operation has (module docstring)."""

    def get_override_parameters(self):
        return [*_HEADERS, *super().get_override_parameters()]

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in self.error_codes().items():
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(
                    error_doc(description), str(code), ["application/json"], direction
                )
        return dict(sorted(responses.items()))

    def error_codes(self) -> dict[int, str]:
        """The errors the project's layers answer for this operation, with what each means."""
        codes = {
            400: "The request is malformed (body, parameters, or an unsafe `X-Request-ID`) or invalid; "
            "`details` names each field.",
            406: "`Accept` (or `?format=`) names no representation this operation produces.",
            503: "The service cannot answer now (its database is unavailable); retry after `Retry-After`.",
        }
        if self._needs_key():
            codes[401] = "No API key, or one that is invalid, revoked or expired."
        if uritemplate.variables(self.path):
            codes[404] = "Nothing with this id exists for your tenant."
        if self.method in BODY_METHODS:
            codes[413] = "The body is larger than the server accepts (`details.limit_bytes`)."
            codes[415] = "The body's `Content-Type` is not one this operation reads."
        return codes

    def _needs_key(self) -> bool:
        return bool(self.view.get_authenticators()) and not all(
            isinstance(permission, AllowAny) for permission in self.view.get_permissions()
        )


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """``tenants.authentication.ApiKeyAuthentication``: the key as a bearer token or in ``X-API-Key``."""

    target_class = "tenants.authentication.ApiKeyAuthentication"
    name = ["ApiKey", "ApiKeyHeader"]

    def get_security_requirement(self, auto_schema):
        return [{"ApiKey": []}, {"ApiKeyHeader": []}]  # either one

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <api key>`"},
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "`X-API-Key: <api key>`"},
        ]

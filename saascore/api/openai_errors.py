"""Errors of the OpenAI-compatible API (``/v1/``) in OpenAI's shape:

    {"error": {"message": "...", "type": "invalid_request_error", "code": "...", "param": null}}

Every error on those paths is made as on the rest of the API (``saascore/api/errors.py``:
ApiError, DRF's exceptions, the middleware's 400/413/503, Django's 404/500) and rewritten
here, in one place, by ``OpenAIErrorMiddleware``. The status is kept, so the ``openai`` SDK
raises the class it maps it to (400 BadRequestError, 401 AuthenticationError, 403
PermissionDeniedError, 404 NotFoundError, 409 ConflictError, 422 UnprocessableEntityError,
429 RateLimitError, 5xx InternalServerError), with one exception: 402 (the monthly spend
limit) has no SDK class and becomes 429 ``insufficient_quota``, as OpenAI answers a spent
quota. Headers (``Retry-After``, ``WWW-Authenticate``, ``Allow``) are kept.

Not rewritten: a response that is not a JSON error of the project's shape (none is made).
"""

import json

from django.http import HttpResponse, JsonResponse

OPENAI_PREFIX = "/v1/"

_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error", 429: "rate_limit_error"}
# The project's codes that OpenAI spells otherwise.
_CODES = {
    "not_authenticated": "missing_api_key",
    "authentication_failed": "invalid_api_key",
    "rate_limited": "rate_limit_exceeded",
    "budget_exceeded": "insufficient_quota",
}


def is_openai_path(path: str) -> bool:
    return path.startswith(OPENAI_PREFIX)


def _param_and_message(code: str, message: str, details) -> tuple[str | None, str]:
    """A validation error names its first field (``param``) and says what is wrong with it."""
    if code != "invalid" or not isinstance(details, dict) or not details:
        return None, message
    field, problems = next(iter(details.items()))
    while isinstance(problems, dict) and problems:  # nested: "messages" -> "0" -> "role"
        key, problems = next(iter(problems.items()))
        field = f"{field}.{key}" if not str(key).isdigit() else f"{field}[{key}]"
    first = problems[0] if isinstance(problems, list) and problems else problems
    if isinstance(first, dict | list) or first in (None, ""):
        return str(field), message
    return str(field), f"{field}: {first}"


def openai_error(status: int, error: dict) -> tuple[int, dict]:
    """(status, body) in OpenAI's shape for an error body of the project's shape."""
    code = error.get("code") or "error"
    details = error.get("details") or {}
    if status == 402:
        status = 429  # no SDK class for 402: OpenAI answers a spent quota 429 insufficient_quota
    param, message = _param_and_message(code, error.get("message") or "Error.", details)
    kind = "server_error" if status >= 500 else _TYPES.get(status, "invalid_request_error")
    if code == "budget_exceeded":
        kind = "insufficient_quota"
    body = {"message": message, "type": kind, "code": _CODES.get(code, code), "param": param}
    if details.get("attempts"):
        body["attempts"] = details["attempts"]  # the upstream failures, as on /api/
    return status, {"error": body}


def reshaped(response: HttpResponse) -> HttpResponse:
    """``response`` with its error body in OpenAI's shape (another response is returned as it is)."""
    if response.status_code < 400 or response.streaming or "json" not in response.get("Content-Type", ""):
        return response
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return response
    if not isinstance(error, dict) or "details" not in error:
        return response  # already OpenAI's shape
    status, body = openai_error(response.status_code, error)
    rewritten = JsonResponse(body, status=status)
    for name, value in response.items():  # Retry-After, WWW-Authenticate, X-Request-ID, security headers...
        if name.lower() not in ("content-type", "content-length"):
            rewritten[name] = value
    return rewritten

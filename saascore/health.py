"""Liveness and readiness.

``/health/live`` answers while the process can serve. ``/health/ready`` checks
PostgreSQL (and pgvector) and Redis (and its vector API). PostgreSQL down makes
it 503; Redis down leaves it 200 with status "degraded", because the cache
fails open and the gateway still answers without it. Each probe is bounded
(``PROBE_SECONDS``), and a failure is named by its kind only: error messages
carry host names and addresses, which a public endpoint must not show.
"""

from functools import wraps

import redis
from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, JsonResponse

from saascore.api.errors import error_response
from saascore.db.base import client_timeout
from saascore.ops import ops_allowed
from saascore.redis.capabilities import server_capabilities
from saascore.redis.connection import redis_client

PROBE_SECONDS = 2.0


def _failure(exc: BaseException) -> str:
    """The kind of failure, without the message (it names hosts)."""
    cause = exc.__cause__ or exc
    return type(cause).__name__


def _postgres() -> dict:
    try:
        with client_timeout(PROBE_SECONDS), connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('server_version'), "
                "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"
            )
            version, pgvector = cursor.fetchone()
    except DatabaseError as exc:
        return {"ok": False, "error": _failure(exc)}
    return {"ok": True, "version": version, "pgvector": pgvector}


def _redis() -> dict:
    try:
        found = server_capabilities(redis_client())
    except redis.RedisError as exc:
        return {"ok": False, "error": _failure(exc), "semantic_cache": "unavailable"}
    return {
        "ok": True,
        "version": found.version,
        "vector_sets": found.vector_sets,
        "redisearch": found.search,
        "vector_api": found.vector_api,
        "semantic_cache": found.semantic_cache,
    }


def get_only(view):
    """GET (and HEAD) only; anything else is a 405 in the API's JSON error shape."""

    @wraps(view)
    def checked(request: HttpRequest) -> JsonResponse:
        if request.method not in ("GET", "HEAD"):
            return error_response(
                405, "method_not_allowed", f"{request.method} is not allowed here.", headers={"Allow": "GET, HEAD"}
            )
        return view(request)

    return checked


@get_only
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@get_only
def ready(request: HttpRequest) -> JsonResponse:
    postgres, redis_ = _postgres(), _redis()
    if not postgres["ok"]:
        status = "unavailable"
    elif not redis_["ok"] or redis_["vector_api"] is None:
        status = "degraded"
    else:
        status = "ok"
    body = {"status": status, "postgres": postgres, "redis": redis_} if ops_allowed(request) else {"status": status}
    return JsonResponse(body, status=503 if status == "unavailable" else 200)

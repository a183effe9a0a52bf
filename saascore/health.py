"""Liveness and readiness.

``/health/live`` answers while the process can serve. ``/health/ready`` checks
PostgreSQL (and pgvector) and Redis (and its vector API). PostgreSQL down makes
it 503; Redis down leaves it 200 with status "degraded", because the cache
fails open and the gateway still answers without it.
"""

import redis
from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from ai.cache.capabilities import server_capabilities
from ai.cache.connection import redis_client


def _postgres() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('server_version'), "
                "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"
            )
            version, pgvector = cursor.fetchone()
    except DatabaseError as exc:
        return {"ok": False, "error": str(exc).strip().splitlines()[0]}
    return {"ok": True, "version": version, "pgvector": pgvector}


def _redis() -> dict:
    try:
        found = server_capabilities(redis_client())
    except redis.RedisError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "semantic_cache": "unavailable"}
    return {
        "ok": True,
        "version": found.version,
        "vector_sets": found.vector_sets,
        "redisearch": found.search,
        "vector_api": found.vector_api,
        "semantic_cache": found.semantic_cache,
    }


@require_GET
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    postgres, redis_ = _postgres(), _redis()
    if not postgres["ok"]:
        status = "unavailable"
    elif not redis_["ok"] or redis_["vector_api"] is None:
        status = "degraded"
    else:
        status = "ok"
    return JsonResponse(
        {"status": status, "postgres": postgres, "redis": redis_}, status=503 if status == "unavailable" else 200
    )

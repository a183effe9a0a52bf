"""Fallbacks to the embedded servers under var/, for ``local`` and ``test`` only."""

from saascore.embedded import EmbeddedPostgres, EmbeddedRedis, embedded_paths
from saascore.embedded.postgres import APP_ROLE, OWNER_ROLE
from saascore.settings.base import database_settings


def embedded_databases(database_url: str | None, owner_url: str | None) -> tuple[dict, dict]:
    """(app, owner) DATABASES entries: from the URLs when given, else the embedded server."""
    if database_url:
        app = database_settings(database_url)
        return app, database_settings(owner_url) if owner_url else dict(app)
    postgres = EmbeddedPostgres(embedded_paths())
    return postgres.database_settings(APP_ROLE), postgres.database_settings(OWNER_ROLE)


def embedded_redis_url(redis_url: str | None) -> str:
    return redis_url or EmbeddedRedis.main(embedded_paths()).url

"""Fallbacks to the embedded servers under var/, for ``local`` and ``test`` only."""

from saascore.embedded import EmbeddedPostgres, EmbeddedRedis, embedded_paths
from saascore.embedded.postgres import APP_ROLE, OWNER_ROLE, UNSCOPED_ROLE
from saascore.settings.base import database_settings


def embedded_databases(
    database_url: str | None, owner_url: str | None, unscoped_url: str | None
) -> tuple[dict, dict, dict | None]:
    """(app, owner, unscoped) DATABASES entries: from the URLs when given, else the embedded server."""
    if database_url:
        app = database_settings(database_url)
        owner = database_settings(owner_url) if owner_url else dict(app)
        return app, owner, database_settings(unscoped_url) if unscoped_url else None
    postgres = EmbeddedPostgres(embedded_paths())
    return (
        postgres.database_settings(APP_ROLE),
        postgres.database_settings(OWNER_ROLE),
        postgres.database_settings(UNSCOPED_ROLE),
    )


def embedded_redis_url(redis_url: str | None) -> str:
    return redis_url or EmbeddedRedis.main(embedded_paths()).url

"""Production: external PostgreSQL (with pgvector) and Redis; no defaults for secrets."""

from django.core.exceptions import ImproperlyConfigured

from saascore.settings.base import *  # noqa: F403
from saascore.settings.base import (
    DATABASE_OWNER_URL,
    DATABASE_UNSCOPED_URL,
    DATABASE_URL,
    REDIS_URL,
    SECRET_KEY,
    caches,
    database_settings,
    databases,
    env,
    env_bool,
    env_list,
)

_missing = [
    name
    for name, value in (
        ("SECRET_KEY", SECRET_KEY),
        ("DATABASE_URL", DATABASE_URL),
        ("DATABASE_UNSCOPED_URL", DATABASE_UNSCOPED_URL),
        ("REDIS_URL", REDIS_URL),
    )
    if not value
]
if _missing:
    raise ImproperlyConfigured(
        f"Production settings need {', '.join(_missing)} in the environment (see docs/operations.md)."
    )
if not env_list("ALLOWED_HOSTS"):
    raise ImproperlyConfigured("Production settings need ALLOWED_HOSTS (comma-separated host names).")

_app = database_settings(DATABASE_URL)
_owner = database_settings(DATABASE_OWNER_URL) if DATABASE_OWNER_URL else dict(_app)
_unscoped = database_settings(DATABASE_UNSCOPED_URL)
DATABASES = databases(_app, _owner, _unscoped)
SAASCORE_DB_APP_ROLE = _app["USER"]
SAASCORE_DB_UNSCOPED_ROLE = _unscoped["USER"]
CACHES = caches(REDIS_URL)

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "31536000"))
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True

"""Development: embedded services unless DATABASE_URL / REDIS_URL are set."""

import secrets

from saascore.logs import log_format, logging_config
from saascore.settings.base import *  # noqa: F403
from saascore.settings.base import (
    BASE_DIR,
    DATABASE_OWNER_URL,
    DATABASE_UNSCOPED_URL,
    DATABASE_URL,
    LOG_LEVEL,
    REDIS_URL,
    caches,
    databases,
    env,
    env_bool,
)
from saascore.settings.embedded import embedded_databases, embedded_redis_url

DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

# A developer reads the terminal: plain lines unless LOG_FORMAT=json.
LOG_FORMAT = log_format(default="plain")
LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL)


def _local_secret_key() -> str:
    """A random key kept in var/ so sessions survive restarts; never committed."""
    path = BASE_DIR / "var" / "secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env("SECRET_KEY") or _local_secret_key()

_app, _owner, _unscoped = embedded_databases(DATABASE_URL, DATABASE_OWNER_URL, DATABASE_UNSCOPED_URL)
DATABASES = databases(_app, _owner, _unscoped)
SAASCORE_DB_APP_ROLE = DATABASES["default"]["USER"]
SAASCORE_DB_UNSCOPED_ROLE = _unscoped["USER"] if _unscoped else None

REDIS_URL = embedded_redis_url(REDIS_URL)
CACHES = caches(REDIS_URL)

# /metrics and readiness details are open here (saascore/ops.py).
OPS_ENDPOINTS_PUBLIC = True

"""Tests: real PostgreSQL (pgvector) and Redis, embedded unless the URLs are set."""

from django.core.exceptions import ImproperlyConfigured

from saascore.settings.base import *  # noqa: F403
from saascore.settings.base import (
    DATABASE_OWNER_URL,
    DATABASE_UNSCOPED_URL,
    DATABASE_URL,
    REDIS_URL,
    caches,
    databases,
)
from saascore.settings.embedded import embedded_databases, embedded_redis_url

SECRET_KEY = "test-only-not-secret"  # noqa: S105
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

_app, _owner, _unscoped = embedded_databases(DATABASE_URL, DATABASE_OWNER_URL, DATABASE_UNSCOPED_URL)
# tests/conftest.py creates the test database as the owner role, then reconnects
# `default` as the application role and `unscoped` (a mirror of the test database,
# nothing to create) as the unscoped role.
if _unscoped is None:
    raise ImproperlyConfigured("Tests with DATABASE_URL also need DATABASE_UNSCOPED_URL (docs/operations.md).")
_all = databases(_app, _owner, _unscoped)
DATABASES = {"default": _all["default"], "unscoped": _all["unscoped"]}
for _alias in DATABASES.values():
    _alias["CONN_MAX_AGE"] = 0
DATABASES["default"]["TEST"] = {"NAME": "test_saascore"}
DATABASES["unscoped"]["TEST"] = {"MIRROR": "default"}
SAASCORE_DB_APP, SAASCORE_DB_OWNER, SAASCORE_DB_UNSCOPED = dict(_app), dict(_owner), dict(_unscoped)
SAASCORE_DB_APP_ROLE = _app["USER"]
SAASCORE_DB_UNSCOPED_ROLE = _unscoped["USER"]
SAASCORE_DB_APP_GRANT_TRUNCATE = True

REDIS_URL = embedded_redis_url(REDIS_URL)
CACHES = caches(REDIS_URL)
CACHES["default"]["KEY_PREFIX"] = "test-dj"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Static files straight from the apps (no collectstatic in tests).
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
DEMO_CREDENTIALS_FILE = None  # tests that run the demo point it at a temporary file
TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
BILLING_SPOOL_RETRY_SECONDS = None  # no background drain: tests drain the spool themselves
CACHE_INVALIDATION_SWEEP_SECONDS = None  # no background sweep: tests sweep themselves

# /metrics and readiness details are open here (saascore/ops.py).
OPS_ENDPOINTS_PUBLIC = True
